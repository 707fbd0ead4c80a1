"""Model folders: `model.safetensors` (weights) + `model.json` (everything else). Written atomically, loaded without pickle.

Weights bigger than `MAX_SHARD` are split the way the Hugging Face Hub splits them (`huggingface_hub.save_torch_state_dict`):
`model-00001-of-0000N.safetensors` files plus `model.safetensors.index.json`, so that no file is over the 10 MB a
Hugging Face Space takes without Git LFS.

A model folder is replaced by building the new one under a temporary name and renaming it into place;
`recover(models_dir)` finishes or rolls back a swap that a crash interrupted, so the previous model
always stays loadable and a half-written folder is never picked up (hidden names are ignored). The model it
replaces goes to the models trash, `<models>/.trash/<id>/<name>/`, never away: `restore_model` brings it back
(`python -m otter models restore NAME`).

Which model answers when none is named (the Predict tab, the `/predict` API, `python -m otter predict`) is an
explicit choice recorded in `<models>/default.json` (`default_name`), never simply the newest model.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..data.safepath import check_name
from ..errors import ModelError  # a folder that is not a usable model; imported from here by callers
from . import plain_model
from .backbones import BackboneError, build

WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"  # with sharded weights: which tensor is in which shard file
MAX_SHARD = "9MB"  # under the 10 MB a Space accepts without Git LFS
META = "model.json"
DEFAULT_FILE = "default.json"  # in a models folder: {"default": NAME}, the model used when none is named
SHIPPED_MODEL = "otters"  # the model shipped in the repository: the default when none is recorded
FORMAT = "otter-model"
TRASH = ".trash"  # in a models folder: replaced and deleted models, hidden so `list_models` never sees them
FORMAT_VERSION = 1


def build_model(meta: dict) -> torch.nn.Module:
    """An untrained network with the architecture recorded in `meta` (never downloads weights). Built from plain
    torch/timm/torchvision modules where it can be (`otter.model.plain_model`: prediction never waits for fastai's
    import), with fastai for its own xResNets."""
    n_out = len(meta["classes"]) + int(meta.get("extra_outputs", 0))
    head = meta.get("head", "fastai")  # models saved before linear heads existed have fastai's
    if head not in plain_model.HEAD_BUILDERS:
        raise ModelError(f"unknown head {head!r} in model.json; this version knows {', '.join(plain_model.HEAD_BUILDERS)}")
    try:
        return plain_model.build(meta["arch"], n_out, head) or build(meta["arch"], n_out, head)
    except BackboneError as ex:
        raise ModelError(str(ex)) from ex


def save_model(
    model: torch.nn.Module,
    meta: dict,
    dest: os.PathLike | str,
    half: bool = False,
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write `dest/` (weights + JSON) atomically; the previous folder at `dest` survives any crash.

    `extra_tensors` maps a file name (e.g. "ood.safetensors") to more tensors saved in the same folder."""
    dest = Path(dest)
    check_name(dest.name, "model name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _models_lock(dest.parent):  # no recover() may run between the two renames below
        _recover(dest.parent)
        return _write_and_swap(model, meta, dest, half, extra_tensors)


def _write_and_swap(model, meta: dict, dest: Path, half: bool, extra_tensors) -> Path:
    tag = uuid.uuid4().hex[:8]
    tmp = dest.parent / f".tmp-{dest.name}-{tag}"
    tmp.mkdir()
    try:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        _save_weights(state, tmp)
        meta = dict(
            meta, format=FORMAT, format_version=FORMAT_VERSION, name=dest.name, weights_dtype="float16" if half else "float32"
        )
        meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        (tmp / META).write_text(json.dumps(meta, indent=1))
        extra = []
        for fname, tensors in (extra_tensors or {}).items():
            check_name(fname, "model file name")
            save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp / fname))
            extra.append(tmp / fname)
        for f in (*weight_files(tmp), tmp / META, *extra):
            os.chmod(f, _file_mode())  # safetensors writes 0600; a model is shared like any file (and zipped so)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        old = dest.parent / f".old-{dest.name}-{tag}"
        if dest.exists():
            os.rename(dest, old)
        os.rename(tmp, dest)
        if old.exists():
            os.rename(old, trash_slot(dest.parent, dest.name))  # replaced, not deleted
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _recover(dest.parent)
        raise
    return dest


def _file_mode() -> int:
    """The mode a new file gets here (0o666 less the umask, 0o644 by default), read without changing the umask,
    which `os.umask` would do for every thread at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def _save_weights(state: dict[str, torch.Tensor], folder: Path) -> None:
    """`WEIGHTS`, or shards of at most `MAX_SHARD` and `WEIGHTS_INDEX`: the Hub's split and file names
    (`huggingface_hub.split_torch_state_dict_into_shards`), written with safetensors' `save_file`."""
    from huggingface_hub import split_torch_state_dict_into_shards  # only when saving: not on the predict path

    split = split_torch_state_dict_into_shards(state, max_shard_size=MAX_SHARD)
    for fname, names in split.filename_to_tensors.items():
        save_file({n: state[n] for n in names}, str(folder / fname))
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        (folder / WEIGHTS_INDEX).write_text(json.dumps(index, indent=1))


