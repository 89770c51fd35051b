"""Inpainting baselines that learn nothing: the reference rows every model must beat.

`grey` is the masked input itself (holes filled with 128); `harmonic` diffuses the known pixels
into the holes (the solution of Laplace's equation with the known pixels as boundary values),
a strong classical fill for FID.
"""

from __future__ import annotations

from typing import Callable

import torch

from maskgit.pixels import harmonic_interpolate

BASELINES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}


def register_baseline(name: str):
    def add(fill):
        BASELINES[name] = fill
        return fill
    return add


@register_baseline("grey")
def grey_fill(masked: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    return masked.clone()


@register_baseline("harmonic")
def harmonic_fill(masked: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    return harmonic_interpolate(masked, ~holes.unsqueeze(1)).round().clamp(0, 255).to(torch.uint8)
