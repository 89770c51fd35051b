"""bench.study: what a sweep leaves in Optuna and MLflow, resuming, failures, Ctrl-C and workers.

Trials score images with `instant_fid` (what is tested is everything around the FID; bench.trial's
tests compute real ones), a tiny random model decodes six toy faces in T = 2 steps.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from bench import trial as trial_module
from bench._sweep_outcome import _interval as shown
from bench.compare import read_uncertainty
from bench.data import load_test_set
from bench.files import checkpoint_params
from bench.search_space import SearchSpace
from bench.session import open_evaluator
from bench.stats import paired_difference
from bench.study import (OBJECTIVES, SweepOutcome, build_sweep_config, open_storage, outcome_lines, outcome_table,
                         run_sweep)
from bench.trial import TrialSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = {"schedule": ["cosine", "linear"], "steps": "2"}


@pytest.fixture
def sweep(tmp_path, tracking_uri, tiny_checkpoint, tiny_test_set, instant_fid):
    """sweep(settings, **options) -> SweepOutcome, on this test's own storage and tracking store."""

    def run(settings=SETTINGS, **options):
        options = {"study_name": "study", "sampler": "grid", "storage": str(tmp_path / "studies.journal"), **options}
        config = build_sweep_config(settings, None, tracking_uri=tracking_uri, data=str(tiny_test_set),
                                    checkpoint=str(tiny_checkpoint), batch_size=4, device="cpu", progress=False,
                                    **options)
        return run_sweep(config)

    return run


def load(tmp_path, name="study") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(tmp_path / "studies.journal")))


