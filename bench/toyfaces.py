"""Procedural 64x64 "toy faces": cat-like faces the package can regenerate from a seed.

They stand in for the real cat faces wherever no download is possible: the embedded default
benchmark and the model trained on it. Each face varies in position, size, head shape, ears, eyes
(two of one colour), nose, mouth, fur colour and pattern (tabby stripes, a blaze, spots), and a
patterned background (stripes, checks, dots), so a hole is not filled by smooth interpolation.

Every choice is drawn from a few discrete values, on the grid of a 16x16-token tokenizer (4x4 pixels
a token): faces are upright and centred on token corners, patterns repeat every 2 to 8 tokens (stripes
and checks with their edges on token borders), colours come from palettes as they are, and the eyes
and ears of a face mirror each other. So what a hole hides can be inferred from what surrounds it (the
pattern's period and phase, the other eye, the other ear) at the level of tokens, which is what makes
the faces learnable by a small transformer (docs/architecture.md, "The embedded toy benchmark").
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from bench.data import IMAGE_SIZE, write_benchmark
from bench.errors import BenchError

BENCHMARK_NAME = "toyfaces-v3"  # cache folder of the embedded benchmark: bump when output changes
CHUNK = 256  # faces rendered per batch (memory stays ~100 MB)
EDGE = 1.5  # pixels over which a face's outlines fade: soft, yet much sharper than a 4x4-pixel token
DOT_EDGE = 1.0  # pixels over which a dot's round edge fades (bands have hard edges, on token borders)
TOKEN = 4  # pixels a token spans: pattern phases and face positions are multiples of it

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
    """Pixel coordinates from each face's centre (a token corner): u to the right [b, 1, 64], v down
    [b, 64, 1]."""

    u: np.ndarray
    v: np.ndarray


def _per_image(values) -> np.ndarray:
    """[b] -> [b, 1, 1], to broadcast one value per face over its pixels."""
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


def _choose(rng: np.random.Generator, values, b: int) -> np.ndarray:
    """[b] values, each one of `values` with equal chance."""
    return np.asarray(values, dtype=np.float32)[rng.integers(len(values), size=b)]


def _face_frame(rng: np.random.Generator, b: int) -> _Frame:
    """Faces upright, their centres on token corners near the middle (a little low, for the ears)."""
    cx = _per_image(_choose(rng, (-TOKEN, 0, TOKEN), b))
    cy = _per_image(_choose(rng, (0, TOKEN, 2 * TOKEN), b))
    return _Frame(_CENTRES[None, None, :] - cx, _CENTRES[None, :, None] - cy)


def _coverage(distance: np.ndarray) -> np.ndarray:
    """Signed distance (pixels, negative inside) -> soft pixel coverage in [0, 1]."""
    return np.clip(0.5 - distance / EDGE, 0, 1)


def _line_coverage(distance: np.ndarray, width: float) -> np.ndarray:
    """Coverage of a line `width` pixels wide from each pixel's distance to its centre line."""
    return np.clip(0.5 + (width / 2 - distance) / EDGE, 0, 1)


def _bands(position: np.ndarray, period, phase) -> np.ndarray:
    """Coverage (0 or 1) of bands half a `period` wide, from `phase` to `phase` + period / 2 (mod
    period): with both whole tokens, each band's edges lie on token borders."""
    return ((position - phase) % period < period / 2).astype(np.float32)


def _dots(x: np.ndarray, y: np.ndarray, period, radius) -> np.ndarray:
    """Coverage of round dots of `radius` pixels centred on (0, 0) and every `period` pixels from it."""
    dx = (x / period - np.round(x / period)) * period
    dy = (y / period - np.round(y / period)) * period
    return np.clip(0.5 + (radius - np.hypot(dx, dy)) / DOT_EDGE, 0, 1)


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


def _pick(rng: np.random.Generator, palette: np.ndarray, b: int) -> np.ndarray:
    """[b, 1, 1, 3] colours from a palette."""
    return palette[rng.integers(len(palette), size=b)][:, None, None, :]


