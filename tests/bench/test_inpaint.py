"""`bench inpaint`: PNGs named like the masked inputs, the sweet spot chosen, and a replay of a recorded
trial that reproduces its FID. Real FIDs, two of them (seconds each here)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image
from typer.testing import CliRunner

import cli
from bench.data import load_test_set
from bench.inpaint import inpaint
from bench.study import build_sweep_config, run_sweep
from bench.trial import Evaluator, TrialSettings
from maskgit.checkpoints import load_checkpoint
from maskgit.decoding import DecodeConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = [f"image_{i:03d}.png" for i in range(6)]


def invoke(args):
    return CliRunner().invoke(cli.app, [str(arg) for arg in args])


@pytest.fixture
def test_only_folder(tmp_path, tiny_test_set):
    """The tiny test set without ground truth: masked_image/ and mask64/ only."""
    folder = shutil.copytree(tiny_test_set, tmp_path / "no-gt")
    shutil.rmtree(folder / "gt")
    (folder / "test_gt.csv").unlink()
    return folder


def read_pngs(folder, names) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(Image.open(folder / name))).permute(2, 0, 1) for name in names])


def test_a_replayed_trial_reproduces_its_fid(bench_home, tmp_path, tracking_uri, tiny_checkpoint, tiny_test_set):
    config = build_sweep_config({"schedule": ["cosine"], "steps": "1", "composite": "hard"}, None,
                                study_name="replay", storage=str(tmp_path / "s.journal"), tracking_uri=tracking_uri,
                                data=str(tiny_test_set), checkpoint=str(tiny_checkpoint), n_trials=1, batch_size=4,
                                device="cpu", progress=False)
    trial = run_sweep(config).best[0]
    run_id = trial.user_attrs["mlflow_run_id"]
    recorded = MlflowClient(tracking_uri).get_run(run_id).data.metrics

    replay = inpaint({}, tmp_path / "out", from_run=run_id, tracking_uri=tracking_uri, batch_size=5, progress=False)
    assert replay.names == NAMES and sorted(p.name for p in (tmp_path / "out").iterdir()) == NAMES
    assert replay.settings.params() == {**trial.params, "sweet_spot": trial.user_attrs["best_step"]}
    assert replay.score.fid == pytest.approx(recorded["best_fid"], rel=1e-9)
    assert replay.score.kid_mean == pytest.approx(recorded["best_kid"], rel=1e-9)
    assert replay.score.uncertainty.lo == pytest.approx(recorded["best_fid_ci_low"], rel=1e-9)
    assert replay.recorded_fid == recorded["best_fid"]


def test_a_test_only_folder_is_inpainted_at_the_chosen_step(bench_home, tmp_path, tiny_checkpoint, test_only_folder):
    out = tmp_path / "out"
    result = invoke(["inpaint", "--data", test_only_folder, "--checkpoint", tiny_checkpoint, "--out", out,
                     "--schedule", "linear", "--steps", "3", "--sweet-spot", "2", "--seed", "5", "--composite", "hard",
                     "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "wrote 6 images" in result.output and "step 2 of 3" in result.output and "FID" not in result.output
    assert sorted(p.name for p in out.iterdir()) == NAMES
    model, config = load_checkpoint(tiny_checkpoint)
    evaluator = Evaluator(model, config["weights_sha256"], load_test_set(test_only_folder), cache=False, progress=False)
    settings = TrialSettings(DecodeConfig(schedule="linear", steps=3), composite="hard", seed=5)
    expected = evaluator.images(evaluator.decode(settings).filled[1], settings)
    assert torch.equal(read_pngs(out, NAMES), expected)


def test_settings_not_given_come_from_the_checkpoints_recorded_decoding(bench_home, tmp_path, tiny_checkpoint,
                                                                        test_only_folder):
    """What `bench inpaint --help` says of every setting's default: the checkpoint's meta.decoding (as
    toyfaces ships one) before the setting's own default, an option given before both."""
    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "recorded")
    config = json.loads((checkpoint / "config.json").read_text())
    config["meta"]["decoding"] = {"schedule": "linear", "steps": 3, "sampling": False, "composite": "seamless",
                                  "sweet_spot": 2}
    (checkpoint / "config.json").write_text(json.dumps(config))
    result = invoke(["inpaint", "--data", test_only_folder, "--checkpoint", checkpoint, "--out", tmp_path / "out",
                     "--composite", "hard", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "step 2 of 3" in result.output
    settings = dict(pair.split("=") for pair in result.output.split("settings: ")[1].splitlines()[0].split(", "))
    assert (settings["schedule"], settings["sampling"], settings["composite"]) == ("linear", "False", "hard")
    assert settings["choice_temperature"] == "4.5"  # not recorded: the setting's own default
    assert "meta.decoding, else off." in " ".join(invoke(["inpaint", "--help"]).output.split())


@pytest.mark.parametrize("extra, message", [
    (["--steps", "3", "--sweet-spot", "4"], "--sweet-spot 4: must be a step 1..T (T = 3)"),
    (["--steps", "zero"], "--steps: steps: expected an integer"),
    (["--from-run", "0123456789abcdef"], "--from-run 0123456789abcdef: no such run"),
    (["--schedule", "nope"], "schedule 'nope' is unknown"),
])
def test_invalid_inpaint_options_fail_with_one_line(bench_home, tmp_path, tracking_uri, tiny_checkpoint,
                                                    test_only_folder, extra, message):
    result = invoke(["inpaint", "--data", test_only_folder, "--checkpoint", tiny_checkpoint, "--out",
                     tmp_path / "out", "--tracking-uri", tracking_uri, *extra])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_images_already_in_out_are_kept_unless_overwrite(bench_home, tmp_path, tiny_checkpoint, test_only_folder):
    out = tmp_path / "out"
    args = ["inpaint", "--data", test_only_folder, "--checkpoint", tiny_checkpoint, "--out", out, "--steps", "1"]
    assert invoke(args).exit_code == 0
    again = invoke(args)
    assert again.exit_code == 2 and "already holds images" in again.stderr
    assert invoke(args + ["--overwrite"]).exit_code == 0