def runs_of(tracking_uri, name="study"):
    """(parent runs, trial runs) of the study's experiment."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return parents, [run for run in runs if "mlflow.parentRunId" in run.data.tags]


def grid_params(study: optuna.Study, state=TrialState.COMPLETE) -> list[str]:
    return sorted(json.dumps(t.params, sort_keys=True) for t in study.get_trials(states=(state,)))


def test_a_study_lands_in_optuna_and_mlflow(sweep, tmp_path, tracking_uri, tiny_checkpoint, tiny_test_set):
    outcome = sweep()
    assert outcome.ran == 2 and outcome.counts["COMPLETE"] == 2
    study = load(tmp_path)
    trials = study.get_trials()
    assert {t.params["schedule"] for t in trials} == {"cosine", "linear"}
    every_setting = set(TrialSettings().params())
    client = MlflowClient(tracking_uri)
    parents, children = runs_of(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 2
    parent = parents[0]
    assert parent.data.tags["optuna_study_name"] == "study" and parent.data.params["sampler"] == "grid"
    assert parent.data.params["compiled"] == "False" and parent.data.params["batch_size"] == "4"
    for trial in trials:
        assert set(trial.params) == every_setting
        assert sorted(trial.intermediate_values) == [1, 2]
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED"
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["optuna_trial_number"] == str(trial.number) and tags["optuna_study_name"] == "study"
        assert tags["optuna_state"] == "COMPLETE"
        for tag in ("checkpoint_sha", "data_hash", "code_version", "device", "torch_version", "optuna_version",
                    "mlflow_version"):
            assert tags[tag]
        assert every_setting <= set(params) and params["schedule"] == trial.params["schedule"]
        assert params["n_images"] == "6" and params["sweet_spot"] == "auto"
        # the test set by a portable name and its content hash; the local folder only to reopen it
        assert params["data"] == f"{tiny_test_set.parent.name}/test" and params["data_path"] == str(tiny_test_set)
        assert tags["data_hash"] == load_test_set(tiny_test_set).content_hash()
        # the model likewise: a portable name beside the weights' hash; the local folder only to reopen it
        assert params["checkpoint"] == f"{tiny_checkpoint.parent.name}/tiny"
        assert params["checkpoint_path"] == str(tiny_checkpoint.resolve())
        history = client.get_metric_history(run.info.run_id, "fid")
        assert sorted(m.step for m in history) == [1, 2]
        assert {m.step: m.value for m in history} == trial.intermediate_values
        assert metrics["best_fid"] == trial.value == min(trial.intermediate_values.values())
        assert metrics["best_step"] == trial.user_attrs["best_step"]
        for key in ("final_fid", "kid", "seconds_decode", "seconds_pixels", "seconds_fid", "seconds_total"):
            assert key in metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {"curve.csv", "progression.png", "latent_mask.png", "uncertainty.npz"}
    assert "study study" in outcome_table(outcome).title


def test_a_shipped_model_is_recorded_by_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder named like the shipped model here
    assert checkpoint_params("toyfaces") == {"checkpoint": "toyfaces", "checkpoint_path": "toyfaces"}


def table_rows(table) -> list[dict[str, str]]:
    """The rows of a rich table as {header: cell}."""
    headers = [column.header for column in table.columns]
    return [dict(zip(headers, cells)) for cells in zip(*(column.cells for column in table.columns))]


@pytest.mark.parametrize("fid, low, high, cell", [(27.3012, 26.1, 28.44, "27.3 [26.1, 28.4]"),
                                                  (159.6, 107.0, 220.1, "160 [107, 220]"),
                                                  (0.2304, 0.1312, 0.3301, "0.23 [0.13, 0.33]")])
def test_a_fid_and_its_interval_read_to_two_digits_of_its_width(fid, low, high, cell):
    assert shown(fid, low, high) == cell
    assert shown(fid, None, None) == f"{fid:.3f}"  # no interval recorded (a study from before them)


def test_the_table_shows_the_reference_fills_and_names_the_paste(sweep, tmp_path, tracking_uri):
    """Below the trials, the grey holes and the harmonic fill scored on the same images (the numbers the
    parent run records), and lines saying how many images, which paste (seamless unless asked),
    where the best trial stands against each reference (its paired verdict, from the replicates of the
    trial's uncertainty.npz and the parent run's baselines.npz) and the trials' MLflow runs."""
    outcome = sweep()
    parent = runs_of(tracking_uri)[0][0]
    metrics = parent.data.metrics
    fid = {name: metrics[f"baseline_{name}_fid"] for name in ("grey", "harmonic")}
    rows = table_rows(outcome_table(outcome))
    assert [row["trial"].removesuffix(" ≈") for row in rows[:2]] == [str(t.number) for t in outcome.best]
    labels = {"grey": "grey holes", "harmonic": "harmonic fill"}
    interval = {name: (fid[name], metrics[f"baseline_{name}_fid_ci_low"], metrics[f"baseline_{name}_fid_ci_high"])
                for name in fid}
    # KID's column gives way where these toy FIDs' 3-decimal differences would take the table past 80 columns
    kid = {name: {"KID": f"{metrics[f'baseline_{name}_kid']:.4f}"} if "KID" in rows[0] else {} for name in fid}
    assert rows[2:] == [{**dict.fromkeys(rows[0], ""), "trial": labels[name],
                         "FID\n95% interval": shown(*interval[name]), **kid[name]}
                        for name in sorted(fid, key=fid.get)]
    first = outcome.best[0]
    assert rows[0]["FID\n95% interval"] == shown(first.values[0], first.user_attrs["best_fid_ci_low"],
                                                 first.user_attrs["best_fid_ci_high"])
    best = outcome.best[0]
    assert outcome_lines(outcome)[:2] == [
        "FID and KID on 6 test images (lower is better); paste (--composite): seamless",
        "below the line: grey holes and harmonic fill, the same images filled without a model (bench/baselines.py)"]
    client = MlflowClient(tracking_uri)
    trial_draw = read_uncertainty(client, best.user_attrs["mlflow_run_id"]).at(best.user_attrs["best_step"])
    with np.load(client.download_artifacts(parent.info.run_id, "baselines.npz", str(tmp_path))) as recorded:
        verdicts = {name: paired_difference(*trial_draw, float(recorded[f"{name}_fid"]), recorded[f"{name}_replicates"])
                    .verdict(f"trial {best.number}", labels[name]) for name in fid}
    assert outcome_lines(outcome)[2:4] == [f"best trial {best.number} - {labels[name]}: {verdicts[name]}"
                                           for name in sorted(fid, key=fid.get)]
    runs = ", ".join(f"trial {t.number} {t.user_attrs['mlflow_run_id'][:8]}" for t in outcome.best)
    assert f"MLflow runs: {runs}" in outcome_lines(outcome)
    assert {t.params["composite"] for t in load(tmp_path).get_trials()} == {"seamless"}

    both = sweep(study_name="pastes", settings={**SETTINGS, "composite": "hard,seamless"})
    assert outcome_lines(both)[0].endswith("paste (--composite): hard, seamless")
    assert {row["composite"] for row in table_rows(outcome_table(both))} == {"hard", "seamless", ""}


