"""bench.toyfaces: deterministic, varied faces that build into a valid lab-layout benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.data import check_dataset, load_image_folder
from bench.errors import BenchError
from bench.toyfaces import build_toyfaces_benchmark, generate_toyfaces


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return generate_toyfaces(300, seed=0)


def test_shape_dtype_and_determinism(faces):
    assert faces.shape == (300, 64, 64, 3) and faces.dtype == np.uint8
    assert np.array_equal(generate_toyfaces(300, seed=0), faces)
    assert not np.array_equal(generate_toyfaces(300, seed=1)[:10], faces[:10])


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
    assert manifest["source"].startswith("toyfaces-v2") and manifest["seed"] == 2
    train = load_image_folder(out / "train").permute(0, 2, 3, 1).numpy()
    faces = {face.tobytes() for face in generate_toyfaces(19, seed=2)}
    assert {face.tobytes() for face in train} <= faces


def test_needs_at_least_one_face():
    with pytest.raises(BenchError, match="at least 1"):
        generate_toyfaces(0, seed=0)
