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
LABELS: dict[str, str] = {}  # name -> what tables and figures call it, where not "<name> fill"


def register_baseline(name: str, label: str | None = None):
    """Add a fill (masked uint8 [N, 3, 64, 64], holes bool [N, 64, 64]) -> uint8 images; `label` names
    its rows (default: "<name> fill")."""
    def add(fill):
        BASELINES[name] = fill
        if label:
            LABELS[name] = label
        return fill
    return add


def baseline_label(name: str) -> str:
    """What tables and figures call a baseline: "grey holes", "harmonic fill"."""
    return LABELS.get(name, f"{name} fill")


def reference_label(name: str) -> str:
    """A baseline's row among trials, e.g. "harmonic fill (reference)"."""
    return f"{baseline_label(name)} (reference)"


@register_baseline("grey", "grey holes")
def grey_fill(masked: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    return masked.clone()


@register_baseline("harmonic")
def harmonic_fill(masked: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    return harmonic_interpolate(masked, ~holes.unsqueeze(1)).round().clamp(0, 255).to(torch.uint8)
