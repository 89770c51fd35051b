"""bench sweep --confirm K: the K best configurations of a finished study are evaluated again with
seeds none of their runs used, recorded as trial runs tagged confirmation=true, confirms=<trial>,
at the step the trial chose; an unknown or empty study is a one-line error and nothing changes.

The study is recorded by a real sweep (tiny random model, toy faces, stand-in Inception features
whose statistics are computed for real)."""

from __future__ import annotations

import shutil

import optuna
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from bench.compare import read_uncertainty
from cli import app

SPACE = ["--schedule", "cosine", "--schedule", "linear", "--steps", "2,3"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, empty_mlflow_database, instant_fid_context, tiny_checkpoint, tiny_test_set):
    """A grid study of 4 configurations with 2 seeds each, then --confirm 2 (once), in their own store."""
    folder = tmp_path_factory.mktemp("confirm")
    shutil.copyfile(empty_mlflow_database, folder / "mlflow.db")
    options = ["--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--storage", str(folder / "studies.journal"),
               "--data", str(tiny_test_set), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
               "--batch-size", "4", "--study-name", "grid", "--seeds", "2"]
    with instant_fid_context():
        swept = CliRunner().invoke(app, ["sweep", *SPACE, *options])
        assert swept.exit_code == 0, swept.output
        confirmed = CliRunner().invoke(app, ["sweep", *SPACE, *options, "--confirm", "2"])
    return folder, options, confirmed


def test_confirm_records_k_tagged_runs_with_fresh_seeds_at_the_chosen_step(swept):
    folder, _, confirmed = swept
    assert confirmed.exit_code == 0, confirmed.output
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("grid").experiment_id
    runs = client.search_runs([experiment], filter_string="tags.confirms != ''")
    assert len(runs) == 2
    study = optuna.load_study(study_name="grid", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "studies.journal"))))
    assert len(study.trials) == 4  # no Optuna trial added: the samplers never see confirmations
    best = sorted(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.values[0])[:2]
    assert sorted(int(r.data.tags["confirms"]) for r in runs) == sorted(t.number for t in best)
    for run in runs:
        trial = study.trials[int(run.data.tags["confirms"])]
        assert run.data.tags["confirmation"] == "true" and "optuna_trial_number" not in run.data.tags
        seeds = [int(s) for s in run.data.params["seed_list"].split(",")]
        assert len(seeds) == 2 and not set(seeds) & set(trial.user_attrs["seed_list"])
        for name in ("schedule", "steps", "choice_temperature", "composite"):
            assert run.data.params[name] == str(trial.params[name])
        assert run.data.params["sweet_spot"] == str(trial.user_attrs["best_step"])
        assert run.data.metrics["best_step"] == trial.user_attrs["best_step"]
        uncertainty = read_uncertainty(client, run.info.run_id)
        assert uncertainty.seed_fid.shape[0] == 2 and uncertainty.key == run.data.tags["bootstrap_key"]
        line = f"  trial {trial.number}: study FID {trial.values[0]:.2f} -> confirmed FID " \
               f"{run.data.metrics['best_fid']:.2f}"
        assert line in confirmed.output
    assert "confirmed winner: trial " in confirmed.output


def test_confirming_again_draws_seeds_no_earlier_confirmation_used(swept, instant_fid_context):
    folder, options, _ = swept
    with instant_fid_context():
        again = CliRunner().invoke(app, ["sweep", *SPACE, *options, "--confirm", "1"])
    assert again.exit_code == 0, again.output
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("grid").experiment_id
    runs = client.search_runs([experiment], filter_string="tags.confirms != ''", order_by=["attributes.start_time"])
    number = runs[-1].data.tags["confirms"]
    seen = [run.data.params["seed_list"].split(",") for run in runs if run.data.tags["confirms"] == number]
    assert len(seen) == 2 and not set(seen[0]) & set(seen[1])


def snapshot(folder) -> tuple:
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return len(runs), (folder / "studies.journal").read_bytes()


