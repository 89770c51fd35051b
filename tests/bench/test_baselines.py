"""bench.baselines: the fills that learn nothing, kept as reference rows."""

import torch

from bench.baselines import BASELINES, grey_fill, harmonic_fill


def _ramp_with_hole():
    x = torch.arange(64).float() * 3
    image = (x[None, :] + x[:, None] / 2).clamp(0, 255).round().to(torch.uint8).expand(1, 3, 64, 64).clone()
    holes = torch.zeros(1, 64, 64, dtype=torch.bool)
    holes[:, 10:40, 20:50] = True  # a wide hole: only the coarse-to-fine start makes it converge
    masked = image.masked_fill(holes[:, None], 128)
    return image, masked, holes


def test_harmonic_fill_reproduces_a_harmonic_image_inside_a_wide_hole():
    image, masked, holes = _ramp_with_hole()  # a linear ramp solves Laplace's equation
    filled = harmonic_fill(masked, holes)
    error = (filled.float() - image.float()).abs()
    assert error[:, :, ~holes[0]].max() == 0  # known pixels untouched
    assert error.mean() < 1.0 and error.max() <= 6


def test_grey_fill_is_the_masked_input():
    _, masked, holes = _ramp_with_hole()
    assert torch.equal(grey_fill(masked, holes), masked)


def test_registry_holds_both_reference_rows():
    assert {"grey", "harmonic"} <= set(BASELINES)
