"""The one place that decides where tensors run (CPU, CUDA, or a ZeroGPU slot on Hugging Face Spaces) and in
which precision (float32, or bfloat16 on CPUs that have it natively)."""

from __future__ import annotations

import contextlib
import os
import warnings

import torch

from ..config import PRECISION_CHOICES, PRECISION_ENV, wanted_device, wanted_precision
from ..errors import BadInput


def pick_device() -> torch.device:
    """CUDA when present (and not disabled with OTTER_DEVICE=cpu), else the CPU. In a job of several processes
    (`accelerate launch`, torchrun) each process of a machine takes its own GPU: the one of its LOCAL_RANK."""
    wanted = wanted_device()
    if wanted:
        return torch.device(wanted)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local_rank = os.environ.get("LOCAL_RANK", "").strip()
    if local_rank.isdigit():
        return torch.device("cuda", int(local_rank) % torch.cuda.device_count())
    return torch.device("cuda")


def gpu_task(fn):
    """Mark a function that uses the GPU. On ZeroGPU Spaces this is `spaces.GPU` (the GPU is attached only
    while it runs); everywhere else it returns `fn` unchanged."""
    try:
        import spaces  # only exists on Hugging Face Spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def native_bf16(device: torch.device) -> bool:
    """True on a CPU that computes in bfloat16 natively (AVX512-BF16 or AMX): there a bf16 forward pass is
    about 2x faster than float32 (measured: bench/RESULTS.md); without them bf16 is emulated and ~2x slower."""
    if device.type != "cpu":
        return False
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def pick_precision(device: torch.device, wanted: str | None = None) -> str:
    """The precision to predict or train in on `device`, "fp32" or "bf16": `wanted`, else $OTTER_PRECISION,
    else "auto" (bf16 where the CPU has native bf16, fp32 everywhere else, GPUs included). bf16 prediction
    keeps the predicted class and moves probabilities by ~0.01 at most (measured on the 245 real photos);
    bf16 training (autocast) scored the same in cross-validation (bench/RESULTS.md)."""
    if wanted is None:
        wanted = wanted_precision()
        if wanted not in PRECISION_CHOICES:
            warnings.warn(f"${PRECISION_ENV}={wanted!r} is not one of {', '.join(PRECISION_CHOICES)}; using auto", stacklevel=2)
            wanted = "auto"
    if wanted == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if wanted not in PRECISION_CHOICES:
        raise BadInput(f"unknown precision {wanted!r}: use one of {', '.join(PRECISION_CHOICES)}")
    return wanted


def autocast(device: torch.device, precision: str):
    """The context for training in `precision` ("fp32" or "bf16", as `pick_precision` gives): bf16 autocast
    (weights and optimiser stay float32; convolutions and matrix products run in bfloat16) or nothing."""
    if precision == "bf16":
        # No weight-cast cache: it lives until the context exits, and this context spans the whole fit, so the
        # forward passes would keep using the first step's bf16 copies of the weights (tests/test_train_predict.py).
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()
