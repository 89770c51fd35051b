"""`bench report`'s input: the recorded trials of one or more studies, read from MLflow (params,
summary metrics, every `fid` curve with its logged interval, the reference fills on the parent runs,
the confirmation runs of `bench sweep --confirm`, and the trials' uncertainty.npz where a table pairs
them) and, where present, the studies from Optuna's storage."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.defaults import BASELINES_FILE, CONFIRMATION_TAG, CONFIRMS_TAG
from bench.errors import BenchError
from bench.files import portable_name

NUMERIC_PARAMS = ("steps", "choice_temperature", "sampling_temperature", "seed", "dilation", "feather", "n_images")
SETTING_COLUMNS = ("schedule", "steps", "choice_temperature", "anneal", "confidence", "sampling",
                   "sampling_temperature", "dilation", "composite", "seed")


@dataclass
class ReportData:
    """Everything the figures read: trials (one row per complete trial run) and their curves."""

    studies: list[str]
    trials: pd.DataFrame  # run_id, study, trial, settings (typed), best_fid, best_step, final_fid, kid, seconds_*
    curves: pd.DataFrame  # run_id, step, fid, fid_ci_low, fid_ci_high (NaN where no interval was logged)
    baselines: dict[str, float]  # name -> FID of the fills that learn nothing, on the same test images
    baseline_intervals: dict[str, dict[str, float]]  # name -> {fid_ci_low, fid_ci_high} where logged
    parent_runs: dict[str, str]  # study -> its newest parent (sweep) run
    provenance: dict[str, str]  # checkpoint, data, n_images, protocol
    counts: dict[str, int]  # trial runs by Optuna state
    optuna_studies: list = field(default_factory=list)  # optuna.Study objects found in the storage
    unknown_counts: np.ndarray | None = None  # N0 per test image (tokens to fill), for the applied schedule
    client: object = None
    tracking_uri: str = ""
    confirmations: pd.DataFrame | None = None  # confirmation runs: run_id, confirms, settings, best_* (None: none)
    _uncertainties: dict = field(default_factory=dict)

    def reference_draws(self) -> dict[str, tuple[float, np.ndarray, str]]:
        """{name: (FID, replicates [B], bootstrap key)} of the reference fills, from the newest sweep's
        `baselines.npz` ({} when no parent run has one); read once."""
        if "references" not in self._uncertainties:
            self._uncertainties["references"] = _reference_draws(self.client, list(self.parent_runs.values()))
        return self._uncertainties["references"]

    def uncertainty(self, run_id: str):
        """The run's uncertainty.npz (bench.compare.Uncertainty), None when it has none; read once."""
        from bench.compare import read_uncertainty

        if run_id not in self._uncertainties:
            self._uncertainties[run_id] = read_uncertainty(self.client, run_id)
        return self._uncertainties[run_id]

    def at_steps(self, steps: int) -> pd.DataFrame:
        return self.trials[self.trials["steps"] == steps]

    def setting_columns(self) -> list[str]:
        """The settings the trials recorded; their seeds as the list each decoded with (`seed` is only
        the first of them when a trial ran several)."""
        seeds = "seed_list" if "seed_list" in self.trials and self.trials["seed_list"].notna().all() else "seed"
        return [seeds if c == "seed" else c for c in SETTING_COLUMNS if c in self.trials]

    def varied(self) -> list[str]:
        """Settings that differ between trials (schedule and T always)."""
        return [c for c in self.setting_columns()
                if c in ("schedule", "steps") or self.trials[c].astype(str).nunique() > 1]