@pytest.mark.parametrize("study, message", [
    ("nothing-here", "error: --confirm 2: no study 'nothing-here' in this --storage"),
    ("empty", "error: --confirm 2: study empty has no complete trial to confirm"),
])
def test_confirm_on_an_unknown_or_empty_study_is_one_line_and_changes_nothing(swept, study, message):
    folder, options, _ = swept
    optuna.create_study(study_name="empty", load_if_exists=True, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "studies.journal"))))
    before = snapshot(folder)
    result = CliRunner().invoke(app, ["sweep", *SPACE, *options[:-4], "--study-name", study, "--confirm", "2"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [message + " (run bench sweep first)" if "no study" in message
                                                  else message]
    assert snapshot(folder) == before


def test_confirm_zero_is_refused(swept):
    folder, options, _ = swept
    result = CliRunner().invoke(app, ["sweep", *SPACE, *options, "--confirm", "0"])
    assert result.exit_code == 2 and result.output.strip() == "error: --confirm must be at least 1 (got 0)"


def test_compare_pairs_a_recorded_trial_with_its_confirmation(swept):
    from bench.stats import paired_difference

    folder, _, _ = swept
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("grid").experiment_id
    confirmation = client.search_runs([experiment], filter_string="tags.confirms != ''")[0]
    number = confirmation.data.tags["confirms"]
    result = CliRunner().invoke(app, ["compare", f"grid:{number}", confirmation.info.run_id, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    trial_run = client.search_runs([experiment], filter_string=f"tags.optuna_trial_number = '{number}'")[0]
    a, b = read_uncertainty(client, trial_run.info.run_id), read_uncertainty(client, confirmation.info.run_id)
    step = int(confirmation.data.metrics["best_step"])  # the confirmation's fixed sweet spot: the trial's best step
    expected = paired_difference(*a.at(step), *b.at(step))
    assert f"A - B: {expected.verdict(f'grid:{number}', confirmation.info.run_id)}\n" in result.output


def test_a_configuration_tried_twice_is_confirmed_once_with_seeds_neither_trial_used(
        tmp_path, empty_mlflow_database, instant_fid_context, tiny_checkpoint, tiny_test_set):
    shutil.copyfile(empty_mlflow_database, tmp_path / "mlflow.db")
    options = ["--schedule", "cosine", "--steps", "2", "--sampler", "random", "--n-trials", "2", "--seeds", "1",
               "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--storage", str(tmp_path / "studies.journal"),
               "--data", str(tiny_test_set), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
               "--batch-size", "4", "--study-name", "one-point"]
    with instant_fid_context():
        swept = CliRunner().invoke(app, ["sweep", *options])
        assert swept.exit_code == 0, swept.output
        confirmed = CliRunner().invoke(app, ["sweep", *options, "--confirm", "2"])
    assert confirmed.exit_code == 0, confirmed.output
    study = optuna.load_study(study_name="one-point", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "studies.journal"))))
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2 and trials[0].params == trials[1].params
    assert {seed for t in trials for seed in t.user_attrs["seed_list"]} == {0, 1}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("one-point").experiment_id
    runs = client.search_runs([experiment], filter_string="tags.confirms != ''")
    assert len(runs) == 1
    best = min(trials, key=lambda t: t.values[0])
    assert runs[0].data.tags["confirms"] == str(best.number) and runs[0].data.params["seed_list"] == "2"


def test_mlflow_going_away_mid_confirmation_is_one_line_and_loses_nothing_recorded(
        tmp_path, empty_mlflow_database, instant_fid_context, tiny_checkpoint, tiny_test_set, monkeypatch):
    """The store fails every call once the second confirmation run is created: one line, exit 2, the first
    confirmation stays recorded, the study is untouched, and the same command confirms again afterwards."""
    from mlflow.exceptions import MlflowException

    shutil.copyfile(empty_mlflow_database, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = [*SPACE[:2], "--steps", "2,3", "--seeds", "1", "--tracking-uri", uri, "--storage",
               str(tmp_path / "studies.journal"), "--data", str(tiny_test_set), "--checkpoint", str(tiny_checkpoint),
               "--device", "cpu", "--batch-size", "4", "--study-name", "outage"]
    with instant_fid_context():
        assert CliRunner().invoke(app, ["sweep", *options]).exit_code == 0
    journal = (tmp_path / "studies.journal").read_bytes()
    created = []

    def failing(name):
        original = getattr(MlflowClient, name)

        def call(self, *args, **kwargs):
            if len(created) == 3:  # the parent and two confirmation runs: the store goes away
                raise MlflowException("tracking store unavailable")
            result = original(self, *args, **kwargs)
            if name == "create_run":
                created.append(result)
            return result
        return call

    with monkeypatch.context() as patch, instant_fid_context():
        for name in ("create_run", "log_batch", "log_artifacts", "set_tag", "set_terminated", "search_runs"):
            patch.setattr(MlflowClient, name, failing(name))
        failed = CliRunner().invoke(app, ["sweep", *options, "--confirm", "2"])
    assert failed.exit_code == 2
    assert failed.output.splitlines() == [
        f"error: --tracking-uri {uri}: MLflow could not record the confirmation runs (MlflowException: tracking "
        "store unavailable); confirmation runs finished before the failure stay recorded and the study is "
        "untouched; the same command confirms again, with fresh seeds, once MLflow is back"]
    assert (tmp_path / "studies.journal").read_bytes() == journal
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("outage").experiment_id
    runs = client.search_runs([experiment], filter_string="tags.confirms != ''", order_by=["attributes.start_time"])
    assert [run.info.status for run in runs] == ["FINISHED", "RUNNING"]  # the second was cut off, not closed
    assert "best_fid" in runs[0].data.metrics and "best_fid" not in runs[1].data.metrics

    with instant_fid_context():
        again = CliRunner().invoke(app, ["sweep", *options, "--confirm", "2"])
    assert again.exit_code == 0, again.output
    runs = client.search_runs([experiment], filter_string="tags.confirms != ''", order_by=["attributes.start_time"])
    assert [run.info.status for run in runs] == ["FINISHED", "RUNNING", "FINISHED", "FINISHED"]
    kept, _, *rerun = runs
    assert {run.data.tags["confirms"] for run in rerun} == {run.data.tags["confirms"] for run in runs}
    again_of_kept = next(run for run in rerun if run.data.tags["confirms"] == kept.data.tags["confirms"])
    assert again_of_kept.data.params["seed_list"] != kept.data.params["seed_list"]  # its seeds stayed used
