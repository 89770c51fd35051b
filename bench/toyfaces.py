"""Procedural 64x64 "toy faces": cat-like faces the package can regenerate from a seed.

They stand in for the real cat faces wherever no download is possible: the embedded default
benchmark and the model trained on it. Each face varies in pose, head shape, ears, eyes (two of
one colour), nose, mouth, fur colour and pattern (tabby stripes, spots, patches), and a patterned
background, so a hole is not filled by smooth interpolation. Everything is drawn as signed distances
on whole batches (numpy) with edges soft over 1.5 pixels and no per-pixel grain: a 16x16-token
tokenizer (4x4 pixels a token) can represent the faces, which is what makes them learnable.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from bench.data import IMAGE_SIZE, write_benchmark
from bench.errors import BenchError

BENCHMARK_NAME = "toyfaces-v2"  # cache folder of the embedded benchmark: bump when output changes
CHUNK = 256  # faces rendered per batch (memory stays ~100 MB)
EDGE = 1.5  # pixels over which every edge fades: soft, yet much sharper than a 4x4-pixel token

FUR_COLOURS = np.array([
    (0.10, 0.10, 0.10), (0.30, 0.30, 0.32), (0.55, 0.55, 0.57), (0.92, 0.92, 0.90),
    (0.93, 0.83, 0.65), (0.85, 0.50, 0.20), (0.45, 0.30, 0.18), (0.70, 0.55, 0.38),
    (0.85, 0.78, 0.68),
], dtype=np.float32)  # black, greys, white, cream, orange, brown, tan, pale
EYE_COLOURS = np.array([
    (0.40, 0.70, 0.30), (0.85, 0.75, 0.20), (0.85, 0.55, 0.15), (0.35, 0.60, 0.90),
    (0.60, 0.80, 0.40), (0.70, 0.40, 0.15), (0.60, 0.65, 0.65),
], dtype=np.float32)  # green, yellow, amber, blue, light green, copper, grey
NOSE_COLOURS = np.array([(0.90, 0.55, 0.60), (0.20, 0.15, 0.15), (0.55, 0.35, 0.30)], dtype=np.float32)
BACKGROUND_COLOURS = np.array([
    (0.20, 0.35, 0.60), (0.55, 0.75, 0.90), (0.25, 0.55, 0.30), (0.70, 0.85, 0.55),
    (0.80, 0.30, 0.30), (0.95, 0.75, 0.45), (0.55, 0.40, 0.70), (0.90, 0.90, 0.85),
    (0.35, 0.35, 0.40), (0.95, 0.60, 0.70),
], dtype=np.float32)  # blue, sky, green, lime, red, sand, purple, off-white, slate, pink
RIM, PUPIL, HIGHLIGHT = (np.array(colour, dtype=np.float32)
                         for colour in ((0.08, 0.07, 0.06), (0.03, 0.03, 0.03), (1, 1, 1)))

_CENTRES = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5 - IMAGE_SIZE / 2  # pixel centres


def generate_toyfaces(n: int, seed: int) -> np.ndarray:
    """`n` toy faces as uint8 [n, 64, 64, 3]; the same (n, seed) gives the same pixels."""
    if n < 1:
        raise BenchError(f"number of toy faces must be at least 1 (got {n})")
    rng = np.random.default_rng(seed)
    starts = range(0, n, CHUNK)
    batches = tqdm(starts, desc="drawing toy faces", unit="batch", disable=None, leave=False)
    return np.concatenate([_render(rng, min(CHUNK, n - start)) for start in batches])


def build_toyfaces_benchmark(out: str | Path, seed: int = 0, n_train: int = 10_000,
                             n_val: int = 1_000, n_test: int = 256, overwrite: bool = False) -> Path:
    """A lab-layout benchmark of toy faces (the defaults are the embedded benchmark's sizes)."""
    images = generate_toyfaces(n_train + n_val + n_test, seed)
    return write_benchmark(images, out, source=f"{BENCHMARK_NAME} generator, seed {seed}",
                           seed=seed, n_test=n_test, n_val=n_val, n_train=n_train,
                           overwrite=overwrite)


# --- geometry -------------------------------------------------------------------------------


class _Frame(NamedTuple):
    """Each face's own coordinates at every pixel, after its pose; arrays [b, 64, 64]."""

    u: np.ndarray  # right
    v: np.ndarray  # down
    scale: np.ndarray  # [b, 1, 1] pixels per face unit


def _per_image(values) -> np.ndarray:
    """[b] -> [b, 1, 1], to broadcast one value per face over its pixels."""
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


def _face_frame(rng: np.random.Generator, b: int) -> _Frame:
    """A small random rotation, zoom and shift per face."""
    angle = _per_image(rng.uniform(-0.3, 0.3, b))
    scale = _per_image(rng.uniform(0.85, 1.2, b))
    dx = _CENTRES[None, None, :] - _per_image(rng.uniform(-5, 5, b))
    dy = _CENTRES[None, :, None] - _per_image(rng.uniform(0, 8, b))
    cos, sin = np.cos(angle), np.sin(angle)
    return _Frame((cos * dx + sin * dy) / scale, (cos * dy - sin * dx) / scale, scale)


def _rotated_axes(rng: np.random.Generator, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Image pixel coordinates [b, 64, 64] along two random perpendicular axes, randomly shifted."""
    angle = _per_image(rng.uniform(0, np.pi, b))
    shift = rng.uniform(0, 64, (2, b))
    x, y = _CENTRES[None, None, :], _CENTRES[None, :, None]
    along = np.cos(angle) * x + np.sin(angle) * y + _per_image(shift[0])
    across = np.cos(angle) * y - np.sin(angle) * x + _per_image(shift[1])
    return along, across


def _coverage(frame: _Frame, distance: np.ndarray) -> np.ndarray:
    """Signed distance (face units, negative inside) -> soft pixel coverage in [0, 1]."""
    return np.clip(0.5 - distance * frame.scale / EDGE, 0, 1)


def _line_coverage(frame: _Frame, distance: np.ndarray, width: float) -> np.ndarray:
    """Coverage of a line `width` pixels wide from each pixel's distance to its centre line."""
    return np.clip(0.5 + (width / 2 - distance * frame.scale) / EDGE, 0, 1)


def _bands(position: np.ndarray, period, width) -> np.ndarray:
    """Coverage of parallel bands `width` pixels wide, one every `period` pixels of `position`."""
    off_centre = np.abs(position / period - np.round(position / period)) * period
    return np.clip(0.5 + (width / 2 - off_centre) / EDGE, 0, 1)


def _dots(x: np.ndarray, y: np.ndarray, period, radius) -> np.ndarray:
    """Coverage of round dots of `radius` pixels on a square grid `period` pixels apart."""
    dx = (x / period - np.round(x / period)) * period
    dy = (y / period - np.round(y / period)) * period
    return np.clip(0.5 + (radius - np.hypot(dx, dy)) / EDGE, 0, 1)


def _ellipse(frame: _Frame, cx, cy, rx, ry) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact on its short axis)."""
    k = np.sqrt(((frame.u - cx) / rx) ** 2 + ((frame.v - cy) / ry) ** 2)
    return (k - 1) * np.minimum(rx, ry, dtype=np.float32)


def _triangle(frame: _Frame, corners: np.ndarray) -> np.ndarray:
    """Signed distance to triangles with corners [b, 3, 2] (exact inside, close outside)."""
    first, second = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    winding = np.sign(first[:, 0] * second[:, 1] - first[:, 1] * second[:, 0])
    distance = None
    for i in range(3):
        start, edge = corners[:, i], corners[:, (i + 1) % 3] - corners[:, i]
        inward = winding[:, None] * np.stack([-edge[:, 1], edge[:, 0]], axis=1)
        inward /= np.linalg.norm(inward, axis=1, keepdims=True)
        outside = -((frame.u - _per_image(start[:, 0])) * _per_image(inward[:, 0])
                    + (frame.v - _per_image(start[:, 1])) * _per_image(inward[:, 1]))
        distance = outside if distance is None else np.maximum(distance, outside)
    return distance


def _segment(frame: _Frame, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance to segments from start [b, 2] to end [b, 2]."""
    sx, sy = _per_image(start[:, 0]), _per_image(start[:, 1])
    ex, ey = _per_image(end[:, 0] - start[:, 0]), _per_image(end[:, 1] - start[:, 1])
    t = np.clip(((frame.u - sx) * ex + (frame.v - sy) * ey) / (ex**2 + ey**2 + 1e-6), 0, 1)
    return np.hypot(frame.u - sx - t * ex, frame.v - sy - t * ey)


def _smooth_noise(rng: np.random.Generator, b: int, cells: int) -> np.ndarray:
    """Values in [0, 1] on a cells x cells grid, bilinearly upsampled to [b, 64, 64]."""
    grid = rng.random((b, cells, cells), dtype=np.float32)
    position = np.clip((np.arange(IMAGE_SIZE) + 0.5) * cells / IMAGE_SIZE - 0.5, 0, cells - 1)
    low = np.minimum(position.astype(int), cells - 2)
    weight = (position - low).astype(np.float32)
    upsample = np.zeros((IMAGE_SIZE, cells), dtype=np.float32)
    upsample[np.arange(IMAGE_SIZE), low] = 1 - weight
    upsample[np.arange(IMAGE_SIZE), low + 1] = weight
    return upsample @ grid @ upsample.T


def _pick(rng: np.random.Generator, palette: np.ndarray, b: int, jitter: float) -> np.ndarray:
    """[b, 1, 1, 3] colours from a palette, each channel nudged by up to +-jitter."""
    colours = palette[rng.integers(len(palette), size=b)] + rng.uniform(-jitter, jitter, (b, 3))
    return np.clip(colours, 0, 1).astype(np.float32)[:, None, None, :]


def _pick_pair(rng: np.random.Generator, palette: np.ndarray, b: int, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """Two different colours of a palette per image, each [b, 1, 1, 3]."""
    first = rng.integers(len(palette), size=b)
    second = (first + rng.integers(1, len(palette), size=b)) % len(palette)
    return tuple(np.clip(palette[i] + rng.uniform(-jitter, jitter, (b, 3)), 0, 1).astype(np.float32)[:, None, None, :]
                 for i in (first, second))


def _paint(image: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Paint `colour` over `image` where `coverage` [b, 64, 64] says, blending soft edges."""
    return image + coverage[..., None] * (colour - image)


# --- layers ---------------------------------------------------------------------------------


def _background(rng: np.random.Generator, b: int) -> np.ndarray:
    """A gentle gradient, stripes, checks or polka dots in two palette colours, [b, 64, 64, 3].

    The patterns repeat every 10-18 pixels: a hole across them is not filled by smooth interpolation.
    """
    first, second = _pick_pair(rng, BACKGROUND_COLOURS, b, 0.05)
    along, across = _rotated_axes(rng, b)
    period = _per_image(rng.uniform(10, 18, b))
    gradient = 0.6 * np.clip(along / IMAGE_SIZE - 0.5, 0, 1)
    stripes = _bands(across, period, period * _per_image(rng.uniform(0.35, 0.6, b)))
    columns, rows = _bands(along, period, period / 2), _bands(across, period, period / 2)
    checks = columns + rows - 2 * columns * rows
    dots = _dots(along, across, period, period * _per_image(rng.uniform(0.2, 0.32, b)))
    kind = _per_image(rng.choice(4, size=b, p=[0.16, 0.28, 0.28, 0.28]))
    return _paint(first, np.select([kind == 0, kind == 1, kind == 2], [gradient, stripes, checks], dots), second)


def _fur(rng: np.random.Generator, b: int, frame: _Frame) -> np.ndarray:
    """Fur colour at every pixel, [b, 64, 64, 3]: plain, tabby-striped, spotted or patched."""
    base = _pick(rng, FUR_COLOURS, b, 0.04)
    darker = base * rng.uniform(0.35, 0.6, (b, 1, 1, 1)).astype(np.float32)
    other = np.where(rng.random((b, 1, 1, 1)) < 0.6, darker, _pick(rng, FUR_COLOURS, b, 0.04))
    angle = _per_image(rng.uniform(0, np.pi, b))
    across = frame.u * np.cos(angle) + frame.v * np.sin(angle)
    along = frame.v * np.cos(angle) - frame.u * np.sin(angle)
    wobble = _per_image(rng.uniform(0, 3, b)) * np.sin(along / _per_image(rng.uniform(4, 7, b))
                                                         + _per_image(rng.uniform(0, 2 * np.pi, b)))
    stripes = _bands((across + wobble) * frame.scale, _per_image(rng.uniform(7, 11, b)),
                     _per_image(rng.uniform(3, 5, b)))
    spots = np.zeros_like(frame.u)
    for _ in range(6):
        centre = rng.uniform(-18, 18, (2, b))
        radius = _per_image(rng.uniform(3, 6, b))
        spots = np.maximum(spots, _coverage(frame, _ellipse(frame, _per_image(centre[0]),
                                                              _per_image(centre[1]), radius, radius)))
    patches = np.clip((_smooth_noise(rng, b, 3) - 0.5) * 6, 0, 1)
    kind = _per_image(rng.choice(4, size=b, p=[0.2, 0.35, 0.2, 0.25]))
    mix = np.select([kind == 0, kind == 1, kind == 2], [np.zeros_like(spots), stripes, spots], patches)
    return _paint(base, mix, other)


def _render(rng: np.random.Generator, b: int) -> np.ndarray:
    """One batch of b faces, uint8 [b, 64, 64, 3], painted back to front."""
    frame = _face_frame(rng, b)
    image = _background(rng, b)
    half_width = _per_image(rng.uniform(19, 26, b))
    half_height = half_width * _per_image(rng.uniform(0.72, 1.05, b))
    shading = np.clip(1 - 0.25 * ((frame.u / half_width) ** 2 + (frame.v / half_height) ** 2), 0.6, 1)
    fur = _fur(rng, b, frame) * shading[..., None]
    image = _draw_ears(rng, frame, image, fur, half_width[:, 0, 0], half_height[:, 0, 0])
    image = _paint(image, _coverage(frame, _ellipse(frame, 0, 0, half_width, half_height)), fur)
    muzzle_y = half_height * _per_image(rng.uniform(0.25, 0.45, b))
    muzzle = _coverage(frame, _ellipse(frame, 0, muzzle_y, half_width * 0.45, half_height * 0.3))
    has_muzzle = _per_image(rng.random(b) < 0.5)
    image = _paint(image, muzzle * has_muzzle, _pick(rng, FUR_COLOURS[3:5], b, 0.04))
    image = _draw_eyes(rng, frame, image, half_width, half_height)
    image = _draw_nose_mouth(rng, frame, image, half_width[:, 0, 0], half_height[:, 0, 0])
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def _draw_ears(rng, frame, image, fur, half_width, half_height) -> np.ndarray:
    """Two triangular ears on top of the head, mirrored with a little asymmetry, pink inside."""
    b = len(half_width)
    lean = rng.uniform(0.35, 0.85, b)  # where the ear sits: angle from the top of the head
    base = half_width * rng.uniform(0.28, 0.42, b)
    height = half_width * rng.uniform(0.5, 0.95, b)
    tilt = rng.uniform(-0.3, 0.3, b)
    inside = _pick(rng, NOSE_COLOURS[:1], b, 0.08)
    outer, inner = np.zeros_like(frame.u), np.zeros_like(frame.u)
    for side in (-1, 1):
        angle = lean + rng.uniform(-0.08, 0.08, b)
        foot = 0.85 * np.stack([side * half_width * np.sin(angle), -half_height * np.cos(angle)], axis=1)
        along = np.stack([np.cos(angle), side * np.sin(angle)], axis=1)  # tangent to the head
        outward = np.stack([side * np.sin(angle + tilt), -np.cos(angle + tilt)], axis=1)
        tip = foot + height[:, None] * outward
        half_base = base[:, None] * along
        ear = np.stack([foot - half_base, foot + half_base, tip], axis=1)
        ear_inside = np.stack([foot - 0.55 * half_base, foot + 0.55 * half_base,
                               foot + 0.75 * (tip - foot)], axis=1)
        outer = np.maximum(outer, _coverage(frame, _triangle(frame, ear)))
        inner = np.maximum(inner, _coverage(frame, _triangle(frame, ear_inside)))
    return _paint(_paint(image, outer, fur), 0.8 * inner, inside)


def _draw_eyes(rng, frame, image, half_width, half_height) -> np.ndarray:
    """Two eyes of one colour: a dark rim, an iris, a round or slit pupil, a highlight."""
    b = len(half_width)
    spread = half_width * _per_image(rng.uniform(0.32, 0.45, b))
    level = -half_height * _per_image(rng.uniform(0.0, 0.25, b))
    rx = half_width * _per_image(rng.uniform(0.15, 0.22, b))
    ry = rx * _per_image(rng.uniform(0.65, 1.05, b))
    iris = _pick(rng, EYE_COLOURS, b, 0.05)
    slit = _per_image(rng.random(b) < 0.5)
    slit_width, round_width = _per_image(rng.uniform(0.25, 0.4, b)), _per_image(rng.uniform(0.4, 0.7, b))
    pupil_rx = rx * np.where(slit, slit_width, round_width)
    pupil_ry = np.where(slit, ry * 0.9, pupil_rx * ry / rx)
    gaze = rx * _per_image(rng.uniform(-0.25, 0.25, b))
    image = _paint(image, _eye_pair(frame, spread, 0, level, rx + 1, ry + 1), RIM)
    image = _paint(image, _eye_pair(frame, spread, 0, level, rx, ry), iris)
    image = _paint(image, _eye_pair(frame, spread, gaze, level, pupil_rx, pupil_ry), PUPIL)
    glint = _eye_pair(frame, spread, gaze - 0.35 * rx, level - 0.35 * ry, 1.2, 1.2)
    return _paint(image, 0.9 * glint, HIGHLIGHT)


def _eye_pair(frame, spread, x, y, rx, ry) -> np.ndarray:
    """Coverage of an ellipse at (x -+ spread, y): the same part of both eyes."""
    return np.maximum(*(_coverage(frame, _ellipse(frame, x + side * spread, y, rx, ry)) for side in (-1, 1)))


def _draw_nose_mouth(rng, frame, image, half_width, half_height) -> np.ndarray:
    """A triangular nose and a "w" mouth below it."""
    b = len(half_width)
    top = half_height * rng.uniform(0.15, 0.3, b)
    width = half_width * rng.uniform(0.09, 0.15, b)
    tip = top + width * rng.uniform(0.7, 1.1, b)
    middle = np.zeros(b)
    nose = np.stack([np.stack(corner, axis=1)
                     for corner in ((-width, top), (width, top), (middle, tip))], axis=1)
    image = _paint(image, _coverage(frame, _triangle(frame, nose)), _pick(rng, NOSE_COLOURS, b, 0.05))

    chin = tip + width * rng.uniform(0.5, 1.0, b)
    curl = _per_image(width * rng.uniform(0.6, 1.2, b))
    mouth = _segment(frame, np.stack([middle, tip], axis=1), np.stack([middle, chin], axis=1))
    for side in (-1, 1):  # lower halves of two circles meeting under the nose
        arc = np.abs(np.hypot(frame.u - side * curl, frame.v - _per_image(chin)) - curl)
        mouth = np.minimum(mouth, np.where(frame.v >= _per_image(chin), arc, np.inf))
    return _paint(image, 0.85 * _line_coverage(frame, mouth, 1.2), RIM)