def _models_lock(models_dir: Path):
    """Held while a model is written and swapped in, and while `recover` tidies: across threads and processes."""
    from filelock import FileLock

    return FileLock(models_dir / ".models.lock", thread_local=False)


def recover(models_dir: os.PathLike | str) -> None:
    """Undo a swap cut short between its two renames (a crash), and drop leftovers of unfinished writes. Runs at
    start-up and before each save, under the models lock: never on the prediction path, where it could undo a
    save caught between its renames."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return
    with _models_lock(models_dir):
        _recover(models_dir)


def _recover(models_dir: Path) -> None:
    for p in models_dir.iterdir():
        if p.name.startswith(".tmp-") and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)  # a write that never finished (saves hold the lock while writing)
        elif p.name.startswith(".old-"):
            name = p.name[len(".old-") :].rsplit("-", 1)[0]
            target = models_dir / name
            if target.exists():  # the swap had finished: the replaced model goes to the trash, as it would have
                os.rename(p, trash_slot(models_dir, name))
            else:
                os.rename(p, target)


def read_meta(model_dir: os.PathLike | str) -> dict:
    """A model folder's model.json, checked. Every prediction lists the models, so parsed files are cached by
    their stamp (path, modification time, size, inode): a file is parsed again only when it changed (0.8 ms for
    the shipped model's 43 KB). Each call gets its own top-level dict; nested values are shared, read-only."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir} is not a model folder (it does not exist)")
    path = model_dir / META
    try:
        st = path.stat()
    except FileNotFoundError as ex:
        raise ModelError(f"{model_dir} has no {META}; is it a model folder?") from ex
    except OSError as ex:
        raise ModelError(f"{path} cannot be read ({ex})") from ex
    key = str(path.resolve())
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _META_CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return dict(cached[1])
    try:
        meta = json.loads(path.read_text())
    except OSError as ex:
        raise ModelError(f"{path} cannot be read ({ex})") from ex
    except ValueError as ex:
        raise ModelError(f"{path} is not valid JSON ({ex})") from ex
    if not isinstance(meta, dict):
        raise ModelError(f"{path} is not an otter model description (not a JSON object)")
    missing = [k for k in ("classes", "arch", "input_size") if k not in meta]
    if meta.get("format") != FORMAT or missing:
        raise ModelError(f"{path} is not an otter model description (missing {', '.join(missing) or 'format'})")
    _META_CACHE[key] = (stamp, meta)
    return dict(meta)


_META_CACHE: dict[str, tuple[tuple[int, int, int], dict]] = {}  # read_meta's: path -> (stamp, parsed model.json)


def weight_files(model_dir: os.PathLike | str) -> list[Path]:
    """The files that hold a model folder's weights: `model.safetensors`, or the shard index and the shards it
    names; [] when there are none. Raises `ModelError` for an unreadable index or one naming other files."""
    single, index = Path(model_dir) / WEIGHTS, Path(model_dir) / WEIGHTS_INDEX
    if single.is_file():
        return [single]
    if not index.is_file():
        return []
    try:
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))  # mixed types: TypeError
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as ex:
        raise ModelError(f"{index} is not a valid shard index ({ex})") from ex
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
            raise ModelError(f"{index} names {name!r}, not a .safetensors file in the folder")
    return [index, *(index.parent / name for name in names)]


