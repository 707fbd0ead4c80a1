"""The one place that decides where tensors run (CPU, CUDA, or a ZeroGPU slot on Hugging Face Spaces)."""

from __future__ import annotations

import os

import torch


def pick_device() -> torch.device:
    """CUDA when present (and not disabled with OTTER_DEVICE=cpu), else the CPU."""
    wanted = os.environ.get("OTTER_DEVICE", "").strip().lower()
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gpu_task(fn):
    """Mark a function that uses the GPU. On ZeroGPU Spaces this is `spaces.GPU` (the GPU is attached only
    while it runs); everywhere else it returns `fn` unchanged."""
    try:
        import spaces  # only exists on Hugging Face Spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)