def load_report_data(tracking_uri: str, studies: Sequence[str] = (), experiments: Sequence[str] = (),
                     storage: str | None = None) -> ReportData:
    """The recorded trials of the named studies (MLflow experiments); the newest study if none is named."""
    from bench.tracking import recorded_store_client

    client = recorded_store_client(tracking_uri)
    names = [*studies, *experiments] or [_newest_study(client, tracking_uri)]
    experiment_ids = {}
    for name in dict.fromkeys(names):
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = ", ".join(sorted(e.name for e in client.search_experiments() if e.name != "Default")) or "none"
            option = "--study" if name in studies else "--experiment"
            raise BenchError(f"{option} {name}: no such study in {tracking_uri} (recorded: {known})")
        experiment_ids[name] = experiment.experiment_id
    runs = _all_runs(client, list(experiment_ids.values()))
    confirmation_runs = [run for run in runs if run.data.tags.get(CONFIRMATION_TAG) == "true"
                         and "mlflow.parentRunId" in run.data.tags and "best_fid" in run.data.metrics]
    trial_runs = [run for run in runs if "mlflow.parentRunId" in run.data.tags
                  and run.data.tags.get(CONFIRMATION_TAG) != "true"]
    if not trial_runs:
        raise BenchError(f"--study {', '.join(experiment_ids)}: no trial runs recorded in {tracking_uri} yet "
                         "(run bench sweep first)")
    counts: dict[str, int] = {}
    for run in trial_runs:
        state = run.data.tags.get("optuna_state", run.info.status)
        counts[state] = counts.get(state, 0) + 1
    complete = [run for run in trial_runs if run.data.tags.get("optuna_state") == "COMPLETE"
                and "best_fid" in run.data.metrics]
    if not complete:
        raise BenchError(f"--study {', '.join(experiment_ids)}: none of its {len(trial_runs)} trials is complete yet")
    trials = _trials_frame(complete)
    provenance = _single_provenance(complete)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags
               and run.data.tags.get(CONFIRMATION_TAG) != "true"]  # sweeps' parents: the references, the report
    return ReportData(
        studies=list(experiment_ids), trials=trials, curves=_curves(client, complete),
        baselines=_baselines(parents), baseline_intervals=_baseline_intervals(parents),
        parent_runs=_newest_parents(parents, experiment_ids), provenance=provenance,
        counts=counts, optuna_studies=_optuna_studies(storage, list(experiment_ids)),
        unknown_counts=_unknown_counts(provenance), client=client, tracking_uri=tracking_uri,
        confirmations=_confirmations_frame(confirmation_runs, provenance))


def _newest_study(client, tracking_uri: str) -> str:
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.optuna_study_name != ''", max_results=1,
                              order_by=["attributes.start_time DESC"])
    if not runs:
        raise BenchError(f"--tracking-uri {tracking_uri}: no studies recorded there (run bench sweep first)")
    return runs[0].data.tags["optuna_study_name"]


def _all_runs(client, experiment_ids: list[str]) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _trials_frame(runs: list) -> pd.DataFrame:
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        rows.append({"run_id": run.info.run_id, "study": tags.get("optuna_study_name", ""),
                     "trial": int(tags.get("optuna_trial_number", -1)), **portable_params(run.data.params),
                     **({"confirms": int(tags[CONFIRMS_TAG])} if CONFIRMS_TAG in tags else {}),
                     **{k: v for k, v in metrics.items() if k not in STEP_METRICS},
                     "kid": metrics.get("best_kid", metrics.get("kid", np.nan))})  # the best step's (older runs: kid)
    frame = pd.DataFrame(rows)
    for column in NUMERIC_PARAMS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["steps"] = frame["steps"].astype(int)
    frame["best_step"] = frame["best_step"].astype(int)
    return frame.sort_values("best_fid", kind="stable").reset_index(drop=True)


LOCAL_PATH_PARAMS = {"data_path": "data", "checkpoint_path": "checkpoint"}
"""Params that hold a folder on the recording machine -> the param holding its portable name."""


def portable_params(params: dict[str, str]) -> dict[str, str]:
    """A run's params as trials.csv shows them: the test set and model by their portable names, no local
    folder (runs recorded before `data_path`/`checkpoint_path` carried the folder in `data`/`checkpoint`)."""
    shown = {name: value for name, value in params.items() if name not in LOCAL_PATH_PARAMS}
    return {**shown, **{name: portable_name(params[name]) for name in LOCAL_PATH_PARAMS.values() if name in params}}


CURVE_METRICS = ("fid", "fid_ci_low", "fid_ci_high")
STEP_METRICS = (*CURVE_METRICS, "fid_infinity", "kid", "kid_std")  # logged per step: a run's last value is no summary


def _curves(client, runs: list) -> pd.DataFrame:
    """Every run's FID per step beside the interval logged with it (NaN where none was: older runs)."""
    frames = []
    for name in CURVE_METRICS:
        rows = [(run.info.run_id, m.step, m.value)
                for run in runs for m in client.get_metric_history(run.info.run_id, name)]
        frames.append(pd.DataFrame(rows, columns=["run_id", "step", name]).set_index(["run_id", "step"]))
    curves = frames[0].join(frames[1:], how="left").reset_index()
    return curves.sort_values(["run_id", "step"]).reset_index(drop=True)