def load_model(model_dir: os.PathLike | str) -> tuple[torch.nn.Module, dict]:
    """Rebuild the network from model.json and load its safetensors weights (float32, eval mode). No pickle."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    model = build_model(meta)
    files = [f for f in weight_files(model_dir) if f.name != WEIGHTS_INDEX]
    if not files:
        raise ModelError(f"{model_dir} has no {WEIGHTS}")
    state = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except FileNotFoundError as ex:
            raise ModelError(f"{model_dir} has no {f.name} (named in {WEIGHTS_INDEX})") from ex
        except (SafetensorError, OSError, ValueError) as ex:
            raise ModelError(f"{f} is not a valid safetensors file ({ex})") from ex
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as ex:
        raise ModelError(f"the weights in {model_dir} do not fit architecture {meta['arch']} ({str(ex).splitlines()[0]})") from ex
    return model.eval(), meta


def trash_slot(models_dir: os.PathLike | str, name: str) -> Path:
    """A new, empty place for model `name` in the models trash: `<models>/.trash/<UTC time>-<id>/<name>`."""
    trash_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    slot = Path(models_dir) / TRASH / trash_id / name
    slot.parent.mkdir(parents=True)
    return slot


def trashed_models(models_dir: os.PathLike | str) -> list[dict]:
    """The models in the trash, newest first: {"id", "name", "path"} (the id starts with the UTC time it went)."""
    trash = Path(models_dir) / TRASH
    found = [
        {"id": slot.name, "name": p.name, "path": str(p)}
        for slot in (trash.iterdir() if trash.is_dir() else [])
        if slot.is_dir()
        for p in slot.iterdir()
        if p.is_dir()
    ]
    return sorted(found, key=lambda m: m["id"], reverse=True)


def restore_model(models_dir: os.PathLike | str, which: str, as_name: str | None = None) -> Path:
    """Bring a trashed model back: `which` is a trash id or a model name (its newest trashed copy); it comes back
    under its name, or `as_name`. A model of that name already there is never overwritten (restore it as another
    name, or delete that one first, which trashes it)."""
    models_dir = Path(models_dir)
    trashed = [m for m in trashed_models(models_dir) if which in (m["id"], m["name"])]
    if not trashed:
        names = sorted({m["name"] for m in trashed_models(models_dir)})
        raise ModelError(f"no trashed model {which!r}; the trash holds: {', '.join(names) or 'nothing'}")
    name = check_name(as_name or trashed[0]["name"], "model name")
    dest = models_dir / name
    with _models_lock(models_dir):
        if dest.exists():
            raise ModelError(f"a model named {name!r} exists: restore under another name (--as NEW_NAME)")
        os.rename(trashed[0]["path"], dest)
        try:
            Path(trashed[0]["path"]).parent.rmdir()  # its empty trash slot
        except OSError:
            pass
    return dest


_reported: set[str] = set()


def _report_once(message: str) -> None:
    """Warn on stderr once per message: listing runs on every request, the reason does not change between them."""
    if message not in _reported:
        _reported.add(message)
        warnings.warn(message, stacklevel=3)


def list_models(models_dir: os.PathLike | str) -> list[dict]:
    """Valid model folders, newest first, as their metadata plus "path"."""
    models_dir = Path(models_dir)
    found = []
    if not models_dir.is_dir():
        return found
    for p in models_dir.iterdir():
        if p.name.startswith(".") or not p.is_dir():
            continue
        try:
            found.append(read_meta(p) | {"path": str(p)})
        except ModelError as ex:
            if (p / META).exists():  # a folder without model.json is not a model; a broken one is worth a word
                _report_once(f"ignoring model folder {p}: {ex}")
            continue
    return sorted(found, key=lambda m: m.get("created", ""), reverse=True)


def seed_models(models_dir: os.PathLike | str, source: os.PathLike | str) -> list[str]:
    """When `models_dir` holds no model, copy in the default model of `source` (the one shipped beside app.py:
    `otters`, or the one `source` records as its default), under a hidden name first and then renamed into place.
    Returns the names copied.

    For a models folder elsewhere (a Storage Bucket on a Space, `$OTTER_MODELS_DIR`): the app predicts
    at once on its first start. A folder that has a model already is left alone, so a user's models are
    never overwritten and a model they replaced does not come back. Other models kept in `source` (a user's
    own trainings in their clone) stay where they are."""
    models_dir, source = Path(models_dir), Path(source)
    if not source.is_dir() or source.resolve() == models_dir.resolve() or list_models(models_dir):
        return []
    name = default_name(source)
    if name is None:
        return []
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = models_dir / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    with _models_lock(models_dir):
        try:
            shutil.copytree(source / name, tmp, symlinks=False)
            os.rename(tmp, models_dir / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [name]


def newest_model(models_dir: os.PathLike | str) -> Path:
    models = list_models(models_dir)
    if not models:
        raise ModelError(f"no trained model in {models_dir}; train one first (python -m otter train)")
    return Path(models[0]["path"])


def recorded_default(models_dir: os.PathLike | str) -> str | None:
    """The name `DEFAULT_FILE` records, or None when it is missing or unreadable (it may name a model that is gone)."""
    try:
        name = json.loads((Path(models_dir) / DEFAULT_FILE).read_text()).get("default")
        return check_name(name, "model name")
    except (OSError, ValueError, AttributeError):
        return None


def default_name(models_dir: os.PathLike | str, models: list[dict] | None = None) -> str | None:
    """The model that answers when none is named: the one recorded in `DEFAULT_FILE`; when that is missing or names
    no valid model, the shipped `SHIPPED_MODEL` if present, else the newest. None when there is no model.
    `models`: `list_models(models_dir)` when the caller has it already."""
    names = [Path(m["path"]).name for m in (list_models(models_dir) if models is None else models)]
    for name in (recorded_default(models_dir), SHIPPED_MODEL):
        if name in names:
            return name
    return names[0] if names else None


def default_model(models_dir: os.PathLike | str) -> Path:
    """The folder of the default model (`default_name`); raises `ModelError` when there is none."""
    name = default_name(models_dir)
    if name is None:
        raise ModelError(f"no trained model in {models_dir}; train one first (python -m otter train)")
    return Path(models_dir) / name