def test_the_parent_run_logs_the_evaluators_cached_baselines_file(sweep, tmp_path, tracking_uri, tiny_checkpoint,
                                                                  tiny_test_set):
    """baselines.npz on the parent run is the Evaluator's cache file itself, byte for byte (not re-encoded)."""
    sweep()
    parent = runs_of(tracking_uri)[0][0]
    logged = MlflowClient(tracking_uri).download_artifacts(parent.info.run_id, "baselines.npz", str(tmp_path))
    evaluator = open_evaluator(str(tiny_checkpoint), str(tiny_test_set), None, "cpu", batch_size=4)
    assert evaluator.baselines_file.name == "baselines.npz"
    assert Path(logged).read_bytes() == evaluator.baselines_file.read_bytes()


@pytest.mark.parametrize("call", ["create_run", "log_batch"])  # the parent run itself, then its options
def test_mlflow_failing_at_the_sweep_s_start_is_one_line_and_no_trial_runs(sweep, tmp_path, tracking_uri,
                                                                          monkeypatch, call):
    from mlflow.exceptions import MlflowException

    from bench._sweep_runs import TrackingError

    def unavailable(self, *args, **kwargs):
        raise MlflowException("tracking store unavailable")

    monkeypatch.setattr(MlflowClient, call, unavailable)
    with pytest.raises(TrackingError) as failure:
        sweep()
    assert str(failure.value) == (
        f"--tracking-uri {tracking_uri}: MLflow could not record the sweep's parent run (MlflowException: tracking "
        "store unavailable); trials finished before the failure stay in the study; the same command resumes it "
        "once MLflow is back")
    assert not load(tmp_path).get_trials(states=(TrialState.COMPLETE, TrialState.RUNNING))


POINT_ESTIMATES = "(point estimates only: no bootstrap replicates recorded to pair them)"


@pytest.mark.parametrize("best, comparison", [
    (71.5, "better than harmonic fill (72.390) and grey holes (103.920)"),
    (80.25, "better than grey holes (103.920), worse than harmonic fill (72.390)"),
    (110.0, "worse than harmonic fill (72.390) and grey holes (103.920)")])
def test_without_replicates_the_best_trial_is_compared_by_point_estimates_said_so(best, comparison):
    """A study recorded before replicates (nothing paired): the point estimates, labelled as such."""
    trial = optuna.trial.create_trial(value=best, params={"schedule": "cosine"},
                                      distributions={"schedule": CategoricalDistribution(["cosine"])})
    trial.number = 0  # as a study numbers it
    outcome = SweepOutcome("study", "studies.journal", "sqlite:///mlflow.db", "run", OBJECTIVES["fid"], 1,
                           {"COMPLETE": 1}, [trial], [], {"grey": {"fid": 103.92, "kid": 0.05},
                                                          "harmonic": {"fid": 72.39, "kid": 0.03}}, 256, ("seamless",))
    assert outcome_lines(outcome)[2] == f"best trial 0: FID {best:.3f}, {comparison} {POINT_ESTIMATES}"
    assert [row["trial"] for row in table_rows(outcome_table(outcome))] == ["0", "harmonic fill", "grey holes"]


