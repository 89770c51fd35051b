"""Shared fixtures: a tiny random MaskGIT checkpoint, a tiny lab-layout test set of toy faces, the
lab-format files committed under tests/fixtures, FID weights resolved once (so tests with their own
cache home need not convert them again), cache homes, a stand-in FID for tests of what surrounds it,
and fresh MLflow stores without migrations."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import fid
from bench import inception_weights as weights_lookup
from bench.data import HOLE_FILL, stroke_mask, write_gt_csv
from bench.toyfaces import generate_toyfaces
from maskgit.checkpoints import save_checkpoint
from maskgit.model import MaskGIT
from maskgit.presets import preset

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_TEST_IMAGES = 6


@pytest.fixture(scope="session")
def lab_format() -> Path:
    """The lab's checkpoint-format fixture (tiny state dicts made with the lab's code, their config,
    expected outputs, the full-size keys and shapes), committed so the suite needs nothing beside the clone."""
    return FIXTURES / "lab-format"


@pytest.fixture(scope="session")
def lab_sample_mask_file() -> Path:
    """The lab's sample mask, the file as the lab ships it (mode-L PNG, 0 = hole, 255 = known;
    free-form strokes over 23.6% of the pixels): a mask only, no image."""
    return FIXTURES / "lab_sample_mask.png"


@pytest.fixture(scope="session")
def inception_weights() -> Path:
    """The FID InceptionV3 weights file, resolved (converted at most once) in the real cache home.

    Request it before changing MASKGIT_BENCH_HOME; `bench_home` does so.
    """
    return weights_lookup.resolve_inception_weights()


@pytest.fixture(scope="session")
def shared_bench_home(tmp_path_factory) -> Path:
    """One cache home for the whole session, so tests reuse each other's tokens, FID references and
    trial results (each FID costs seconds on these CPUs); tests that need a cold cache make their own."""
    return tmp_path_factory.mktemp("bench-home")


@pytest.fixture
def bench_home(shared_bench_home, inception_weights, monkeypatch) -> Path:
    """MASKGIT_BENCH_HOME pointing at the session's cache home, the FID weights kept (for this test only)."""
    monkeypatch.setenv("MASKGIT_BENCH_HOME", str(shared_bench_home))
    monkeypatch.setenv(weights_lookup.WEIGHTS_ENV, str(inception_weights))
    return shared_bench_home


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A `tiny`-preset MaskGIT with random weights (seed 0), saved as one of our checkpoints."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("checkpoints") / "tiny"
    save_checkpoint(directory, MaskGIT(*preset("tiny")), meta={"note": "random weights, for tests"})
    return directory


def write_test_folder(folder: Path, gt: np.ndarray, holes: np.ndarray) -> Path:
    """A test-only folder in the lab layout: masked_image/, mask64/, gt/ and test_gt.csv."""
    masked = np.where(holes[..., None], np.uint8(HOLE_FILL), gt)
    for sub in ("masked_image", "mask64", "gt"):
        (folder / sub).mkdir(parents=True)
    for i in range(len(gt)):
        Image.fromarray(masked[i]).save(folder / "masked_image" / f"image_{i:03d}.png")
        Image.fromarray(np.where(holes[i], 0, 255).astype(np.uint8)).save(folder / "mask64" / f"mask_{i:03d}.png")
        Image.fromarray(gt[i]).save(folder / "gt" / f"image_{i:03d}.png")
    write_gt_csv(folder / "test_gt.csv", torch.from_numpy(gt).permute(0, 3, 1, 2))
    return folder


@pytest.fixture(scope="session")
def tiny_test_set(tmp_path_factory) -> Path:
    """Six toy faces with free-form stroke masks (seed 0), as a test-only lab folder."""
    gt = generate_toyfaces(TINY_TEST_IMAGES, seed=0)
    rng = np.random.default_rng(0)
    holes = np.stack([stroke_mask(rng) for _ in gt])
    return write_test_folder(tmp_path_factory.mktemp("data") / "test", gt, holes)


class PixelFeatures(fid.InceptionFeatures):
    """A stand-in for the Inception network with its weights' identity: 192 features per image, the
    means of its 8x8 pixel blocks in [0, 1]. Cheap and deterministic; every statistic computed from
    them (FID, interval, KID) is the real one."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        blocks = torch.nn.functional.avg_pool2d(fid.check_images(images, "images").double() / 255, 8)
        return blocks.flatten(1)


@pytest.fixture(scope="session")
def stand_in_features():
    """The class to patch over bench.trial.InceptionFeatures: pixel blocks instead of the network."""
    return PixelFeatures


@pytest.fixture(scope="session")
def instant_fid_context(tmp_path_factory, inception_weights):
    """`with instant_fid_context(): ...` scores trials on stand-in features, for tests of what happens
    around the FID. Its results live in a cache home of their own (shared by the tests that use it),
    never mixed with real ones. Worker processes are not patched: they find these results in the
    (inherited) cache home. The `instant_fid` fixture does this for one test."""
    from bench import trial

    home = tmp_path_factory.mktemp("instant-fid-home")

    @contextmanager
    def patched():
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MASKGIT_BENCH_HOME", str(home))
            patch.setenv(weights_lookup.WEIGHTS_ENV, str(inception_weights))
            patch.setattr(trial, "InceptionFeatures", PixelFeatures)
            yield home

    return patched


@pytest.fixture
def instant_fid(instant_fid_context) -> Path:
    with instant_fid_context() as home:
        yield home


@pytest.fixture(scope="session")
def empty_mlflow_database(tmp_path_factory) -> Path:
    """An MLflow sqlite store with its schema made once (migrations take seconds) and nothing else."""
    from bench.tracking import tracking_client

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    tracking_client(f"sqlite:///{path}")
    return path


@pytest.fixture
def tracking_uri(tmp_path, empty_mlflow_database) -> str:
    """A fresh MLflow store for this test (a copy of the empty one)."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(empty_mlflow_database, path)
    return f"sqlite:///{path}"


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine syncing two
    threads costs up to seconds per call; tests that run many small forward passes use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
