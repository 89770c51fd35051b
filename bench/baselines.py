"""Inpainting baselines that learn nothing: the reference rows every model must beat.

`grey` is the masked input itself (holes filled with 128); `harmonic` diffuses the known pixels
into the holes (the solution of Laplace's equation with the known pixels as boundary values),
a strong classical fill for FID.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

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
def harmonic_fill(masked: torch.Tensor, holes: torch.Tensor, iterations: int = 100) -> torch.Tensor:
    """Jacobi iterations of the 4-neighbour average inside the holes, coarse-to-fine so that wide
    holes converge: each level starts from the upsampled solution of the level below, so a
    hundred iterations per level suffice."""
    known = ~holes.unsqueeze(1)
    image = masked.float()
    return _harmonic(image, known, iterations).round().clamp(0, 255).to(torch.uint8)


def _harmonic(image: torch.Tensor, known: torch.Tensor, iterations: int) -> torch.Tensor:
    if image.shape[-1] > 8:
        weight = F.avg_pool2d(known.float(), 2)
        coarse_image = F.avg_pool2d(image * known, 2) / weight.clamp(min=1e-6)
        coarse = _harmonic(coarse_image, weight > 0, iterations)
        start = F.interpolate(coarse, scale_factor=2, mode="nearest")
    else:
        start = (image * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp(min=1)
        start = start.expand_as(image)
    x = torch.where(known, image, start)
    for _ in range(iterations):
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        average = (padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2] + padded[..., 1:-1, 2:]) / 4
        x = torch.where(known, image, average)
    return x