def test_a_resumed_study_continues_where_it_stopped(sweep, tmp_path, tracking_uri):
    first = sweep(n_trials=1)
    assert first.ran == 1 and len(load(tmp_path).get_trials()) == 2  # one done, one waiting
    second = sweep()
    assert second.ran == 1 and second.counts["COMPLETE"] == 2 and second.counts["WAITING"] == 0
    assert len(grid_params(load(tmp_path))) == 2
    assert sweep().ran == 0  # nothing left: no trial, but a parent run that says so
    parents, children = runs_of(tracking_uri)
    assert len(parents) == 3 and len(children) == 2


def test_samplers_other_than_grid_aim_at_n_trials(sweep, tmp_path):
    assert sweep(sampler="tpe", n_trials=1).ran == 1
    assert sweep(sampler="tpe", n_trials=3).ran == 2
    assert sweep(sampler="tpe", n_trials=3).ran == 0
    assert len(load(tmp_path).get_trials(states=(TrialState.COMPLETE,))) == 3


def test_a_failing_trial_is_recorded_and_the_study_goes_on(sweep, tmp_path, tracking_uri, monkeypatch):
    evaluate = trial_module.Evaluator.evaluate

    def fails_for_linear(self, settings, on_step=None, seeds=None):
        if settings.decode.schedule == "linear":
            raise RuntimeError("linear exploded")
        return evaluate(self, settings, on_step, seeds)

    monkeypatch.setattr(trial_module.Evaluator, "evaluate", fails_for_linear)
    outcome = sweep(settings={"schedule": ["linear", "cosine"], "steps": "2"})
    assert outcome.counts["FAIL"] == 1 and outcome.counts["COMPLETE"] == 1
    failed = load(tmp_path).get_trials(states=(TrialState.FAIL,))[0]
    assert failed.params["schedule"] == "linear"
    assert failed.user_attrs["error"] == "RuntimeError: linear exploded"
    run = MlflowClient(tracking_uri).get_run(failed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["error"] == "RuntimeError: linear exploded"
    parents, _ = runs_of(tracking_uri)
    assert parents[0].info.status == "FINISHED"


def test_ctrl_c_fails_the_running_trial_keeps_the_rest_and_resumes(sweep, tmp_path, tracking_uri, monkeypatch):
    evaluate = trial_module.Evaluator.evaluate

    def interrupted_on_linear(self, settings, on_step=None, seeds=None):
        if settings.decode.schedule == "linear":
            raise KeyboardInterrupt
        return evaluate(self, settings, on_step, seeds)

    monkeypatch.setattr(trial_module.Evaluator, "evaluate", interrupted_on_linear)
    with pytest.raises(KeyboardInterrupt):
        sweep()
    study = load(tmp_path)
    interrupted = study.get_trials(states=(TrialState.FAIL,))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 1 and len(interrupted) == 1
    assert interrupted[0].user_attrs["error"].startswith("interrupted")
    client = MlflowClient(tracking_uri)
    assert client.get_run(interrupted[0].user_attrs["mlflow_run_id"]).info.status == "KILLED"
    parents, _ = runs_of(tracking_uri)
    assert parents[0].info.status == "KILLED"

    monkeypatch.setattr(trial_module.Evaluator, "evaluate", evaluate)
    resumed = sweep()
    assert resumed.ran == 1 and resumed.counts["COMPLETE"] == 2
    assert {t.params["schedule"] for t in load(tmp_path).get_trials(states=(TrialState.COMPLETE,))} == {
        "cosine", "linear"}


def test_a_trial_left_running_by_a_dead_worker_is_failed_on_the_next_start(sweep, tmp_path):
    sweep(sampler="tpe", n_trials=1)
    study = load(tmp_path)
    orphan = study.ask()
    orphan.set_user_attr("worker", f"{socket.gethostname()}:999999999")  # no such process
    outcome = sweep(sampler="tpe", n_trials=2)
    assert outcome.orphans == [orphan.number]
    failed = load(tmp_path).trials[orphan.number]
    assert failed.state == TrialState.FAIL and "died" in failed.user_attrs["error"]


def test_two_workers_share_a_grid_without_running_a_point_twice(sweep, tmp_path):
    settings = {"schedule": ["cosine", "linear"], "steps": "2", "sweet_spot": "1,2", "dilation": "0,1"}
    sweep(settings=settings, study_name="warm-up")  # fills the result cache the workers will read
    outcome = sweep(settings=settings, study_name="shared", workers=2)
    study = load(tmp_path, "shared")
    grid = SearchSpace(build_sweep_config(settings, None).space.dims).grid()
    assert outcome.ran == len(grid) == 8
    assert grid_params(study) == sorted(json.dumps(point, sort_keys=True) for point in grid)
    assert len(study.trials) == len(grid)  # none duplicated, failed or left waiting
    assert all(t.user_attrs["cached"] for t in study.trials)


def test_several_objectives_give_a_pareto_front(sweep, tmp_path):
    outcome = sweep(settings={"schedule": ["cosine", "linear"], "steps": "2", "sweet_spot": "any"},
                    objective="fid+steps", sampler="random", n_trials=3)
    study = load(tmp_path)
    assert len(study.directions) == 2
    assert all(len(t.values) == 2 and t.values[1] == t.params["sweet_spot"] for t in study.get_trials())
    assert outcome.best and {t.number for t in outcome.best} == {t.number for t in study.best_trials}
    assert outcome_table(outcome).title.endswith("Pareto front")


def test_a_pruned_trial_keeps_its_curve_so_far_and_the_study_goes_on(sweep, tmp_path, tracking_uri, monkeypatch):
    monkeypatch.setattr(optuna.Trial, "should_prune", lambda self: self.number == 0)
    outcome = sweep(pruner="median")
    assert outcome.counts["PRUNED"] == 1 and outcome.counts["COMPLETE"] == 1
    pruned = load(tmp_path).trials[0]
    assert pruned.state == TrialState.PRUNED and list(pruned.intermediate_values) == [1]
    client = MlflowClient(tracking_uri)
    run_id = pruned.user_attrs["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["optuna_state"] == "PRUNED"
    assert [m.step for m in client.get_metric_history(run_id, "fid")] == [1]


def test_the_median_pruner_stops_a_trial_worse_than_the_median_at_a_step(sweep, tmp_path, monkeypatch):
    """`--pruner median` is Optuna's MedianPruner after 2 startup trials. The FID each trial reports
    is scripted by the order trials start in: 10 then 9, 20 then 19, 30 then 29, 12 then 11. The third
    is worse at step 1 than the median of the first two (15) and is pruned there; the fourth is better
    at step 1 (12 < 15) and at step 2 (11 < 14) and completes."""
    curves = iter([(10.0, 9.0), (20.0, 19.0), (30.0, 29.0), (12.0, 11.0)])
    evaluate = trial_module.Evaluator.evaluate

    def scripted(self, settings, on_step=None, seeds=None):
        curve = next(curves)
        return evaluate(self, settings, on_step=lambda score: on_step(
            dataclasses.replace(score, fid=curve[score.step - 1])), seeds=seeds)

    monkeypatch.setattr(trial_module.Evaluator, "evaluate", scripted)
    outcome = sweep({"schedule": ["cosine", "linear", "square", "log"], "steps": "2"}, pruner="median")
    assert outcome.counts["PRUNED"] == 1 and outcome.counts["COMPLETE"] == 3
    trials = sorted(load(tmp_path).trials, key=lambda t: t.datetime_start)  # in the order they ran
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED, TrialState.COMPLETE]
    assert [t.intermediate_values for t in trials] == [{1: 10.0, 2: 9.0}, {1: 20.0, 2: 19.0}, {1: 30.0},
                                                       {1: 12.0, 2: 11.0}]


def test_a_grid_point_enqueued_twice_runs_once(sweep, tmp_path):
    """Two sweeps starting at once on one grid study may both enqueue its points."""
    space = build_sweep_config(SETTINGS, None).space
    study = optuna.create_study(study_name="study", storage=open_storage(str(tmp_path / "studies.journal")))
    for point in space.grid() * 2:
        study.enqueue_trial(point)
    outcome = sweep()
    assert outcome.counts["COMPLETE"] == 2 and outcome.counts["FAIL"] == 2
    study = load(tmp_path)
    assert grid_params(study) == sorted(json.dumps(point, sort_keys=True) for point in space.grid())
    duplicates = study.get_trials(states=(TrialState.FAIL,))
    assert all(t.user_attrs["error"].startswith("duplicate of trial") for t in duplicates)


def test_no_trial_starts_after_the_timeout(sweep):
    assert sweep(sampler="tpe", n_trials=3, timeout=1e-6).ran == 0


def test_a_database_url_works_as_storage(sweep, tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    assert sweep(storage=url).counts["COMPLETE"] == 2
    study = optuna.load_study(study_name="study", storage=url)
    assert {t.params["schedule"] for t in study.trials} == {"cosine", "linear"}


def test_opening_a_storage_imports_neither_torch_nor_mlflow(tmp_path):
    """`bench report` and `bench dashboard` open the studies' storage without the sweep's machinery
    (a fresh interpreter: this one has imported torch and MLflow already)."""
    journal = tmp_path / "studies.journal"
    code = ("import sys\n"
            "from bench.dashboard import recorded_storage\n"
            "from bench.storage import open_storage\n"
            f"open_storage({str(journal)!r})\n"
            f"recorded_storage({str(journal)!r})\n"
            "print(' '.join(name for name in ('torch', 'mlflow') if name in sys.modules) or 'neither')\n")
    opened = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert opened.stdout.strip() == "neither" and journal.is_file()


def _recorded(number: int, best_step: int, fid: float = 0.0) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(value=fid, params={"schedule": "cosine"},
                                      distributions={"schedule": CategoricalDistribution(["cosine"])},
                                      user_attrs={"mlflow_run_id": f"run{number}", "best_step": best_step})
    trial.number = number
    return trial


def test_each_trial_is_paired_with_the_best_at_their_best_steps():
    """Known answer: replicates of trial 1 exceed the best's by 2.0 + a spread of -1, 0, 1 (each 1/3 of
    them), so FID(1) - FID(0) = 2.0 with the shifted 95% interval [1.0, 3.0] (detectable); trial 2 differs
    by 0.5 with the same spread: [-0.5, 1.5] contains 0 (marked ≈). Trial 3 has no replicates. The
    column replaces the final step's FID (80 columns); one schedule searched is named below the table."""
    import numpy as np

    from bench._sweep_outcome import INDISTINGUISHABLE_NOTE, differences_from_best
    from bench.compare import Uncertainty

    base = np.linspace(40.0, 50.0, 300)
    spread = np.tile([-1.0, 0.0, 1.0], 100)

    def recorded(fids: dict[int, float], replicates: dict[int, np.ndarray]) -> Uncertainty:
        steps = sorted(fids)
        return Uncertainty(np.array(steps), np.array([fids[s] for s in steps]),
                           np.stack([replicates[s] for s in steps]), np.zeros((1, len(steps))), "key")

    runs = {"run0": recorded({1: 60.0, 2: 45.0}, {1: base + 15, 2: base}),  # best at step 2
            "run1": recorded({3: 47.0}, {3: base + 2.0 + spread}),
            "run2": recorded({2: 45.5}, {2: base + 0.5 + spread})}
    best = [_recorded(0, 2), _recorded(1, 3), _recorded(2, 2), _recorded(3, 2)]
    differences = differences_from_best(best, runs.get)
    assert sorted(differences) == [1, 2]
    assert (differences[1].estimate, differences[1].lo, differences[1].hi) == pytest.approx((2.0, 1.0, 3.0))
    assert (differences[2].estimate, differences[2].lo, differences[2].hi) == pytest.approx((0.5, -0.5, 1.5))
    assert differences[1].detectable and not differences[2].detectable

    outcome = SweepOutcome("study", "studies.journal", "sqlite:///mlflow.db", "run", OBJECTIVES["fid"], 1,
                           {"COMPLETE": 4}, best, [], {"grey": {"fid": 103.92, "kid": 0.05}}, 256, ("seamless",),
                           ("cosine",), differences)
    rows = table_rows(outcome_table(outcome))
    assert [row["vs best"] for row in rows] == ["best", "+2.0 [1.0, 3.0]", "+0.5 [-0.5, 1.5]", "", ""]
    assert [row["trial"] for row in rows] == ["0", "1", "2 ≈", "3", "grey holes"]
    assert "final\nFID" not in rows[0] and "schedule" not in rows[0]
    assert outcome_lines(outcome)[0].endswith("paste (--composite): seamless, schedule: cosine")
    assert INDISTINGUISHABLE_NOTE in outcome_lines(outcome)
    assert INDISTINGUISHABLE_NOTE == ("trials marked ≈ are not distinguishable from the best (paired 95% "
                                      "interval of the difference contains 0)")
    alone = dataclasses.replace(outcome, versus_best={})  # nothing paired: no column, no note
    assert "vs best" not in table_rows(outcome_table(alone))[0] and INDISTINGUISHABLE_NOTE not in outcome_lines(alone)
    assert "final\nFID" in table_rows(outcome_table(alone))[0]


def test_the_best_trial_gets_a_paired_verdict_against_each_reference():
    """Known answer: trial 3's replicates at its best step (FID 95.3) minus each fill's are the estimate
    minus a spread of -s, 0, s (a third each), so the shifted 95% interval is [d - s, d + s]: the harmonic
    fill (97.1, s = 3) -1.8 [-4.8, 1.2] contains 0; the grey holes (134.1, s = 4) -38.8 [-42.8, -34.8] and a
    'blur' fill (90.0, s = 1) 5.3 [4.3, 6.3] do not. A 'stale' fill on another bootstrap key does not pair:
    it alone is said by point estimates, labelled."""
    from bench._sweep_outcome import differences_from_references
    from bench.compare import Uncertainty

    base = np.linspace(80.0, 110.0, 300)
    spread = np.tile([-1.0, 0.0, 1.0], 100)
    runs = {"run3": Uncertainty(np.array([4, 8]), np.array([95.3, 99.0]), np.stack([base, base + 3.7]),
                                np.zeros((1, 2)), "key")}
    draws = {"harmonic": (97.1, base + 1.8 + 3 * spread, "key"), "grey": (134.1, base + 38.8 + 4 * spread, "key"),
             "blur": (90.0, base - 5.3 + spread, "key"), "stale": (120.0, base, "another key")}
    best = _recorded(3, 4, fid=95.3)
    differences = differences_from_references(best, draws, runs.get)
    assert sorted(differences) == ["blur", "grey", "harmonic"]
    assert (differences["harmonic"].estimate, differences["harmonic"].lo, differences["harmonic"].hi) == \
        pytest.approx((-1.8, -4.8, 1.2))
    assert differences_from_references(_recorded(4, 4), draws, runs.get) == {}  # no replicates recorded

    references = {name: {"fid": draw[0], "kid": 0.05} for name, draw in draws.items()}
    outcome = SweepOutcome("study", "studies.journal", "sqlite:///mlflow.db", "run", OBJECTIVES["fid"], 1,
                           {"COMPLETE": 1}, [best], [], references, 256, ("seamless",), ("cosine",), {}, differences)
    assert outcome_lines(outcome)[2:6] == [
        "best trial 3 - blur fill: blur fill is better than trial 3 by 5.3 [4.3, 6.3]",
        "best trial 3 - harmonic fill: no detectable difference (-1.8 [-4.8, 1.2])",
        "best trial 3 - grey holes: trial 3 is better than grey holes by 38.8 [34.8, 42.8]",
        f"best trial 3: FID 95.300, better than stale fill (120.000) {POINT_ESTIMATES}"]


@pytest.mark.parametrize("searched, words, kid", [
    ({"schedule": ("cosine", "linear")}, {"schedule", "cosine", "linear"}, True),
    ({"composite": ("hard", "seamless")}, {"composite", "hard", "seamless"}, True),
    ({"sampling_temperature": (0.8, 1.0), "composite": ("seamless", "hard")},
     {"sampling_", "temperature", "0.8", "1.0", "composite", "seamless", "hard"}, False)])
def test_the_table_reads_whole_at_80_columns(searched, words, kid):
    """Rich's width where the output is not a terminal: the default sweep's table (two trials, their paired
    difference, the references), with two schedules or two pastes searched too, has no cell or header cut
    and no word broken. With two long-named settings searched (88 columns with KID: 8 + 14 + 4 + 17 + 6 +
    5 + 11 + 9 and two spaces between columns), the header breaks after its underscore, the references'
    names wrap at their space and KID's column gives way (80 columns without it)."""
    from io import StringIO

    from rich.console import Console

    from bench.stats import Difference

    def trial(number: int, steps: int, chosen: dict) -> optuna.trial.FrozenTrial:
        params = {"schedule": "cosine", "composite": "seamless", "steps": steps, **chosen}
        made = optuna.trial.create_trial(
            value=108.4, params=params, distributions={name: CategoricalDistribution([value]) for name, value in
                                                       params.items()},
            user_attrs={"mlflow_run_id": "a32fbb01b9934a04bbb87dbc14722c6e", "best_step": steps - 1, "kid": 0.0385,
                        "best_fid_ci_low": 100.2, "best_fid_ci_high": 117.1, "final_fid": 110.2})
        made.number = number
        return made

    references = {"harmonic": {"fid": 97.1, "fid_ci_low": 90.2, "fid_ci_high": 106.0, "kid": 0.0365},
                  "grey": {"fid": 134.1, "fid_ci_low": 126.3, "fid_ci_high": 142.0, "kid": 0.0585}}
    trials = [trial(number, steps, {name: values[i] for name, values in searched.items()})
              for i, (number, steps) in enumerate([(10, 4), (11, 8)])]
    outcome = SweepOutcome("sweep-cosine", "bench-studies.journal", "sqlite:///mlflow.db", "run", OBJECTIVES["fid"],
                           2, {"COMPLETE": 2}, trials, [], references,
                           128, searched.get("composite", ("seamless",)), searched.get("schedule", ("cosine",)),
                           {11: Difference(10.5, 6.5, 14.5)})
    console = Console(width=80, file=StringIO())
    console.print(outcome_table(outcome))
    printed = console.file.getvalue()
    assert "…" not in printed and max(map(len, printed.splitlines())) <= 80
    assert all(header in printed for header in ("95% interval", "vs best", "steps", "+10.5 [6.5, 14.5]"))
    assert words | {"harmonic", "fill", "grey", "holes"} <= set(printed.split())
    assert ("0.0385" in printed) == ("0.0365" in printed) == ("KID" in printed) == kid  # a trial's, a reference's
