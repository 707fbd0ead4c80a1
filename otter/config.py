"""Where things live and the defaults every entry point shares, in one place."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

DATA_DIR_ENV = "OTTER_DATA_DIR"
MODELS_DIR_ENV = "OTTER_MODELS_DIR"
DEVICE_ENV = "OTTER_DEVICE"  # a torch device name ("cpu" keeps a machine with a GPU off it); blank: CUDA when present
PRECISION_ENV = "OTTER_PRECISION"  # "auto", "fp32" or "bf16" (PRECISION_CHOICES); blank: auto

# What the app and the library keep about a data set (embeddings, hashes, the audit, locks) lives in this folder
# inside the data folder; dot-named, so it is never listed as a class.
STATE_DIR = ".otter"

# Image hygiene: anything larger than this many pixels is treated as a decompression bomb.
MAX_IMAGE_PIXELS = 40_000_000
# Files bigger than this are refused before decoding (bytes).
MAX_FILE_BYTES = 30 * 1024 * 1024
# What one request may cost the app's server (a refusal names the limit): files per upload into a class and per
# "many photos at once" prediction, and requests waiting in the queue (beyond it Gradio answers "Queue is full").
MAX_FILES_PER_REQUEST = int(os.environ.get("OTTER_MAX_FILES", "200"))
MAX_QUEUE = int(os.environ.get("OTTER_MAX_QUEUE", "64"))
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")

# ImageNet statistics: fastai's `imagenet_stats`, kept here so prediction needs no fastai import.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Inference and training precision (otter.model.device.pick_precision): "auto" picks bf16 on CPUs that have it natively.
PRECISION_CHOICES = ("auto", "fp32", "bf16")

# Downloads (otter.data.download): kept here so the command line's help can show them without importing httpx and pandas.
DOWNLOAD_WORKERS = 8  # concurrent downloads
DOWNLOAD_TIMEOUT = 10.0  # seconds to connect and between bytes; a whole download may take 4x this
DOWNLOAD_MAX_SIDE = 512  # kept images are shrunk so their longer side is at most this (the original used 500)


# A Hugging Face Space's persistent storage (a Storage Bucket mounted here); its disk elsewhere is wiped on restart.
SPACE_STORAGE = Path("/data")


def space_storage() -> Path | None:
    """SPACE_STORAGE when running on a Space ($SPACE_ID) and it exists and is writable; else None."""
    if not os.environ.get("SPACE_ID"):
        return None
    root = SPACE_STORAGE
    return root if root.is_dir() and os.access(root, os.W_OK | os.X_OK) else None


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data set root: `override`, else $OTTER_DATA_DIR, else /data/data on a Space with storage, else ./data."""
    storage = space_storage()
    return Path(override or os.environ.get(DATA_DIR_ENV) or (storage / "data" if storage else "data"))


def models_dir(override: str | os.PathLike | None = None) -> Path:
    """The models root: `override`, else $OTTER_MODELS_DIR, else /data/models on a Space with storage, else ./models."""
    storage = space_storage()
    return Path(override or os.environ.get(MODELS_DIR_ENV) or (storage / "models" if storage else "models"))


ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on ZeroGPU Spaces (read the same way by the `spaces` package)


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space, where a GPU is attached only inside `@spaces.GPU` calls of about a minute."""
    return os.environ.get(ZERO_GPU_ENV, "").strip().lower() in ("1", "true", "yes")


def storage_line(data: Path, models: Path) -> str:
    """Where the data set and the models live, said at start; on a Space, whether a restart keeps them."""
    where = f"otter: data set in {data}, models in {models}"
    if not os.environ.get("SPACE_ID"):
        return where + "."
    storage = SPACE_STORAGE.resolve()
    kept = all(Path(p).resolve().is_relative_to(storage) for p in (data, models)) and space_storage() is not None
    if kept:
        return where + f" (the Space's storage, {SPACE_STORAGE}: kept across restarts)."
    return (
        where
        + f": this Space's disk is wiped on restart, so a restart LOSES them unless storage is mounted at {SPACE_STORAGE} (see the README)."
    )


def wanted_device() -> str:
    """$OTTER_DEVICE, lower-case ("" when unset)."""
    return os.environ.get(DEVICE_ENV, "").strip().lower()


def wanted_precision() -> str:
    """$OTTER_PRECISION, lower-case, "auto" when unset (not checked: see otter.model.device.pick_precision)."""
    return os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"


def state_dir(data: str | os.PathLike) -> Path:
    """`<data>/.otter`: where a data set's derived state is kept."""
    return Path(data) / STATE_DIR


def quiet_dependency_warnings() -> None:
    """For the entry points (`otter.app.ui.build_app`, the CLI), not the library: hide torch's deprecation note that fastai triggers
    by calling `torch.jit.script` when it is imported; it is addressed to fastai, and users saw it on
    every `python -m otter predict`."""
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
