"""Free-form brush-stroke hole masks: the shape of the benchmark's test holes.

One procedure draws both the test set's pixel holes (`bench data build`) and the hole-shaped token
masks stage 2 can practise on (`--hole-masks`), so training sees the shape it is scored on
(docs/architecture.md, "Data" and "Training").
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .decoding import pixel_holes_to_token_unknown

IMAGE_SIZE = 64
COVERAGE_RANGE = (0.15, 0.40)  # fraction of hole pixels per generated mask


MAX_STROKES = 200  # gives up short of the target coverage only for bands narrower than a piece


def stroke_mask(rng: np.random.Generator, size: int = IMAGE_SIZE,
                coverage_range: tuple[float, float] = COVERAGE_RANGE) -> np.ndarray:
    """A free-form hole mask of thick brush strokes (bool [size, size], True = hole).

    A target coverage is drawn uniformly from the band and strokes are added piece by piece
    until it is reached; a piece that would push coverage past the band's top is left out.
    A piece covers a few percent at most, so coverage ends inside the default band.
    """
    low, high = coverage_range
    target, ceiling = rng.uniform(low, high) * size * size, high * size * size
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    holes = np.zeros((size, size), dtype=bool)
    for _ in range(MAX_STROKES):
        points, radius = _stroke_path(rng, size)
        for start, end in zip(points[:-1], points[1:]):
            grown = holes | _capsule(rows, cols, start, end, radius)
            if grown.sum() > ceiling:
                break
            holes = grown
            if holes.sum() >= target:
                return holes
    return holes


def _stroke_path(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """Points (row, col) along one brush stroke, a wandering line or an arc, and its radius."""
    radius = rng.uniform(1.5, 4.5)
    if rng.random() < 0.6:
        steps = rng.integers(3, 10)
        headings = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.6, steps))
        lengths = rng.uniform(3, 10, steps)
        moves = np.stack([np.sin(headings), np.cos(headings)], axis=1) * lengths[:, None]
        start = rng.uniform(-4, size + 4, 2)
        return np.vstack([start, start + np.cumsum(moves, axis=0)]), radius
    centre, arc_radius = rng.uniform(0, size, 2), rng.uniform(6, 24)
    start, sweep = rng.uniform(0, 2 * np.pi), rng.choice([-1, 1]) * rng.uniform(np.pi / 3, 4 * np.pi / 3)
    angles = start + np.linspace(0, sweep, max(2, int(abs(sweep) * arc_radius / 6) + 1))
    return centre + arc_radius * np.stack([np.sin(angles), np.cos(angles)], axis=1), radius


def _capsule(rows: np.ndarray, cols: np.ndarray, start: np.ndarray, end: np.ndarray,
             radius: float) -> np.ndarray:
    """Pixels whose centre lies within `radius` of the segment start-end: one round brush dab."""
    direction = end - start
    along = ((rows - start[0]) * direction[0] + (cols - start[1]) * direction[1])
    t = np.clip(along / max(direction @ direction, 1e-9), 0, 1)
    off_row, off_col = rows - start[0] - t * direction[0], cols - start[1] - t * direction[1]
    return off_row**2 + off_col**2 <= radius**2


def stroke_token_masks(count: int, rng: np.random.Generator, image_size: int = IMAGE_SIZE,
                       token_size: int = 4) -> torch.Tensor:
    """Token masks bool [count, (image_size / token_size)**2] of `count` stroke holes: a token is
    masked when any of its pixels is a hole, as the benchmark's holes become unknown tokens."""
    holes = np.stack([stroke_mask(rng, image_size) for _ in range(count)])
    return pixel_holes_to_token_unknown(torch.from_numpy(holes), token_size)


def draw_from_pool(pool: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` masks picked from `pool` [P, side * side], each mirrored left-right, up-down and
    transposed by coin flips: strokes have no preferred direction, so this multiplies the distinct
    shapes by 8 for a few random bits, where drawing a stroke mask costs milliseconds."""
    side = int(math.isqrt(pool.shape[1]))
    grid = pool[torch.randint(len(pool), (count,), generator=generator)].view(count, side, side)
    flips = (torch.rand(count, 3, generator=generator) < 0.5).view(count, 3, 1, 1)
    grid = torch.where(flips[:, 0], grid.flip(-1), grid)
    grid = torch.where(flips[:, 1], grid.flip(-2), grid)
    grid = torch.where(flips[:, 2], grid.transpose(-1, -2), grid)
    return grid.reshape(count, side * side)
