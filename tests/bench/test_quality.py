"""bench evaluate: the model-card numbers of a checkpoint, with the baselines beside them."""

import json

import pytest
from typer.testing import CliRunner

from cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_evaluate_reports_every_model_card_number(tiny_checkpoint, tiny_test_set, bench_home, tmp_path):
    out = tmp_path / "quality.json"
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_test_set),
                                      "--steps", "2", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["n_test_images"] == 6 and report["protocol"] == "tf"
    assert 0 < report["codebook_usage"] <= 1 and 0 <= report["masked_token_accuracy"] <= 1
    assert report["reconstruction_psnr"] > 0 and report["reconstruction_fid"] > 0
    rows = report["inpainting"]
    assert set(rows) == {"grey", "harmonic", "one_step_hard", "best_hard", "one_step_seamless", "best_seamless"}
    for composite in ("hard", "seamless"):
        one_step, best = rows[f"one_step_{composite}"], rows[f"best_{composite}"]
        assert one_step["settings"]["steps"] == 1 and best["settings"]["steps"] == 2
        assert one_step["settings"]["composite"] == best["settings"]["composite"] == composite
        assert best["best_step"] in (1, 2)
    assert rows["best_seamless"]["fid"] != rows["best_hard"]["fid"]
    # the classical fill beats grey holes on real cat faces, as it must for the baseline to mean anything
    assert rows["harmonic"]["fid"] < rows["grey"]["fid"]
    assert "harmonic" in result.output and "masked-token accuracy" in result.output


def test_evaluate_refuses_an_unknown_composite(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--composite", "hard,blur"])
    assert result.exit_code == 2
    assert "--composite: composite 'blur' is unknown" in result.output and "Traceback" not in result.output


def test_evaluate_refuses_a_missing_checkpoint(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "nope: no such checkpoint" in result.output and "Traceback" not in result.output
