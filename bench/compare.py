"""`bench compare A B`: is one recorded trial's FID really lower than another's? (docs/architecture.md#paired-verdicts)

A trial is named `<study>:<trial number>` (the Optuna trial of that study's MLflow experiment) or by
its MLflow run id (confirmation runs, which have no trial number of their own). Each trial run
carries `uncertainty.npz` (the bootstrap replicates of its FID at every scored step, on resample
indices shared by every trial of one test set), so the difference of two trials' replicates is
the replicates of their difference: `bench.stats.paired_difference` turns that into an interval
and a verdict. Nothing recorded is written.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.defaults import CONFIRMATION_TAG, CONFIRMS_TAG, UNCERTAINTY_FILE
from bench.errors import BenchError
from bench.stats import Difference, interval, paired_difference

RUN_ID = re.compile(r"[0-9a-f]{32}")
MUST_AGREE = {"checkpoint_sha": "models (checkpoint sha256)", "data_hash": "test sets (data hash)",
              "protocol": "FID protocols"}
"""Tags two trials must share for their FIDs to be paired, and what differs when they do not; their
uncertainty.npz must also share its bootstrap key (the resample indices)."""


@dataclass(frozen=True)
class Uncertainty:
    """A trial's `uncertainty.npz` (layout: the contract in docs/architecture.md#uncertainty)."""

    steps: np.ndarray  # int [S], the scored steps
    fid: np.ndarray  # [S], mean over seeds
    replicates: np.ndarray  # [S, B], paired by shared image indices
    seed_fid: np.ndarray  # [K, S]
    key: str  # bootstrap key: the test set's content hash

    @classmethod
    def read(cls, path: Path) -> Uncertainty:
        with np.load(path) as stored:
            return cls(stored["steps"].astype(int), stored["fid"], stored["replicates"], stored["seed_fid"],
                       str(stored["key"]))

    @property
    def last_step(self) -> int:
        return int(self.steps.max())

    def has(self, step: int) -> bool:
        return step in self.steps

    def at(self, step: int) -> tuple[float, np.ndarray]:
        """(FID, replicates [B]) at a scored step."""
        row = int(np.flatnonzero(self.steps == step)[0])
        return float(self.fid[row]), self.replicates[row]

    def interval(self, step: int) -> tuple[float, float]:
        return interval(*self.at(step))


@dataclass(frozen=True)
class RecordedTrial:
    """One trial run as compare and the report read it."""

    name: str  # as the user named it
    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    best_step: int
    uncertainty: Uncertainty

    def describe(self) -> str:
        study, number = self.tags.get("optuna_study_name", "?"), self.tags.get("optuna_trial_number")
        confirms = self.tags.get(CONFIRMS_TAG, "?")
        what = f"trial {number} of {study}" if number is not None else f"confirmation of trial {confirms} of {study}"
        settings = ", ".join(f"{k} {self.params[k]}" for k in ("schedule", "steps", "choice_temperature")
                             if k in self.params)
        return f"{what} (run {self.run_id[:12]}; {settings})"


def read_uncertainty(client, run_id: str) -> Uncertainty | None:
    """The run's uncertainty.npz, or None when it has none (recorded before intervals existed)."""
    names = {artifact.path for artifact in client.list_artifacts(run_id)}
    if UNCERTAINTY_FILE not in names:
        return None
    with tempfile.TemporaryDirectory() as folder:
        return Uncertainty.read(Path(client.download_artifacts(run_id, UNCERTAINTY_FILE, folder)))


def find_run(client, spec: str, tracking_uri: str):
    """The MLflow run named by `<study>:<trial number>` or a run id; a BenchError naming `spec` if none."""
    from mlflow.exceptions import MlflowException

    study, colon, number = spec.rpartition(":")
    if colon and number.isdigit():
        experiment = client.get_experiment_by_name(study)
        if experiment is None:
            raise BenchError(f"{spec}: no study {study!r} in {tracking_uri}")
        runs = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.optuna_trial_number = '{int(number)}'", max_results=10)
        runs = [run for run in runs if run.data.tags.get(CONFIRMATION_TAG) != "true"]
        if not runs:
            raise BenchError(f"{spec}: study {study} has no trial {int(number)} in {tracking_uri}")
        return max(runs, key=lambda run: run.info.start_time)
    if not RUN_ID.fullmatch(spec):
        raise BenchError(f"{spec}: name a trial as <study>:<trial number> (e.g. sweep-cosine:3) or an MLflow run id")
    try:
        return client.get_run(spec)
    except MlflowException:
        raise BenchError(f"{spec}: no such MLflow run in {tracking_uri}") from None


