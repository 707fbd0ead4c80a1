"""A model folder as one zip file, for downloading from the app: model.json, the safetensors weights and any
other files of the folder (`ood.safetensors`...), under the model's name, so unzipping into a models folder
gives a model the app and `python -m otter predict --model` load as they are."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path

from .io import read_meta


def zip_model(model_dir: os.PathLike | str, folder: os.PathLike | str) -> Path:
    """Write `folder/<name>.zip` (replacing an older one atomically) and return its path. Only the folder's regular
    files are packed (no links, no subfolders); raises `ModelError` if `model_dir` is not a valid model."""
    model_dir = Path(model_dir)
    read_meta(model_dir)  # a clear ModelError for anything that is not a model folder
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{model_dir.name}.zip"
    tmp = folder / f".{model_dir.name}.zip.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:  # weights do not compress
        for f in sorted(model_dir.iterdir()):
            if f.is_file() and not f.is_symlink():
                info = zipfile.ZipInfo.from_file(f, f"{model_dir.name}/{f.name}")
                info.external_attr = (stat.S_IFREG | 0o644) << 16  # readable once unzipped, whatever the file's mode
                with open(f, "rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst)
    os.replace(tmp, dest)
    return dest
