"""Every recorded FID carries its uncertainty: the interval, FID-infinity and KID per step in MLflow and
the trial cache, replicates paired across trials, seed replicates, the reference fills'.

Known answers: trials score images on the stand-in features of `instant_fid` (8x8 pixel-block means,
a fixed function of the pixels), so the expected numbers come straight from bench.stats applied to
those features; a tiny random model decodes six toy faces in T = 2 steps.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from bench.data import load_test_set
from bench.stats import (PairedGrams, bootstrap_indices, fid_from_features, fid_replicates, kid_with_std,
                         paired_difference, seed_mean, shifted_interval)
from bench.study import build_sweep_config, run_sweep
from bench.trial import Evaluator, TrialSettings, fresh_seeds
from maskgit.checkpoints import load_checkpoint
from maskgit.decoding import DecodeConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS = (1, 2)


@pytest.fixture
def sweep(tmp_path, tracking_uri, tiny_checkpoint, tiny_test_set, instant_fid):
    def run(settings, **options):
        config = build_sweep_config(settings, None, study_name="study", storage=str(tmp_path / "studies.journal"),
                                    tracking_uri=tracking_uri, data=str(tiny_test_set),
                                    checkpoint=str(tiny_checkpoint), batch_size=6, device="cpu", progress=False,
                                    **options)
        return run_sweep(config)

    return run


@pytest.fixture
def evaluator(instant_fid, tiny_checkpoint, tiny_test_set):
    """An evaluator on the stand-in features, as the sweep's (same cache home)."""
    from bench import trial

    model, config = load_checkpoint(tiny_checkpoint)
    return trial.Evaluator(model, config["weights_sha256"], load_test_set(tiny_test_set), batch_size=6,
                           progress=False)


def artifact(client: MlflowClient, run_id: str, name: str) -> dict[str, np.ndarray]:
    path = client.download_artifacts(run_id, name)
    with np.load(path) as stored:
        return {key: stored[key] for key in stored.files}


