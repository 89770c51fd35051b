"""Images for the training tests (imported by test_training and test_training_recipe)."""

import torch


def blobs(n: int, seed: int) -> torch.Tensor:
    """Smooth random images: learnable in a few steps, unlike pure noise."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, 4, 4, generator=g)
    return (torch.nn.functional.interpolate(small, size=64, mode="bilinear") * 255).to(torch.uint8)
