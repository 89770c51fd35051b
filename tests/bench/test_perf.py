"""bench.perf: the reference workflow and the harness give the same tokens and the same FIDs (to 1e-6), every
phase is measured, and the command prints its figures (timings are the benchmark's to show, not
asserted here)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bench.data import load_test_set
from bench.perf import perf_lines, run_perf
from bench.trial import Evaluator, TrialSettings
from cli import app
from maskgit.checkpoints import load_checkpoint
from maskgit.decoding import DecodeConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_reference_and_harness_agree_exactly_and_every_phase_is_timed(tiny_checkpoint, tiny_test_set, bench_home):
    model, config = load_checkpoint(str(tiny_checkpoint))
    test = load_test_set(tiny_test_set).subset(4)
    settings = TrialSettings(decode=DecodeConfig(steps=3))
    evaluator = Evaluator(model, config["weights_sha256"], test, batch_size=3, cache=False, progress=False)
    result = run_perf(evaluator, settings, progress=False)
    assert result.tokens_equal is True
    assert len(result.fid_reference) == len(result.fid_harness) == 3
    # same tokens -> same pixels -> same features; the two FID arithmetics agree to float rounding
    assert result.fid_reference == pytest.approx(result.fid_harness, rel=1e-6, abs=0)
    assert set(result.seconds) == {"harness", "harness_cpu", "reference", "reference_decoding", "reference_inception",
                                   "reference_fid", "transformer", "vqgan_decode", "inception"}
    parts = sum(result.seconds[f"reference_{part}"] for part in ("decoding", "inception", "fid"))
    assert parts == pytest.approx(result.seconds["reference"], rel=0.1)
    assert all(seconds > 0 for seconds in result.seconds.values())
    assert result.phases == pytest.approx(sum(result.seconds[k] for k in ("transformer", "vqgan_decode", "inception")))
    assert 0 < result.peak_rss_gb < 64
    text = "\n".join(perf_lines(result))
    assert f"largest FID difference {result.max_fid_difference:.2e} (relative; meets target" in text
    assert "same tokens: yes" in text
    uncertainty = result.trial_seconds["uncertainty"]  # the interval, FID-infinity and KID of the 3 steps
    assert 0 < uncertainty < result.trial_seconds["total"] <= result.seconds["harness"]
    assert f"{uncertainty:9.2f} s   ({uncertainty / result.seconds['harness']:.1%} of the trial" in text
    assert f"{result.speedup:9.2f} x" in text and f"{result.overhead:9.3f} x" in text


def test_cli_perf_without_reference_on_random_weights(tiny_test_set, bench_home):
    result = CliRunner().invoke(app, ["perf", "--preset", "tiny", "--data", str(tiny_test_set), "--limit", "4",
                                      "--steps", "2", "--no-reference", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "bench perf: 4 images, T = 2, device cpu" in result.output
    assert "Inception passes alone" in result.output and "reference workflow" not in result.output


def test_cli_perf_says_when_the_test_set_holds_fewer_images_than_limit(tiny_test_set, bench_home):
    """--limit beyond the test set uses all of it, and says so (the embedded set has 256 images, catfaces 747)."""
    arguments = ["perf", "--preset", "tiny", "--data", str(tiny_test_set), "--steps", "1", "--no-reference",
                 "--no-phases", "--device", "cpu"]
    capped = CliRunner().invoke(app, [*arguments, "--limit", "50"])
    assert capped.exit_code == 0, capped.output
    lines = capped.output.splitlines()
    test_root = load_test_set(tiny_test_set).root
    assert lines[:2] == ["bench perf: 6 images, T = 1, device cpu",
                         f"  (--limit asked for more: {test_root} holds 6 test images, all used)"]
    exact = CliRunner().invoke(app, [*arguments, "--limit", "6"])
    assert exact.exit_code == 0 and "--limit asked for more" not in exact.output


def test_cli_perf_compiled_harness_only_prints_its_time_and_peak_memory(tiny_test_set, bench_home):
    result = CliRunner().invoke(app, ["perf", "--preset", "tiny", "--data", str(tiny_test_set), "--limit", "4",
                                      "--steps", "2", "--no-reference", "--no-phases", "--device", "cpu", "--compile"])
    assert result.exit_code == 0, result.output
    assert "bench perf: 4 images, T = 2, device cpu, transformer and VQGAN compiled" in result.output
    assert "harness trial" in result.output and "peak resident memory" in result.output
    assert "Inception passes alone" not in result.output and "overhead" not in result.output


@pytest.mark.parametrize("options, message", [
    (["--preset", "huge"], "error: --preset huge: unknown, expected one of lab, small, medium, toy, tiny"),
    (["--steps", "0"], "error: --steps must be >= 1 and --limit >= 2 (got 0, 64)"),
    (["--batch-size", "0"], "error: --batch-size must be at least 1 (got 0)"),
    (["--schedule", "nope", "--preset", "tiny"], "error: --schedule nope: "),
])
def test_cli_perf_bad_options_are_one_line_errors(options, message, tiny_test_set):
    result = CliRunner().invoke(app, ["perf", "--data", str(tiny_test_set), *options])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith(message)