def step_features(evaluator: Evaluator, settings: TrialSettings, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(features of the step's images, the ground truth's as the FID reference keeps them: float32)."""
    images = evaluator.images(evaluator.decode(settings).filled[step - 1], settings)
    return evaluator.extractor.features(images).numpy(), evaluator.reference.features


def test_each_step_logs_the_fid_and_interval_that_bench_stats_gives_its_features(sweep, tracking_uri, evaluator):
    """A known answer per step: the logged fid is fid_from_features of the step's features, its interval
    the shifted interval of the replicates on the test set's shared indices; the cache keeps the same;
    and two trials' replicates subtract to the paired difference of their features."""
    outcome = sweep({"schedule": ["cosine", "linear"], "steps": "2"}, sampler="grid")
    client = MlflowClient(tracking_uri)
    key = evaluator.data_hash
    indices = bootstrap_indices(key, len(evaluator.test))
    replicates, fids = {}, {}
    for trial in outcome.best:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.params["seeds"] == "1" and run.data.params["seed_list"] == "0"
        assert trial.user_attrs["seed_list"] == [0] and run.data.tags["bootstrap_key"] == key
        settings = TrialSettings.from_params(trial.params)
        stored = artifact(client, run.info.run_id, "uncertainty.npz")
        assert stored["steps"].tolist() == list(STEPS) and str(stored["key"]) == key
        cached = evaluator.evaluate(settings)
        assert cached.cached
        for row, step in enumerate(STEPS):
            x, y = step_features(evaluator, settings, step)
            fid = fid_from_features(x, y)
            draws = fid_replicates(PairedGrams.of(x, y), indices)
            kid, kid_std = kid_with_std(PairedGrams.of(x, y), key)
            logged = {name: {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}[step]
                      for name in ("fid", "fid_ci_low", "fid_ci_high", "kid", "kid_std")}
            # the Gram route and fid_from_features round differently: ~1e-8 per zero eigenvalue
            assert logged["fid"] == pytest.approx(fid, abs=1e-6)
            low, high = shifted_interval(logged["fid"], draws)
            assert logged == pytest.approx({"fid": logged["fid"], "fid_ci_low": low, "fid_ci_high": high, "kid": kid,
                                            "kid_std": kid_std}, rel=1e-9)
            assert kid_std > 0
            assert stored["fid"][row] == logged["fid"]
            np.testing.assert_allclose(stored["replicates"][row], draws, rtol=1e-9)
            np.testing.assert_allclose(cached.replicates[step], draws, rtol=1e-9)
            assert cached.curve[step].fid_ci_low == pytest.approx(low, rel=1e-9)
            replicates[trial.params["schedule"], step], fids[trial.params["schedule"], step] = draws, logged["fid"]
        assert run.data.metrics["best_fid_ci_low"] == pytest.approx(trial.user_attrs["best_fid_ci_low"])

    by_schedule = sorted(outcome.best, key=lambda t: t.params["schedule"])
    cosine, linear = (artifact(client, t.user_attrs["mlflow_run_id"], "uncertainty.npz") for t in by_schedule)
    recorded = paired_difference(cosine["fid"][1], cosine["replicates"][1], linear["fid"][1], linear["replicates"][1])
    expected = paired_difference(fids["cosine", 2], replicates["cosine", 2], fids["linear", 2],
                                 replicates["linear", 2])
    assert (recorded.estimate, recorded.lo, recorded.hi) == pytest.approx(
        (expected.estimate, expected.lo, expected.hi), rel=1e-9)

    parent = client.search_runs([run.info.experiment_id], "tags.sampler = 'grid'")[0]
    baselines = artifact(client, parent.info.run_id, "baselines.npz")
    for name in ("grey", "harmonic"):
        assert baselines[f"{name}_replicates"].shape == (200,)
        assert parent.data.metrics[f"baseline_{name}_fid"] == pytest.approx(float(baselines[f"{name}_fid"]))
        assert parent.data.metrics[f"baseline_{name}_fid_ci_low"] < parent.data.metrics[f"baseline_{name}_fid_ci_high"]
        assert parent.data.metrics[f"baseline_{name}_kid_std"] > 0


def test_seed_replicates_average_into_the_curve_and_a_repeated_setting_gets_fresh_seeds(sweep, tracking_uri):
    """--seeds 2 with a sampler that proposes the one point of the space twice: two trials, each with two
    per-seed curves whose mean is the logged curve, the second on seeds the first did not use."""
    outcome = sweep({"schedule": ["cosine"], "steps": "2", "seed": "3"}, sampler="random", n_trials=2, seeds=2)
    client = MlflowClient(tracking_uri)
    trials = sorted(outcome.best, key=lambda t: t.number)
    assert [t.user_attrs["seed_list"] for t in trials] == [[3, 4], [5, 6]]
    assert trials[0].params == trials[1].params
    for trial in trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        stored = artifact(client, run_id, "uncertainty.npz")
        assert stored["seed_fid"].shape == (2, 2) and stored["seed_replicates"].shape == (2, 2, 200)
        assert stored["seeds"].tolist() == trial.user_attrs["seed_list"]
        assert client.get_run(run_id).data.params["seed_list"] == ",".join(map(str, trial.user_attrs["seed_list"]))
        logged = {m.step: m.value for m in client.get_metric_history(run_id, "fid")}
        for row, step in enumerate(STEPS):
            mean, draws = seed_mean(stored["seed_fid"][:, row], stored["seed_replicates"][:, row], str(stored["key"]))
            assert logged[step] == pytest.approx(stored["seed_fid"][:, row].mean(), rel=1e-12) == mean
            assert trial.intermediate_values[step] == logged[step]
            np.testing.assert_array_equal(stored["replicates"][row], draws)
        assert not np.array_equal(stored["seed_fid"][0], stored["seed_fid"][1])  # two seeds, two decodes
    assert trials[0].value != trials[1].value  # a new replicate, not the same run again


def test_fresh_seeds_skip_the_used_ones():
    assert fresh_seeds(0, 1) == (0,)
    assert fresh_seeds(0, 2, {0, 1}) == (2, 3)
    assert fresh_seeds(5, 3, {6, 9}) == (5, 7, 8)
    with pytest.raises(ValueError, match="at least one seed"):
        fresh_seeds(0, 0)


def test_a_trial_of_one_seed_is_its_seeds_curve(evaluator):
    settings = TrialSettings(DecodeConfig(schedule="cosine", steps=2), seed=11)
    result = evaluator.evaluate(settings)
    assert result.seeds == [11] and result.curve == result.seed_results[0].curve
    with np.load(io.BytesIO(result.uncertainty_npz())) as stored:
        assert stored["seed_fid"].shape == (1, 2)
        np.testing.assert_array_equal(stored["replicates"], stored["seed_replicates"][0])
    assert torch.equal(result.progression, result.seed_results[0].progression)
