"""MLflow side of a sweep: one parent run per invocation, one nested run per trial with its settings,
its FID curve (`fid` at step s, beside `fid_ci_low`, `fid_ci_high`, `fid_infinity`, `kid`,
`kid_std`), summary metrics, figures and `uncertainty.npz` (bootstrap replicates, per seed and mean).
When MLflow stops answering, the running trial is recorded FAIL in Optuna and the sweep stops with
one line (nothing is buffered)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.trial import TrialState

from bench.data import TestSet
from bench.defaults import UNCERTAINTY_FILE
from bench.errors import BenchError
from bench.files import checkpoint_params, portable_name
from bench.storage import redacted, study_provenance
from bench.tracking import environment_tags
from bench.trial import Evaluator, StepScore, TrialResult, TrialSettings
from bench.trial_results import save_png

if TYPE_CHECKING:
    from bench._sweep_config import SweepConfig
    from bench._sweep_outcome import SweepOutcome


class TrackingError(BenchError):
    """MLflow could not record a trial (say, the tracking server went away). The trial is recorded FAIL
    in Optuna and the sweep stops instead of buffering: trials it cannot record would be missing from
    every report."""


def _recording(method):
    """For RunLogger's methods: an MLflow failure becomes a one-line TrackingError naming --tracking-uri."""

    @wraps(method)
    def recorded(self, *args, **kwargs):
        from mlflow.exceptions import MlflowException
        from requests import RequestException

        try:
            return method(self, *args, **kwargs)
        except (MlflowException, RequestException) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise TrackingError(f"--tracking-uri {self.tracking_uri}: MLflow could not record {self.subject} "
                                f"({type(exc).__name__}: {reason}); {self.advice}") from None

    return recorded


def end_run(client, run_id: str, status: str, state: TrialState, error: str | None = None) -> None:
    """Close a trial run (status FINISHED, FAILED or KILLED) with its trial's Optuna state and error."""
    client.set_tag(run_id, "optuna_state", state.name)
    if error:
        client.set_tag(run_id, "error", error[:5000])
    client.set_terminated(run_id, status)


TRIAL_OUTAGE_ADVICE = "the trial is recorded FAIL and the same command resumes the study once MLflow is back"
SWEEP_OUTAGE_ADVICE = ("trials finished before the failure stay in the study; the same command resumes it once "
                       "MLflow is back")


