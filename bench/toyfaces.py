"""Procedural 64x64 "toy faces": cat-like faces the package can regenerate from a seed.

They stand in for the real cat faces wherever no download is possible: the embedded default
benchmark and the model trained on it. Each face varies in pose, head shape, ears, eyes, nose,
mouth, whiskers, fur colour and texture, and background, so inpainting a hole is not trivial.
Everything is drawn as signed distances on whole batches (numpy), with soft edges.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from bench.data import IMAGE_SIZE, write_benchmark
from bench.errors import BenchError

BENCHMARK_NAME = "toyfaces-v1"  # cache folder of the embedded benchmark: bump when output changes
CHUNK = 256  # faces rendered per batch (memory stays ~100 MB)

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


def _coverage(frame: _Frame, distance: np.ndarray) -> np.ndarray:
    """Signed distance (face units, negative inside) -> antialiased pixel coverage in [0, 1]."""
    return np.clip(0.5 - distance * frame.scale, 0, 1)


def _line_coverage(frame: _Frame, distance: np.ndarray, width: float) -> np.ndarray:
    """Coverage of a line `width` pixels wide from each pixel's distance to its centre line."""
    return np.clip(0.5 + width / 2 - distance * frame.scale, 0, 1)


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


def _paint(image: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Paint `colour` over `image` where `coverage` [b, 64, 64] says, blending soft edges."""
    return image + coverage[..., None] * (colour - image)


# --- layers ---------------------------------------------------------------------------------


def _background(rng: np.random.Generator, b: int) -> np.ndarray:
    """Solid, gradient or blotchy backgrounds in two random colours, [b, 64, 64, 3]."""
    first, second = (rng.uniform(0.05, 0.95, (b, 1, 1, 3)).astype(np.float32) for _ in range(2))
    angle = rng.uniform(0, 2 * np.pi, b)
    gradient = (_CENTRES[None, None, :] * _per_image(np.cos(angle))
                + _CENTRES[None, :, None] * _per_image(np.sin(angle))) / IMAGE_SIZE + 0.5
    kind = _per_image(rng.integers(3, size=b))
    mix = np.where(kind == 0, 0, np.where(kind == 1, gradient, _smooth_noise(rng, b, 5)))
    return _paint(first, mix, second)


def _fur(rng: np.random.Generator, b: int, frame: _Frame) -> np.ndarray:
    """Fur colour at every pixel, [b, 64, 64, 3]: plain, striped, spotted or patched, with grain."""
    base = _pick(rng, FUR_COLOURS, b, 0.06)
    darker = base * rng.uniform(0.3, 0.7, (b, 1, 1, 1)).astype(np.float32)
    other = np.where(rng.random((b, 1, 1, 1)) < 0.5, darker, _pick(rng, FUR_COLOURS, b, 0.06))
    angle = _per_image(rng.uniform(0, np.pi, b))
    across = frame.u * np.cos(angle) + frame.v * np.sin(angle)
    wave = np.sin(_per_image(rng.uniform(0.5, 1.1, b)) * across + 3 * _smooth_noise(rng, b, 4))
    stripes = np.clip((wave - 0.2) * 2, 0, 1)
    spots = np.zeros_like(frame.u)
    for _ in range(6):
        centre = rng.uniform(-18, 18, (2, b))
        radius = _per_image(rng.uniform(2, 6, b))
        spots = np.maximum(spots, _coverage(frame, _ellipse(frame, _per_image(centre[0]),
                                                              _per_image(centre[1]), radius, radius)))
    patches = np.clip((_smooth_noise(rng, b, 3) - 0.5) * 6, 0, 1)
    kind = _per_image(rng.integers(4, size=b))
    mix = np.select([kind == 0, kind == 1, kind == 2], [np.zeros_like(spots), stripes, spots], patches)
    grain = 1 + 0.15 * (_smooth_noise(rng, b, 16) - 0.5)
    return _paint(base, mix, other) * grain[..., None]


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
    has_muzzle = _per_image(rng.random(b) < 0.4)
    image = _paint(image, muzzle * has_muzzle, _pick(rng, FUR_COLOURS[3:5], b, 0.04))
    image = _draw_eyes(rng, frame, image, half_width, half_height)
    image = _draw_nose_mouth_whiskers(rng, frame, image, half_width[:, 0, 0], half_height[:, 0, 0])
    grain = _per_image(rng.uniform(0.005, 0.02, b))[..., None]
    image = image + grain * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def _draw_ears(rng, frame, image, fur, half_width, half_height) -> np.ndarray:
    """Two triangular ears on top of the head, mirrored with a little asymmetry, pink inside."""
    b = len(half_width)
    lean = rng.uniform(0.35, 0.85, b)  # where the ear sits: angle from the top of the head
    base = half_width * rng.uniform(0.25, 0.42, b)
    height = half_width * rng.uniform(0.45, 0.95, b)
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
    """Two eyes: a dark rim, a coloured iris, a round or slit pupil, a highlight."""
    b = len(half_width)
    spread = half_width * _per_image(rng.uniform(0.3, 0.45, b))
    level = -half_height * _per_image(rng.uniform(0.0, 0.25, b))
    rx = half_width * _per_image(rng.uniform(0.12, 0.2, b))
    ry = rx * _per_image(rng.uniform(0.6, 1.05, b))
    iris = _pick(rng, EYE_COLOURS, b, 0.08)
    slit = _per_image(rng.random(b) < 0.5)
    slit_width, round_width = _per_image(rng.uniform(0.12, 0.3, b)), _per_image(rng.uniform(0.35, 0.7, b))
    pupil_rx = rx * np.where(slit, slit_width, round_width)
    pupil_ry = np.where(slit, ry * 0.9, pupil_rx * ry / rx)
    gaze = rx * _per_image(rng.uniform(-0.25, 0.25, b))
    image = _paint(image, _eye_pair(frame, spread, 0, level, rx + 0.8, ry + 0.8), RIM)
    image = _paint(image, _eye_pair(frame, spread, 0, level, rx, ry), iris)
    image = _paint(image, _eye_pair(frame, spread, gaze, level, pupil_rx, pupil_ry), PUPIL)
    glint = _eye_pair(frame, spread, gaze - 0.35 * rx, level - 0.35 * ry, 0.9, 0.9)
    return _paint(image, 0.9 * glint, HIGHLIGHT)


def _eye_pair(frame, spread, x, y, rx, ry) -> np.ndarray:
    """Coverage of an ellipse at (x -+ spread, y): the same part of both eyes."""
    return np.maximum(*(_coverage(frame, _ellipse(frame, x + side * spread, y, rx, ry)) for side in (-1, 1)))


def _draw_nose_mouth_whiskers(rng, frame, image, half_width, half_height) -> np.ndarray:
    """A triangular nose, a "w" mouth below it, and (mostly) three whiskers a side."""
    b = len(half_width)
    top = half_height * rng.uniform(0.15, 0.3, b)
    width = half_width * rng.uniform(0.07, 0.14, b)
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
    image = _paint(image, 0.85 * _line_coverage(frame, mouth, 0.9), RIM)

    length = half_width * rng.uniform(0.6, 1.0, b)
    droop = rng.uniform(-0.2, 0.2, b)
    whiskers = np.full_like(mouth, np.inf)
    for side in (-1, 1):
        for row in (-1, 0, 1):
            start = np.stack([side * (width + 1.5), tip + row * 1.2], axis=1)
            angle = droop + row * 0.25
            end = start + length[:, None] * np.stack([side * np.cos(angle), np.sin(angle)], axis=1)
            whiskers = np.minimum(whiskers, _segment(frame, start, end))
    colour = np.where(rng.random((b, 1, 1, 1)) < 0.5, 0.95, 0.15).astype(np.float32)
    opacity = _per_image(rng.uniform(0.4, 0.9, b) * (rng.random(b) < 0.75))
    return _paint(image, opacity * _line_coverage(frame, whiskers, 0.6), colour)
