"""Which device runs the models, and how many images go through them at once."""

from __future__ import annotations

import torch

from bench.defaults import CPU_BATCH_SIZE, CUDA_BATCH_SIZE
from bench.errors import BenchError

AUTO_DEVICE = "auto"


def resolve_device(name: str | torch.device | None = AUTO_DEVICE) -> str | torch.device:
    """`auto` (or None) -> CUDA when present, else the CPU; any other name as given."""
    if name in (None, AUTO_DEVICE):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def checked_device(name: str) -> str:
    """`auto` resolved; a device torch does not know or cannot use is a one-line error."""
    device = resolve_device(name)
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise BenchError(f"--device {name}: not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA is not available on this machine")
    return device


def default_batch_size(device: str | torch.device) -> int:
    """Images per model batch: small on the CPU, where batches beyond ~8 fall out of the caches and
    get slower per image (benchmarks/batch_speed.py), large on accelerators."""
    return CPU_BATCH_SIZE if torch.device(device).type == "cpu" else CUDA_BATCH_SIZE