def _confirmations_frame(runs: list, provenance: dict[str, str]) -> pd.DataFrame | None:
    """The newest confirmation run of each confirmed trial (a study's trial: trial numbers repeat across
    studies), on the trials' model and images (others could not be compared with them)."""
    newest = {}
    for run in sorted(runs, key=lambda run: run.info.start_time):
        if all(run.data.tags.get(key) == provenance[key] for key in ("checkpoint_sha", "data_hash", "protocol")):
            newest[run.data.tags.get("optuna_study_name", ""), run.data.tags[CONFIRMS_TAG]] = run
    return _trials_frame(list(newest.values())) if newest else None


def _single_provenance(runs: list) -> dict[str, str]:
    """The model, data and protocol of the trials; FIDs of different ones are not comparable."""
    seen = {}
    for key in ("checkpoint_sha", "data_hash", "protocol"):
        values = {run.data.tags.get(key, "") for run in runs}
        if len(values) > 1:
            raise BenchError(f"--study: these studies mix {key} values ({', '.join(sorted(values))}); "
                             "their FIDs are not comparable, report them separately")
        seen[key] = values.pop()
    params = runs[0].data.params
    counts = {run.data.params.get("n_images") for run in runs}
    if len(counts) > 1:
        raise BenchError(f"--study: these studies used different numbers of test images ({', '.join(sorted(counts))})")
    return {**seen, "checkpoint": portable_name(params.get("checkpoint", "")),
            "data": portable_name(params.get("data", "")),
            "data_path": params.get("data_path", params.get("data", "")), "n_images": params.get("n_images", "")}


def _baselines(parents: list) -> dict[str, float]:
    found = {}
    for run in parents:
        for key, value in run.data.metrics.items():
            match = re.fullmatch(r"baseline_(.+)_fid", key)
            if match:
                found[match.group(1)] = value
    return found


def _baseline_intervals(parents: list) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for run in parents:
        for key, value in run.data.metrics.items():
            match = re.fullmatch(r"baseline_(.+)_(fid_ci_low|fid_ci_high)", key)
            if match:
                found.setdefault(match.group(1), {})[match.group(2)] = value
    return found


def _reference_draws(client, parent_ids: list[str]) -> dict[str, tuple[float, np.ndarray, str]]:
    import tempfile

    for run_id in parent_ids:
        if BASELINES_FILE not in {artifact.path for artifact in client.list_artifacts(run_id)}:
            continue
        with tempfile.TemporaryDirectory() as folder, np.load(client.download_artifacts(run_id, BASELINES_FILE,
                                                                                        folder)) as stored:
            names = [key.removesuffix("_replicates") for key in stored.files if key.endswith("_replicates")]
            return {name: (float(stored[f"{name}_fid"]), stored[f"{name}_replicates"], str(stored["key"]))
                    for name in names}
    return {}


def _newest_parents(parents: list, experiment_ids: dict[str, str]) -> dict[str, str]:
    newest = {}
    for name, experiment_id in experiment_ids.items():
        own = [run for run in parents if run.info.experiment_id == experiment_id]
        if own:
            newest[name] = max(own, key=lambda run: run.info.start_time).info.run_id
    return newest


def _optuna_studies(storage: str | None, names: list[str]) -> list:
    """The studies found in the Optuna storage (none when it is absent or unreadable)."""
    if storage is None:
        return []
    import optuna

    from bench.storage import open_storage

    if "://" not in storage and not Path(storage).is_file():
        return []
    try:
        opened = open_storage(storage)
    except BenchError:
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found = []
    for name in names:
        try:
            found.append(optuna.load_study(study_name=name, storage=opened))
        except KeyError:
            continue
    return found


def _unknown_counts(provenance: dict[str, str]) -> np.ndarray | None:
    """N0 (tokens to fill) per test image, from the recorded test set's folder, if it can still be read
    here (another machine's path is not: the report then goes without)."""
    from bench.data import load_test_set
    from maskgit.decoding import pixel_holes_to_token_unknown

    try:
        test = load_test_set(provenance["data_path"])
        count = int(provenance["n_images"])
    except (BenchError, OSError, ValueError, KeyError):
        return None
    if count < len(test):  # the sweep's --limit: its first `count` images
        test = test.subset(count)
    if test.content_hash() != provenance["data_hash"]:  # the folder changed since
        return None
    return pixel_holes_to_token_unknown(test.holes).sum(1).numpy()


def describe_trial(row: pd.Series) -> str:
    """A trial row in words: its schedule, T and choice temperature."""
    text = f"{row['schedule']}, T = {row['steps']}"
    if "choice_temperature" in row and not pd.isna(row["choice_temperature"]):
        text += f", choice temperature {row['choice_temperature']:g}"
    return text
