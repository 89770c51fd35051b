"""The one place where uint8 pixels become model inputs and back.

Images travel through the harness as uint8 tensors [N, 3, H, W]; only the model sees floats,
normalised with the per-channel mean/std stored in its VQGAN config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_model(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> normalised float32."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def to_uint8(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Normalised float [N, 3, H, W] -> uint8, rounded and clamped."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return ((x.float() * s + m) * 255.0).round().clamp(0, 255).to(torch.uint8)


def image_grid(rows: list[torch.Tensor], pad: int = 2) -> torch.Tensor:
    """Rows of uint8 images [n, 3, H, W] (same n, H, W) -> one uint8 image [3, H', W'] on white."""
    n, c, h, w = rows[0].shape
    grid = torch.full((c, len(rows) * (h + pad) + pad, n * (w + pad) + pad), 255, dtype=torch.uint8)
    for i, row in enumerate(rows):
        for j in range(n):
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            grid[:, top:top + h, left:left + w] = row[j].cpu()
    return grid


def harmonic_interpolate(values: torch.Tensor, known: torch.Tensor, iterations: int = 100) -> torch.Tensor:
    """Float [N, C, H, W] equal to `values` where `known` [N, 1, H, W] and harmonic elsewhere.

    The solution of Laplace's equation with the known pixels as boundary values, by Jacobi
    iterations of the 4-neighbour average, coarse to fine so that wide holes converge: each level
    starts from the upsampled solution of the level below, so a hundred iterations per level suffice.
    """
    values = values.float()
    if values.shape[-1] > 8:
        weight = F.avg_pool2d(known.float(), 2)
        coarse_values = F.avg_pool2d(values * known, 2) / weight.clamp(min=1e-6)
        coarse = harmonic_interpolate(coarse_values, weight > 0, iterations)
        start = F.interpolate(coarse, scale_factor=2, mode="nearest")
    else:
        start = (values * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp(min=1)
        start = start.expand_as(values)
    x = torch.where(known, values, start)
    for _ in range(iterations):
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        average = (padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2] + padded[..., 1:-1, 2:]) / 4
        x = torch.where(known, values, average)
    return x
