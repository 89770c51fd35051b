"""bench.toyfaces: deterministic, varied faces on the token grid (pattern edges on token borders, mirrored
ears, one eye drawn twice) that build into a valid lab-layout benchmark."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from bench.data import check_dataset, load_image_folder
from bench.errors import BenchError
from bench.toyfaces import (
    _CENTRES,
    BENCHMARK_NAME,
    _bands,
    _draw_ears,
    _eye_pair,
    _Frame,
    build_toyfaces_benchmark,
    generate_toyfaces,
)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return generate_toyfaces(300, seed=0)


def test_shape_dtype_and_determinism(faces):
    assert faces.shape == (300, 64, 64, 3) and faces.dtype == np.uint8
    assert np.array_equal(generate_toyfaces(300, seed=0), faces)
    assert not np.array_equal(generate_toyfaces(300, seed=1)[:10], faces[:10])


def test_output_is_pinned_to_the_benchmark_name():
    """The embedded benchmark is cached under BENCHMARK_NAME and the shipped model's card quotes its
    content hash: any change to the pixels must come with a new name (and a new card)."""
    assert BENCHMARK_NAME == "toyfaces-v3"
    assert hashlib.sha256(generate_toyfaces(16, seed=0).tobytes()).hexdigest()[:16] == "422e690929af6ffc"


def test_pattern_bands_start_and_end_on_token_borders():
    """Bands half a period wide, at a phase of whole tokens: pixel columns 4k..4k+3 are all in or all out."""
    assert _bands(_CENTRES, 8, 0).astype(int).tolist() == [1, 1, 1, 1, 0, 0, 0, 0] * 8
    assert _bands(_CENTRES, 16, 4).astype(int).tolist() == ([0] * 4 + [1] * 8 + [0] * 4) * 4


def _centred_frame(b: int) -> _Frame:
    """b faces centred in the image, between pixel columns 31 and 32."""
    offset = np.zeros((b, 1, 1), dtype=np.float32)
    return _Frame(_CENTRES[None, None, :] + offset, _CENTRES[None, :, None] + offset)


def test_ears_mirror_each_other():
    """Drawn alone on a black image, a centred face's two ears are each other's mirror image."""
    b = 8
    image = _draw_ears(np.random.default_rng(0), _centred_frame(b), np.zeros((b, 64, 64, 3), np.float32),
                       np.ones((b, 1, 1, 3), np.float32), np.full(b, 22.0), np.full(b, 20.0))
    assert (image[:, :, :32].max(axis=(1, 2, 3)) == 1).all()  # each face has a left ear
    np.testing.assert_allclose(image, image[:, :, ::-1], atol=1e-5)


def test_both_eyes_are_one_drawing_moved():
    """Rim, iris, pupil and highlight of the right eye are the left eye's moved by 2 * spread, gaze and
    all: with a spread of 8 pixels, columns 16..31 (left eye) repeat as columns 32..47 (right eye)."""
    coverage = _eye_pair(_centred_frame(1), 8.0, 1.3, -3.0, 4.0, 3.0)
    left, right = coverage[0, :, 16:32], coverage[0, :, 32:48]
    assert left.sum() > 20  # an eye of about pi * 4 * 3 pixels
    np.testing.assert_allclose(left, right, atol=1e-5)


def test_most_background_tokens_are_one_colour(faces):
    """The top-left 2x2 tokens (background): stripes and checks on the token grid leave them flat;
    only diagonal stripes and dots cross them (a tokenizer's codes repeat, a transformer can continue them)."""
    corner = faces[:, :8, :8].reshape(len(faces), 2, 4, 2, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(-1, 16, 3)
    flat = (corner.max(axis=1).astype(int) - corner.min(axis=1)).max(axis=1) == 0
    assert flat.mean() > 0.7


def test_faces_vary_between_images(faces):
    assert len({face.tobytes() for face in faces}) == len(faces)
    means = faces.reshape(len(faces), -1, 3).mean(axis=1)
    assert means.std(axis=0).min() > 15  # colours differ from face to face
    centre = faces[:, 24:40, 24:40].astype(float)
    assert np.abs(centre - centre.mean(axis=0)).mean() > 25  # the middle is not a fixed template


def test_faces_have_detail_to_inpaint(faces):
    """A 16x16 patch in the face is rarely flat: holes can't be filled with one colour."""
    patches = faces[:, 20:36, 16:48].reshape(len(faces), -1, 3).astype(float)
    assert np.median(patches.std(axis=1).mean(axis=1)) > 10
    vertical_edges = np.abs(np.diff(faces.astype(float), axis=2)).mean()
    assert vertical_edges > 3


def test_face_is_centred_on_a_background(faces):
    """The middle of an image usually differs from its corners (face vs background)."""
    centre = faces[:, 28:36, 28:36].reshape(len(faces), -1, 3).mean(axis=1)
    corners = faces[:, :4, :4].reshape(len(faces), -1, 3).mean(axis=1)
    assert (np.abs(centre - corners).sum(axis=1) > 30).mean() > 0.8


def test_build_toyfaces_benchmark_checks_clean(tmp_path):
    out = build_toyfaces_benchmark(tmp_path / "toy", seed=2, n_train=12, n_val=3, n_test=4)
    summary = check_dataset(out)
    assert (summary.n_train, summary.n_val, summary.n_test) == (12, 3, 4)
    manifest = json.loads((out / "benchmark.json").read_text())
    assert manifest["source"].startswith("toyfaces-v3") and manifest["seed"] == 2
    train = load_image_folder(out / "train").permute(0, 2, 3, 1).numpy()
    faces = {face.tobytes() for face in generate_toyfaces(19, seed=2)}
    assert {face.tobytes() for face in train} <= faces


def test_needs_at_least_one_face():
    with pytest.raises(BenchError, match="at least 1"):
        generate_toyfaces(0, seed=0)
