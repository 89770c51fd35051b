"""bench train's recipe options: stage 1's learning-rate floor, adversarial weight, best epoch by
validation PSNR or reconstruction FID; stage 2's hole-shaped masks; bad values as one line."""

import pytest
from typer.testing import CliRunner

from bench.toyfaces import build_toyfaces_benchmark
from cli import app
from maskgit.checkpoints import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("toy") / "bench"
    build_toyfaces_benchmark(data, n_train=16, n_val=4, n_test=4)
    return data


def train(*args):
    return CliRunner().invoke(app, ["train", *args])


def test_vqgan_recipe_options_reach_the_run_and_keep_the_best_epoch(tmp_path, toy_data, bench_home):
    common = ["--data", str(toy_data), "--preset", "tiny", "--device", "cpu", "--batch-size", "8",
              "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    out = tmp_path / "vq"
    result = train("vqgan", *common, "--out", str(out), "--epochs", "2", "--lr-floor", "1e-5", "--disc-start", "1",
                   "--disc-weight", "0.3", "--adaptive-disc-weight", "--fid-images", "4", "--keep-best", "val_recon_fid")
    assert result.exit_code == 0, result.output
    best = load_checkpoint(out / "best", require_transformer=False)[1]["meta"]
    epochs = [load_checkpoint(p, require_transformer=False)[1]["meta"] for p in sorted(out.glob("epoch-*"))]
    assert best["val_recon_fid"] == min(meta["val_recon_fid"] for meta in epochs)
    recipe = best["train_config"]
    assert (recipe["lr_floor"], recipe["disc_weight"], recipe["adaptive_disc_weight"]) == (1e-5, 0.3, True)
    result = train("transformer", *common, "--vqgan", str(out / "best"), "--out", str(tmp_path / "tr"),
                   "--epochs", "1", "--hole-masks", "0.5", "--warmup-steps", "1")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "tr")[1]["meta"]["train_config"]["hole_masks"] == 0.5


@pytest.mark.parametrize(("args", "message"), [
    (["vqgan", "--keep-best", "val_loss"], "--keep-best: 'val_loss' is not a vqgan validation metric"),
    (["vqgan", "--keep-best", "val_recon_fid"], "--keep-best val_recon_fid needs --fid-images N"),
    (["vqgan", "--fid-images", "1"], "--fid-images: FID needs at least 2 images"),
])
def test_bad_recipe_options_are_one_line(tmp_path, toy_data, args, message):
    result = train(*args, "--data", str(toy_data), "--out", str(tmp_path / "run"), "--preset", "tiny",
                   "--device", "cpu", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_hole_fraction_above_one_is_refused_by_the_option(tmp_path, toy_data):
    result = train("transformer", "--data", str(toy_data), "--vqgan", str(tmp_path), "--out", str(tmp_path / "tr"),
                   "--hole-masks", "1.5")
    assert result.exit_code == 2 and "--hole-masks" in result.output