class RunLogger:
    """The MLflow side of a sweep: nested runs under the invocation's parent run. An MLflow failure in any
    of its methods is a one-line TrackingError naming what could not be recorded (`subject`) and what the
    user can do (`advice`)."""

    def __init__(self, client, tracking_uri: str, experiment_id: str, parent_run_id: str | None,
                 tags: dict[str, str], params: dict[str, object], subject: str = "the trial",
                 advice: str = TRIAL_OUTAGE_ADVICE):
        self.client, self.experiment_id, self.parent_run_id = client, experiment_id, parent_run_id
        self.tracking_uri = redacted(tracking_uri)  # for messages
        self.tags, self.params = tags, params  # on every trial run
        self.subject, self.advice = subject, advice

    @_recording
    def start_parent(self, run_name: str) -> str:
        """The invocation's parent run, with the tags every run carries; the runs started next nest under it."""
        self.parent_run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=self.tags).info.run_id
        return self.parent_run_id

    @_recording
    def end_parent(self, status: str, metrics: Sequence = ()) -> None:
        """Close the parent run (FINISHED, FAILED or KILLED), after logging `metrics` (mlflow Metric) on it:
        a parent left RUNNING would read as a sweep still going."""
        if metrics:
            self.client.log_batch(self.parent_run_id, metrics=list(metrics))
        self.client.set_terminated(self.parent_run_id, status)

    @_recording
    def log_sweep(self, config: SweepConfig, evaluator: Evaluator, trials: int) -> None:
        """On the parent run: the sweep's options and the reference fills' scores (log_sweep_params,
        log_baselines)."""
        log_sweep_params(self.client, self.parent_run_id, config, evaluator, trials)
        log_baselines(self.client, self.parent_run_id, evaluator)

    @_recording
    def start_run(self, run_name: str, tags: dict[str, str]) -> str:
        """A run nested under the parent run, with the tags every run carries and these."""
        tags = {**self.tags, "mlflow.parentRunId": self.parent_run_id, **tags}
        return self.client.create_run(self.experiment_id, run_name=run_name, tags=tags).info.run_id

    def start_trial(self, trial: optuna.Trial, study_name: str) -> str:
        return self.start_run(f"trial-{trial.number:03d}", {"optuna_study_name": study_name,
                                                             "optuna_trial_number": str(trial.number)})

    @_recording
    def search_runs(self, filter_string: str) -> list:
        """Runs of the experiment that match an MLflow filter."""
        return self.client.search_runs([self.experiment_id], filter_string=filter_string)

    @_recording
    def log_settings(self, run_id: str, settings: TrialSettings, seeds: Sequence[int], bootstrap_key: str) -> None:
        """The settings, the seeds decoded (`seeds` K, `seed_list`) and the test set's bootstrap key."""
        from mlflow.entities import Param, RunTag

        params = {**settings.params(), **self.params, "seeds": len(seeds), "seed_list": ",".join(map(str, seeds))}
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                              tags=[RunTag("bootstrap_key", bootstrap_key)])

    @_recording
    def log_step(self, run_id: str, score: StepScore) -> None:
        """`fid` and its interval, FID-infinity and KID at step s, so the UI draws them against the step."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, float(value), now, score.step) for name, value in score.metrics().items()]
        self.client.log_batch(run_id, metrics=metrics)

    @_recording
    def log_result(self, run_id: str, result: TrialResult, objective_values: dict[str, float]) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        best = {f"best_{name}": value for name, value in result.best.metrics().items()}  # best_fid, best_kid, ...
        values = {**best, "best_step": result.best_step, "final_fid": result.final_fid,
                  "decode_seconds_per_image": result.decode_seconds_per_image, "n_images": result.n_images,
                  **{f"seconds_{phase}": seconds for phase, seconds in result.seconds.items()},
                  **{f"objective_{name}": value for name, value in objective_values.items()}}
        metrics = [Metric(key, float(value), now, 0) for key, value in values.items()]
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag("cached", str(result.cached).lower())])
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "curve.csv").write_text(result.curve_csv())
            (Path(folder) / UNCERTAINTY_FILE).write_bytes(result.uncertainty_npz())
            for name, image in result.figures.items():
                save_png(image, Path(folder) / name)
            self.client.log_artifacts(run_id, folder)

    @_recording
    def end(self, run_id: str | None, status: str, state: TrialState, error: str | None = None) -> None:
        if run_id is not None:
            end_run(self.client, run_id, status, state, error)


# --- what every run of a sweep records ------------------------------------------------------------


def run_tags(config: SweepConfig, evaluator: Evaluator) -> dict[str, str]:
    return {**environment_tags(evaluator.device), **asdict(study_provenance(evaluator)),
            "optuna_study_name": config.study_name, "optuna_storage": redacted(config.storage)}


def run_params(config: SweepConfig, test: TestSet) -> dict[str, object]:
    """What every trial run records besides its settings: enough to replay it (`bench inpaint --from-run`
    reads `data_path` and `checkpoint_path`); `data` and `checkpoint` are portable names, which reports
    print beside the `data_hash` and `checkpoint_sha` tags (a machine path has no place in a committed
    report)."""
    return {"data": portable_name(test.root.absolute()), "data_path": str(test.root), "n_images": len(test),
            "protocol": config.protocol, **checkpoint_params(config.checkpoint)}


def log_sweep_params(client, run_id: str, config: SweepConfig, evaluator: Evaluator, trials: int) -> None:
    from mlflow.entities import Param

    params = {**run_params(config, evaluator.test), "sampler": config.sampler_name, "objective": config.objective,
              "pruner": config.pruner, "n_trials": config.n_trials, "timeout": config.timeout,
              "workers": config.workers, "trials_planned": trials, "batch_size": evaluator.batch_size,
              "compiled": evaluator.compiled,
              "search_space": json.dumps(config.space.describe())}
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])


def log_baselines(client, run_id: str, evaluator: Evaluator) -> None:
    """On the parent run: baseline_<name>_<metric> (fid, fid_ci_low, fid_ci_high, fid_infinity, kid,
    kid_std), the reference rows `bench report` draws beside the trials, and `baselines.npz` with their
    bootstrap replicates (paired with every trial's on this test set): the Evaluator's cache file itself."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(f"baseline_{name}_{key}", float(value), now, 0)
                                      for name, row in evaluator.baselines.items() for key, value in row.items()])
    client.log_artifact(run_id, str(evaluator.baselines_file))  # written by evaluator.baselines above


def reference_draws(evaluator: Evaluator) -> dict[str, tuple[float, np.ndarray, str]]:
    """{name: (FID, bootstrap replicates, key)} of the reference fills, as `baselines.npz` records them:
    the sweep's outcome pairs the best trial with each (bench._sweep_outcome)."""
    return {name: (summary.fid, summary.replicates, evaluator.data_hash)
            for name, summary in evaluator.baseline_summaries.items()}


def count_metrics(outcome: SweepOutcome) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = {f"trials_{state.lower()}": count for state, count in outcome.counts.items()}
    values["trials_this_sweep"] = outcome.ran
    return [Metric(key, float(value), now, 0) for key, value in values.items()]
