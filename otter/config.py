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


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data set root: `override`, else $OTTER_DATA_DIR, else ./data."""
    return Path(override or os.environ.get(DATA_DIR_ENV) or "data")


def models_dir(override: str | os.PathLike | None = None) -> Path:
    """The models root: `override`, else $OTTER_MODELS_DIR, else ./models."""
    return Path(override or os.environ.get(MODELS_DIR_ENV) or "models")


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