def _pick_pair(rng: np.random.Generator, palette: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Two different colours of a palette per image, each [b, 1, 1, 3]."""
    first = rng.integers(len(palette), size=b)
    second = (first + rng.integers(1, len(palette), size=b)) % len(palette)
    return palette[first][:, None, None, :], palette[second][:, None, None, :]


def _paint(image: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Paint `colour` over `image` where `coverage` [b, 64, 64] says, blending soft edges."""
    return image + coverage[..., None] * (colour - image)


def _token_phase(rng: np.random.Generator, period: np.ndarray) -> np.ndarray:
    """[b, 1, 1] pattern phases: a whole number of tokens below each image's `period` [b, 1, 1]."""
    return TOKEN * np.floor(rng.random(period.shape) * period / TOKEN).astype(np.float32)


def _one_pattern_each(rng: np.random.Generator, b: int, patterns: list[np.ndarray],
                      odds: list[float]) -> np.ndarray:
    """[b, 64, 64] coverage: each image's from one of `patterns` (each broadcasting to [b, 64, 64]),
    drawn with `odds`."""
    kind = _per_image(rng.choice(len(patterns), size=b, p=odds))
    return np.select([kind == i for i in range(len(patterns))], patterns)


# --- layers ---------------------------------------------------------------------------------


def _background(rng: np.random.Generator, b: int) -> np.ndarray:
    """Plain, or stripes (vertical, horizontal, diagonal), checks or polka dots in two palette
    colours, [b, 64, 64, 3], on the token grid: stripes and checks repeat every 8 or 16 pixels,
    diagonals and dots every 16 or 32."""
    first, second = _pick_pair(rng, BACKGROUND_COLOURS, b)
    x, y = _CENTRES[None, None, :], _CENTRES[None, :, None]
    period = _per_image(_choose(rng, (2 * TOKEN, 4 * TOKEN), b))
    phase_x, phase_y = _token_phase(rng, period), _token_phase(rng, period)
    columns, rows = _bands(x, period, phase_x), _bands(y, period, phase_y)
    diagonal = _bands(x + np.where(rng.random((b, 1, 1)) < 0.5, y, -y), 2 * period, phase_x)
    dots = _dots(x - phase_x, y - phase_y, 2 * period, period * 0.25 + 1)
    checks = columns + rows - 2 * columns * rows
    plain = np.zeros_like(columns)
    pattern = _one_pattern_each(rng, b, [plain, columns, rows, diagonal, checks, dots],
                                   [0.1, 0.18, 0.18, 0.18, 0.18, 0.18])
    return _paint(first, pattern, second)


def _fur(rng: np.random.Generator, b: int, frame: _Frame) -> np.ndarray:
    """Fur colour at every pixel, [b, 64, 64, 3]: plain, tabby stripes (across or down), a blaze down
    the middle, or spots, all on the token grid."""
    base = _pick(rng, FUR_COLOURS, b)
    darker = base * _choose(rng, (0.4, 0.55), b)[:, None, None, None]
    other = np.where(rng.random((b, 1, 1, 1)) < 0.6, darker, _pick(rng, FUR_COLOURS, b))
    phase = _per_image(_choose(rng, (0, TOKEN), b))
    stripes = _bands(np.where(rng.random((b, 1, 1)) < 0.5, frame.u, frame.v), 2 * TOKEN, phase)
    half_blaze = _per_image(_choose(rng, (TOKEN, 2 * TOKEN), b))
    blaze = (np.abs(frame.u) < half_blaze).astype(np.float32)
    spots = _dots(frame.u - 2 * TOKEN, frame.v - phase, 4 * TOKEN, _per_image(_choose(rng, (3, 4), b)))
    plain = np.zeros_like(stripes)
    pattern = _one_pattern_each(rng, b, [plain, stripes, blaze, spots], [0.2, 0.35, 0.2, 0.25])
    return _paint(base, pattern, other)


def _render(rng: np.random.Generator, b: int) -> np.ndarray:
    """One batch of b faces, uint8 [b, 64, 64, 3], painted back to front."""
    frame = _face_frame(rng, b)
    image = _background(rng, b)
    half_width = _per_image(_choose(rng, (20, 22, 24), b))
    half_height = half_width * _per_image(_choose(rng, (0.8, 0.9, 1.0), b))
    fur = _fur(rng, b, frame)
    image = _draw_ears(rng, frame, image, fur, half_width[:, 0, 0], half_height[:, 0, 0])
    image = _paint(image, _coverage(_ellipse(frame, 0, 0, half_width, half_height)), fur)
    muzzle_y = half_height * _per_image(_choose(rng, (0.3, 0.4), b))
    muzzle = _coverage(_ellipse(frame, 0, muzzle_y, half_width * 0.45, half_height * 0.3))
    has_muzzle = _per_image(rng.random(b) < 0.5)
    image = _paint(image, muzzle * has_muzzle, _pick(rng, FUR_COLOURS[3:5], b))
    image = _draw_eyes(rng, frame, image, half_width, half_height)
    image = _draw_nose_mouth(rng, frame, image, half_width[:, 0, 0], half_height[:, 0, 0])
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def _draw_ears(rng, frame, image, fur, half_width, half_height) -> np.ndarray:
    """Two triangular ears on top of the head, mirror images of each other, pink inside."""
    b = len(half_width)
    angle = _choose(rng, (0.45, 0.6, 0.75), b)  # where the ears sit: angle from the top of the head
    base = half_width * _choose(rng, (0.3, 0.38), b)
    height = half_width * _choose(rng, (0.6, 0.8), b)
    tilt = _choose(rng, (-0.15, 0, 0.15), b)
    outer, inner = np.zeros_like(frame.u), np.zeros_like(frame.u)
    for side in (-1, 1):
        foot = 0.85 * np.stack([side * half_width * np.sin(angle), -half_height * np.cos(angle)], axis=1)
        along = np.stack([np.cos(angle), side * np.sin(angle)], axis=1)  # tangent to the head
        outward = np.stack([side * np.sin(angle + tilt), -np.cos(angle + tilt)], axis=1)
        tip = foot + height[:, None] * outward
        half_base = base[:, None] * along
        ear = np.stack([foot - half_base, foot + half_base, tip], axis=1)
        ear_inside = np.stack([foot - 0.55 * half_base, foot + 0.55 * half_base,
                               foot + 0.75 * (tip - foot)], axis=1)
        outer = np.maximum(outer, _coverage(_triangle(frame, ear)))
        inner = np.maximum(inner, _coverage(_triangle(frame, ear_inside)))
    return _paint(_paint(image, outer, fur), 0.8 * inner, NOSE_COLOURS[0])


def _draw_eyes(rng, frame, image, half_width, half_height) -> np.ndarray:
    """Two eyes of one colour: a dark rim, an iris, a round or slit pupil, a highlight."""
    b = len(half_width)
    spread = half_width * _per_image(_choose(rng, (0.36, 0.42), b))
    level = -half_height * _per_image(_choose(rng, (0, 0.12, 0.24), b))
    rx = half_width * _per_image(_choose(rng, (0.17, 0.21), b))
    ry = rx * _per_image(_choose(rng, (0.75, 1.0), b))
    iris = _pick(rng, EYE_COLOURS, b)
    slit = _per_image(rng.random(b) < 0.5)
    pupil_rx = rx * np.where(slit, 0.3, 0.55)
    pupil_ry = np.where(slit, ry * 0.9, pupil_rx * ry / rx)
    gaze = rx * _per_image(_choose(rng, (-0.2, 0, 0.2), b))
    image = _paint(image, _eye_pair(frame, spread, 0, level, rx + 1, ry + 1), RIM)
    image = _paint(image, _eye_pair(frame, spread, 0, level, rx, ry), iris)
    image = _paint(image, _eye_pair(frame, spread, gaze, level, pupil_rx, pupil_ry), PUPIL)
    glint = _eye_pair(frame, spread, gaze - 0.35 * rx, level - 0.35 * ry, 1.2, 1.2)
    return _paint(image, 0.9 * glint, HIGHLIGHT)


def _eye_pair(frame, spread, x, y, rx, ry) -> np.ndarray:
    """Coverage of an ellipse at (x -+ spread, y): the same part of both eyes."""
    return np.maximum(*(_coverage(_ellipse(frame, x + side * spread, y, rx, ry)) for side in (-1, 1)))


def _draw_nose_mouth(rng, frame, image, half_width, half_height) -> np.ndarray:
    """A triangular nose and a "w" mouth below it."""
    b = len(half_width)
    top = half_height * _choose(rng, (0.18, 0.26), b)
    width = half_width * _choose(rng, (0.1, 0.13), b)
    tip = top + 0.9 * width
    middle = np.zeros(b)
    nose = np.stack([np.stack(corner, axis=1)
                     for corner in ((-width, top), (width, top), (middle, tip))], axis=1)
    image = _paint(image, _coverage(_triangle(frame, nose)), _pick(rng, NOSE_COLOURS, b))

    chin = tip + 0.75 * width
    curl = _per_image(0.9 * width)
    mouth = _segment(frame, np.stack([middle, tip], axis=1), np.stack([middle, chin], axis=1))
    for side in (-1, 1):  # lower halves of two circles meeting under the nose
        arc = np.abs(np.hypot(frame.u - side * curl, frame.v - _per_image(chin)) - curl)
        mouth = np.minimum(mouth, np.where(frame.v >= _per_image(chin), arc, np.inf))
    return _paint(image, 0.85 * _line_coverage(mouth, 1.2), RIM)