def load_trial(client, spec: str, tracking_uri: str) -> RecordedTrial:
    run = find_run(client, spec, tracking_uri)
    if "mlflow.parentRunId" not in run.data.tags or "best_step" not in run.data.metrics:
        raise BenchError(f"{spec}: run {run.info.run_id} is not a finished trial run (no best_step recorded)")
    uncertainty = read_uncertainty(client, run.info.run_id)
    if uncertainty is None:
        raise BenchError(f"{spec}: run {run.info.run_id} has no {UNCERTAINTY_FILE} (recorded before FIDs had "
                         "intervals); run the trial again to compare it")
    return RecordedTrial(spec, run.info.run_id, dict(run.data.tags), dict(run.data.params),
                         int(run.data.metrics["best_step"]), uncertainty)


def check_comparable(a: RecordedTrial, b: RecordedTrial) -> None:
    """Same model, test set and protocol, and replicates of the same length: else no pairing exists."""
    checks = [(what, a.tags.get(tag), b.tags.get(tag)) for tag, what in MUST_AGREE.items()]
    checks.append(("test sets (bootstrap key)", a.uncertainty.key, b.uncertainty.key))
    for what, left, right in checks:
        if left != right:
            raise BenchError(f"{a.name} and {b.name}: different {what} ({left} vs {right}); "
                             "paired differences need the same model, images and protocol")
    count_a, count_b = a.uncertainty.replicates.shape[1], b.uncertainty.replicates.shape[1]
    if count_a != count_b:
        raise BenchError(f"{a.name} and {b.name}: {count_a} and {count_b} bootstrap replicates; they must match")


def step_of(trial: RecordedTrial, step: int | None) -> int:
    """`step` (--step), else the trial's best step; it must be one the trial scored."""
    chosen = trial.best_step if step is None else step
    if not trial.uncertainty.has(chosen):
        scored = ", ".join(map(str, trial.uncertainty.steps))
        raise BenchError(f"--step {chosen}: {trial.name} has no FID at that step (scored: {scored})")
    return chosen


def difference(a: RecordedTrial, step_a: int, b: RecordedTrial, step_b: int) -> Difference:
    """FID(a at step_a) - FID(b at step_b), paired over the shared resamples."""
    return paired_difference(*a.uncertainty.at(step_a), *b.uncertainty.at(step_b))


def step_vs_last(uncertainty: Uncertainty, step: int) -> Difference:
    """FID at `step` minus FID at the last step, within one trial (the sweet-spot claim)."""
    return paired_difference(*uncertainty.at(step), *uncertainty.at(uncertainty.last_step))


@dataclass(frozen=True)
class Comparison:
    a: RecordedTrial
    b: RecordedTrial
    step_a: int
    step_b: int
    difference: Difference  # FID(A) - FID(B)
    sweet_spots: dict[str, Difference]  # trial name -> step minus last step (trials whose step is not the last)


def compare_trials(tracking_uri: str, spec_a: str, spec_b: str, step: int | None = None) -> Comparison:
    """`bench compare`: read both trials, check they pair, and measure the difference and the sweet spots."""
    from bench.tracking import recorded_store_client

    client = recorded_store_client(tracking_uri)
    a, b = (load_trial(client, spec, tracking_uri) for spec in (spec_a, spec_b))
    check_comparable(a, b)
    step_a, step_b = step_of(a, step), step_of(b, step)
    spots = {t.name: step_vs_last(t.uncertainty, s) for t, s in ((a, step_a), (b, step_b))
             if s != t.uncertainty.last_step}
    return Comparison(a, b, step_a, step_b, difference(a, step_a, b, step_b), spots)


def comparison_lines(comparison: Comparison) -> list[str]:
    """What `bench compare` prints: each trial's FID with its interval, the verdict, the sweet spots."""
    c = comparison
    lines = []
    for label, trial, step in (("A", c.a, c.step_a), ("B", c.b, c.step_b)):
        fid, _ = trial.uncertainty.at(step)
        lo, hi = trial.uncertainty.interval(step)
        seeds = len(trial.uncertainty.seed_fid)
        lines.append(f"{label} = {trial.name}: {trial.describe()}")
        lines.append(f"    step {step} of {trial.uncertainty.last_step}: FID {fid:.2f} [{lo:.2f}, {hi:.2f}] "
                     f"({seeds} seed{'s' * (seeds != 1)})")
    count = c.a.uncertainty.replicates.shape[1]
    lines.append(f"A - B: {c.difference.verdict(c.a.name, c.b.name)}")
    lines.append(f"    (FID difference with its 95% interval, paired over {count} resamples of the same test images)")
    for name, spot in c.sweet_spots.items():
        trial, step = (c.a, c.step_a) if name == c.a.name else (c.b, c.step_b)
        lines.append(sweet_spot_line(name, step, trial.uncertainty.last_step, spot))
    return lines


def sweet_spot_line(name: str, step: int, last: int, spot: Difference) -> str:
    """'step 6 is better than the last step (8) by 2.1 [1.0, 3.3]': a sweet spot counts only where the
    interval excludes 0; otherwise the verdict says there is no detectable difference."""
    return f"sweet spot of {name}: {spot.verdict(f'step {step}', f'the last step ({last})')}"
