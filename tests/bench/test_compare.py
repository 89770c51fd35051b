"""bench compare: its verdicts and numbers are bench.stats.paired_difference on the stored replicates;
trials that cannot be paired (other images, other model), unknown trials and trials without
uncertainty data are one-line errors with exit 2, and nothing recorded changes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from bench.compare import read_uncertainty
from bench.stats import paired_difference
from bench.tracking import tracking_client
from cli import app
from recorded_trials import log_trial, per_image_scores, uncertainty_arrays

N = 48


@pytest.fixture
def store(tracking_uri):
    """A study with trial 0 (clearly better), trial 1, trial 2 (like 1 but other seeds), a confirmation run,
    and trials recorded on other images, another model, and without uncertainty data."""
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("study")
    parent = client.create_run(experiment).info.run_id
    rng = np.random.default_rng(0)
    images = rng.normal(0, 4.0, N)
    scores = {
        0: per_image_scores(rng, [30.0, 24.0, 26.0, 27.0], N, seeds=2, images=images),
        1: per_image_scores(rng, [33.0, 30.0, 29.5, 29.0], N, seeds=2, images=images),
        2: per_image_scores(rng, [33.0, 30.0, 29.5, 29.0], N, seeds=2, images=images),
    }
    runs = {number: log_trial(client, experiment, parent, "study", number, s) for number, s in scores.items()}
    runs["confirmation"] = log_trial(client, experiment, parent, "study", None, scores[0],
                                     extra_tags={"confirmation": "true", "confirms": "0"})
    runs[3] = log_trial(client, experiment, parent, "study", 3, scores[1], key="fedcba9876543210",
                        data_hash="fedcba9876543210")
    runs[4] = log_trial(client, experiment, parent, "study", 4, scores[1], checkpoint_sha="d" * 64)
    runs[5] = log_trial(client, experiment, parent, "study", 5, scores[1], with_uncertainty=False)
    return client, tracking_uri, scores, runs


def compare(tracking_uri: str, *args: str):
    return CliRunner().invoke(app, ["compare", *args, "--tracking-uri", tracking_uri])


def expected(scores_a, step_a, scores_b, step_b):
    a, b = uncertainty_arrays(scores_a), uncertainty_arrays(scores_b)
    return paired_difference(a["fid"][step_a - 1], a["replicates"][step_a - 1],
                             b["fid"][step_b - 1], b["replicates"][step_b - 1])


def test_the_verdict_is_the_paired_difference_of_the_stored_replicates(store):
    client, uri, scores, _ = store
    result = compare(uri, "study:0", "study:1")
    assert result.exit_code == 0, result.output
    difference = expected(scores[0], 2, scores[1], 4)  # each trial's best step: 2 and 4
    assert difference.hi < 0  # trial 0 is clearly better: the verdict names it
    assert f"A - B: {difference.verdict('study:0', 'study:1')}\n" in result.output
    assert result.output.count("study:0 is better than study:1 by") == 1
    fid_a = uncertainty_arrays(scores[0])["fid"][1]
    assert f"step 2 of 4: FID {fid_a:.2f} [" in result.output


def test_replicates_of_one_configuration_give_no_detectable_difference(store):
    _, uri, scores, _ = store
    result = compare(uri, "study:1", "study:2", "--step", "3")
    assert result.exit_code == 0, result.output
    difference = expected(scores[1], 3, scores[2], 3)
    assert not difference.detectable
    assert f"A - B: no detectable difference ({difference.verdict().split('(', 1)[1]}\n" in result.output


def test_the_sweet_spot_claim_counts_only_where_the_interval_excludes_zero(store):
    _, uri, scores, _ = store
    result = compare(uri, "study:0", "study:1")
    spot = expected(scores[0], 2, scores[0], 4)
    assert spot.hi < 0
    assert "sweet spot of study:0: step 2 is better than the last step (4) by " in result.output
    assert spot.verdict("step 2", "the last step (4)") in result.output
    assert "sweet spot of study:1" not in result.output  # its best step is its last: no claim to make
    at_three = compare(uri, "study:1", "study:2", "--step", "3").output
    claim = expected(scores[1], 3, scores[1], 4)
    assert f"sweet spot of study:1: {claim.verdict('step 3', 'the last step (4)')}" in at_three


def test_a_confirmation_run_is_named_by_its_run_id(store):
    _, uri, scores, runs = store
    result = compare(uri, runs["confirmation"], "study:0")
    assert result.exit_code == 0, result.output
    assert "confirmation of trial 0 of study" in result.output
    assert "A - B: no detectable difference (0.0000 [0.0000, 0.0000])" in result.output  # equal scores: 0


def snapshot(client) -> list:
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return sorted((r.info.run_id, r.info.status, sorted(r.data.tags.items()), sorted(r.data.metrics.items()),
                   sorted(r.data.params.items()), [a.path for a in client.list_artifacts(r.info.run_id)])
                  for r in runs)


@pytest.mark.parametrize("args, message", [
    (["study:0", "study:3"], "study:0 and study:3: different test sets (data hash)"),
    (["study:0", "study:4"], "study:0 and study:4: different models (checkpoint sha256)"),
    (["study:0", "study:9"], "study:9: study study has no trial 9"),
    (["study:0", "nostudy:1"], "nostudy:1: no study 'nostudy'"),
    (["study:0", "0" * 32], f"{'0' * 32}: no such MLflow run"),
    (["study:0", "trial-7"], "trial-7: name a trial as <study>:<trial number>"),
    (["study:5", "study:0"], "study:5: run "),
    (["study:0", "study:1", "--step", "7"], "--step 7: study:0 has no FID at that step (scored: 1, 2, 3, 4)"),
])
def test_errors_are_one_line_exit_2_and_change_nothing(store, args, message):
    client, uri, _, _ = store
    before = snapshot(client)
    result = compare(uri, *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert snapshot(client) == before


def test_a_trial_without_uncertainty_data_says_so(store):
    _, uri, _, runs = store
    result = compare(uri, "study:5", "study:0")
    assert f"study:5: run {runs[5]} has no uncertainty.npz" in result.output


def test_other_bootstrap_indices_are_refused_even_on_equal_hashes(store):
    client, uri, scores, _ = store
    experiment = client.get_experiment_by_name("study").experiment_id
    parent = client.create_run(experiment).info.run_id
    log_trial(client, experiment, parent, "study", 6, scores[1], key="another-key")
    result = compare(uri, "study:0", "study:6")
    assert result.exit_code == 2
    assert "different test sets (bootstrap key) (0123456789abcdef vs another-key)" in result.output


PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def test_artifact_progress_bars_are_turned_off_once_where_the_client_is_made(store, monkeypatch):
    client, uri, _, runs = store
    monkeypatch.delenv(PROGRESS_BAR, raising=False)
    assert read_uncertainty(client, runs[0]) is not None
    assert PROGRESS_BAR not in os.environ  # a read changes no setting
    tracking_client(uri)
    assert os.environ[PROGRESS_BAR] == "false"
    monkeypatch.setenv(PROGRESS_BAR, "true")
    tracking_client(uri)
    assert os.environ[PROGRESS_BAR] == "true"  # the user's own setting stands
