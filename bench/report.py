"""`bench report`: comparison figures and a written summary from recorded studies.

Reads the trial runs of one or more studies from MLflow (params, summary metrics and the `fid`
curve of every run) into pandas, and the studies themselves from Optuna's storage where it helps
(optimisation history, parameter importances, Pareto fronts). Writes one PNG per figure and a
`report.md` that embeds them with short tables, then logs the folder to each study's newest
parent run. A figure whose data is missing (one schedule swept, one T, no Optuna storage) becomes
a note in `report.md`, never a crash.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from maskgit.schedules import get_schedule, masked_fractions, schedule_names

NUMERIC_PARAMS = ("steps", "choice_temperature", "sampling_temperature", "seed", "dilation", "feather", "n_images")
SETTING_COLUMNS = ("schedule", "steps", "choice_temperature", "anneal", "confidence", "sampling",
                   "sampling_temperature", "dilation", "composite", "seed")
TOP_ROWS = 10
MIN_TRIALS_FOR_IMPORTANCE = 4
BASELINE_STYLES = {"grey": ":", "harmonic": "--"}


class MissingData(Exception):
    """A figure cannot be drawn from what is recorded; the message goes into report.md."""


# --- the recorded data ------------------------------------------------------------------------


@dataclass
class ReportData:
    """Everything the figures read: trials (one row per complete trial run) and their curves."""

    studies: list[str]
    trials: pd.DataFrame  # run_id, study, trial, settings (typed), best_fid, best_step, final_fid, kid, seconds_*
    curves: pd.DataFrame  # run_id, step, fid
    baselines: dict[str, float]  # name -> FID of the fills that learn nothing, on the same test images
    parent_runs: dict[str, str]  # study -> its newest parent (sweep) run
    provenance: dict[str, str]  # checkpoint, data, n_images, protocol
    counts: dict[str, int]  # trial runs by Optuna state
    optuna_studies: list = field(default_factory=list)  # optuna.Study objects found in the storage
    unknown_counts: np.ndarray | None = None  # N0 per test image (tokens to fill), for the applied schedule
    client: object = None
    tracking_uri: str = ""

    def at_steps(self, steps: int) -> pd.DataFrame:
        return self.trials[self.trials["steps"] == steps]

    def varied(self) -> list[str]:
        """Settings that differ between trials (schedule and T always)."""
        return [c for c in SETTING_COLUMNS if c in self.trials
                and (c in ("schedule", "steps") or self.trials[c].astype(str).nunique() > 1)]


def load_report_data(tracking_uri: str, studies: Sequence[str] = (), experiments: Sequence[str] = (),
                     storage: str | None = None) -> ReportData:
    """The recorded trials of the named studies (MLflow experiments); the newest study if none is named."""
    from bench.tracking import tracking_client

    client = tracking_client(tracking_uri)
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
    trial_runs = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
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
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    curves = pd.DataFrame([(run.info.run_id, m.step, m.value) for run in complete
                           for m in client.get_metric_history(run.info.run_id, "fid")],
                          columns=["run_id", "step", "fid"])
    return ReportData(
        studies=list(experiment_ids), trials=trials, curves=curves.sort_values(["run_id", "step"]),
        baselines=_baselines(parents), parent_runs=_newest_parents(parents, experiment_ids), provenance=provenance,
        counts=counts, optuna_studies=_optuna_studies(storage, list(experiment_ids)),
        unknown_counts=_unknown_counts(provenance), client=client, tracking_uri=tracking_uri)


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
                     "trial": int(tags.get("optuna_trial_number", -1)), **run.data.params,
                     **{k: v for k, v in metrics.items() if k != "fid"}})
    frame = pd.DataFrame(rows)
    for column in NUMERIC_PARAMS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["steps"] = frame["steps"].astype(int)
    frame["best_step"] = frame["best_step"].astype(int)
    return frame.sort_values("best_fid", kind="stable").reset_index(drop=True)


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
    return {**seen, "checkpoint": params.get("checkpoint", ""), "data": params.get("data", ""),
            "n_images": params.get("n_images", "")}


def _baselines(parents: list) -> dict[str, float]:
    found = {}
    for run in parents:
        for key, value in run.data.metrics.items():
            match = re.fullmatch(r"baseline_(.+)_fid", key)
            if match:
                found[match.group(1)] = value
    return found


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
    """N0 (tokens to fill) per test image, from the recorded test set, if it can still be read."""
    from bench.data import load_test_set
    from maskgit.decoding import pixel_holes_to_token_unknown

    try:
        test = load_test_set(provenance["data"])
        count = int(provenance["n_images"])
    except (BenchError, OSError, ValueError, KeyError):
        return None
    if count < len(test):  # the sweep's --limit: its first `count` images
        test = test.subset(count)
    if test.content_hash() != provenance["data_hash"]:  # the folder changed since
        return None
    return pixel_holes_to_token_unknown(test.holes).sum(1).numpy()


# --- figures ------------------------------------------------------------------------------------


@dataclass
class Section:
    """One figure of the report: its file (None when it could not be drawn), caption or note."""

    key: str
    title: str
    file: str | None
    text: str


FigureFn = Callable[["ReportData", "ReportStyle", Path], str]


@dataclass
class ReportStyle:
    """What every figure shares: the T of the step-wise figures and one colour per schedule."""

    steps: int
    palette: dict[str, tuple]


def _style(data: ReportData, steps: int | None) -> ReportStyle:
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
    if steps is None:  # the T with the most trials (ties: the largest), e.g. 13 in the seed-report study
        per_t = data.trials.groupby("steps").size()
        steps = int(max(per_t.index, key=lambda t: (per_t[t], t)))
    elif steps not in set(data.trials["steps"]):
        raise BenchError(f"--steps {steps}: no complete trial used T = {steps} "
                         f"(recorded: {', '.join(map(str, sorted(set(data.trials['steps']))))})")
    order = [name for name in schedule_names() if name in set(data.trials["schedule"])]
    order += sorted(set(data.trials["schedule"]) - set(order))
    colours = sns.color_palette("tab10", 10)
    return ReportStyle(steps, {name: colours[i % 10] for i, name in enumerate(order)})


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _draw_baselines(ax, data: ReportData) -> None:
    for name, value in sorted(data.baselines.items()):
        ax.axhline(value, color="0.35", linestyle=BASELINE_STYLES.get(name, "-."), linewidth=1.2,
                   label=f"{name} fill (reference)")


def fig_fid_vs_step(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt
    import seaborn as sns

    trials = data.at_steps(style.steps)
    curves = data.curves.merge(trials[["run_id", "schedule"]], on="run_id")
    if curves.empty:
        raise MissingData(f"no FID curves recorded at T = {style.steps}")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sns.lineplot(curves, x="step", y="fid", hue="schedule", palette=style.palette, marker="o", errorbar=("ci", 95),
                 ax=ax, hue_order=[s for s in style.palette if s in set(curves["schedule"])])
    _draw_baselines(ax, data)
    ax.set(xlabel="decoding step s (sweet spot)", ylabel="FID (lower is better)",
           title=f"FID vs decoding step, T = {style.steps} ({data.provenance['n_images']} test images)")
    ax.set_xticks(range(1, style.steps + 1))
    ax.legend(fontsize=8)
    _save(fig, path)
    runs = trials.groupby("schedule").size()
    per = ", ".join(f"{name}: {count}" for name, count in runs.items())
    return (f"Each line is a schedule's mean FID after step s of T = {style.steps}; the band is the 95% confidence "
            f"interval over its trials (seeds and the other settings; trials per schedule: {per}). Dashed and dotted "
            "lines are the reference fills that learn nothing.")


def fig_schedules(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt
    import torch

    names = [s for s in style.palette if s in set(data.at_steps(style.steps)["schedule"])]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    n0 = data.unknown_counts
    typical = float(np.median(n0)) if n0 is not None else 112.0
    dense = torch.linspace(0, 1, 201, dtype=torch.float64)
    for name in names:
        formula = get_schedule(name)(dense, torch.full_like(dense, typical)).clamp(0, 1)
        ax.plot(dense.numpy() * style.steps, formula.numpy(), color=style.palette[name], linewidth=1.5,
                label=f"{name}: gamma(t/T)")
        if n0 is not None:
            applied = masked_fractions(name, style.steps, torch.as_tensor(n0, dtype=torch.long)).applied
            mean = applied.mean(dim=1).numpy()
            ax.plot(range(style.steps + 1), [1.0, *mean], color=style.palette[name], marker="o", linestyle="",
                    markersize=5, label=f"{name}: applied n_t/N0")
    ax.set(xlabel="decoding step t", ylabel="fraction of unknown tokens still masked",
           title=f"Mask schedules at T = {style.steps}", ylim=(-0.03, 1.03))
    ax.set_xticks(range(style.steps + 1))
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
    applied_text = (f"markers: the share actually still masked after step t (floor and clamps applied), averaged over "
                    f"the {len(n0)} test images (median N0 = {typical:.0f} tokens to fill)" if n0 is not None else
                    "the applied counts need the recorded test set, which could not be read, so only formulas are drawn")
    return f"Lines: each schedule's formula gamma(r) at r = t/T (for N0 = {typical:.0f} where it matters); {applied_text}."


def fig_best_and_final_vs_steps(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt
    import seaborn as sns

    if data.trials["steps"].nunique() < 2:
        raise MissingData(f"only T = {style.steps} was swept; this figure compares several T")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    order = [s for s in style.palette]
    for ax, column, title in zip(axes, ("best_fid", "final_fid"), ("best FID (at the sweet spot)", "final FID (step T)")):
        sns.lineplot(data.trials, x="steps", y=column, hue="schedule", hue_order=order, palette=style.palette,
                     marker="o", errorbar=("ci", 95), ax=ax)
        _draw_baselines(ax, data)
        ax.set(xlabel="total iterations T", ylabel="FID (lower is better)", title=title)
        ax.set_xticks(sorted(set(data.trials["steps"])))
        ax.legend(fontsize=7)
    _save(fig, path)
    return ("Best FID over the steps of each trial and the FID of its last step, against the number of iterations T "
            "(mean and 95% CI over trials).")


def fig_temperature(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt
    import seaborn as sns

    trials = data.trials
    if "choice_temperature" not in trials or trials["choice_temperature"].nunique() < 2:
        raise MissingData("the choice temperature was not varied")
    hue = "anneal" if trials["anneal"].nunique() > 1 else "schedule"
    palette = style.palette if hue == "schedule" else None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if trials["choice_temperature"].nunique() <= 8:
        sns.lineplot(trials, x="choice_temperature", y="best_fid", hue=hue, palette=palette, marker="o",
                     errorbar=("ci", 95), ax=ax)
    else:
        sns.scatterplot(trials, x="choice_temperature", y="best_fid", hue=hue, palette=palette, ax=ax)
    positive = trials["choice_temperature"][trials["choice_temperature"] > 0]
    if len(positive) and positive.max() / positive.min() >= 10 and (trials["choice_temperature"] > 0).all():
        ax.set_xscale("log")
    _draw_baselines(ax, data)
    ax.set(xlabel="choice temperature (Gumbel noise scale at step 1)", ylabel="best FID (lower is better)",
           title=f"Choice temperature vs best FID, by {hue}")
    ax.legend(fontsize=8)
    _save(fig, path)
    return f"Best FID of each trial against its choice temperature, coloured by {hue}."


def fig_sweet_spot_heatmap(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt
    import seaborn as sns

    curves = data.curves.merge(data.trials[["run_id", "schedule", "steps"]], on="run_id")
    names = [s for s in style.palette if s in set(curves["schedule"])][:4]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 1, 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        grid = curves[curves["schedule"] == name].pivot_table(index="steps", columns="step", values="fid", aggfunc="mean")
        sns.heatmap(grid, ax=ax, cmap="viridis_r", cbar_kws={"label": "mean FID (bright: lower)"},
                    annot=grid.shape[1] <= 13, fmt=".1f", annot_kws={"fontsize": 6})
        ax.grid(False)
        for row, (steps, values) in enumerate(grid.iterrows()):
            best = int(values.idxmin())
            ax.add_patch(plt.Rectangle((list(grid.columns).index(best), row), 1, 1, fill=False, edgecolor="red", lw=2))
        ax.set(xlabel="decoding step s", ylabel="total iterations T", title=name)
    _save(fig, path)
    return "Mean FID over (T, step) per schedule; the red box in each row is that T's sweet spot."


def fig_optuna_history(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt

    studies = [s for s in data.optuna_studies if len(s.directions) == 1]
    if not studies:
        raise MissingData("no single-objective study found in the Optuna storage (--storage)")
    from optuna.trial import TrialState

    fig, ax = plt.subplots(figsize=(7, 4))
    for study in studies:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        numbers = [t.number for t in done]
        values = [t.values[0] for t in done]
        ax.scatter(numbers, values, s=18, alpha=0.7, label=f"{study.study_name}: trials")
        ax.step(numbers, np.minimum.accumulate(values), where="post", label=f"{study.study_name}: best so far")
    ax.set(xlabel="trial number", ylabel="objective (FID)", title="Optimisation history")
    ax.legend(fontsize=8)
    _save(fig, path)
    return "Objective of each complete trial in the order Optuna ran them, and the best value so far."


def fig_optuna_importance(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt
    import optuna

    from optuna.trial import TrialState

    for study in data.optuna_studies:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        varied = sorted({name for t in done for name in t.params if len({str(u.params.get(name)) for u in done}) > 1})
        if len(study.directions) != 1 or len(done) < MIN_TRIALS_FOR_IMPORTANCE or not varied:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                importances = optuna.importance.get_param_importances(study, params=varied)
            except (RuntimeError, ValueError) as exc:
                raise MissingData(f"Optuna could not compute parameter importances ({exc})") from None
        break
    else:
        raise MissingData(f"parameter importances need a single-objective study in --storage with at least "
                          f"{MIN_TRIALS_FOR_IMPORTANCE} complete trials and a setting that varies")
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(importances) + 1.5))
    names = list(importances)[::-1]
    ax.barh(names, [importances[name] for name in names], color="tab:blue")
    ax.set(xlabel="importance for FID (normalised)", title=f"Parameter importances: {study.study_name}")
    _save(fig, path)
    return (f"How much each setting that varied matters for the objective of {study.study_name} "
            f"({len(done)} trials; Optuna's default importance evaluator).")


def fig_pareto(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt

    studies = [s for s in data.optuna_studies if len(s.directions) == 2]
    if not studies:
        raise MissingData("no multi-objective study (--objective fid+steps or fid+seconds) in --storage")
    from optuna.trial import TrialState

    study = studies[0]
    names = study.user_attrs.get("objective_names", ["objective 0", "objective 1"])
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials}
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    others = [t for t in done if t.number not in front]
    ax.scatter([t.values[1] for t in others], [t.values[0] for t in others], s=18, color="0.6", label="trials")
    best = sorted((t for t in done if t.number in front), key=lambda t: t.values[1])
    ax.plot([t.values[1] for t in best], [t.values[0] for t in best], "o-", color="tab:red", label="Pareto front")
    ax.set(xlabel=names[1], ylabel=f"{names[0]} (lower is better)", title=f"Pareto front: {study.study_name}")
    ax.legend(fontsize=8)
    _save(fig, path)
    return f"Trials of {study.study_name} in objective space; red: the trials no other trial beats on both."


FIGURES: list[tuple[str, str, FigureFn]] = [
    ("fid_vs_step", "FID vs decoding step, per schedule", fig_fid_vs_step),
    ("schedules", "The mask schedules: formula and applied counts", fig_schedules),
    ("best_and_final_vs_steps", "Best and final FID vs total iterations T", fig_best_and_final_vs_steps),
    ("temperature", "Choice temperature", fig_temperature),
    ("sweet_spot_heatmap", "Where the sweet spot lies: FID over (T, step)", fig_sweet_spot_heatmap),
    ("optuna_history", "Optuna: optimisation history", fig_optuna_history),
    ("optuna_importance", "Optuna: parameter importances", fig_optuna_importance),
    ("pareto_front", "Optuna: Pareto front", fig_pareto),
]
"""The report's figures in order; a function writes its PNG and returns the caption, or raises MissingData."""


def best_trial_figures(data: ReportData, out: Path) -> Section:
    """The best trial's progression grid and latent masks, as recorded by the sweep."""
    best = data.trials.iloc[0]
    copied = []
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # two small files: no bars
    with tempfile.TemporaryDirectory() as folder:
        for name in ("progression.png", "latent_mask.png"):
            try:
                local = data.client.download_artifacts(best["run_id"], name, folder)
            except Exception:  # artifact store moved or the run predates the artifact
                continue
            shutil.copyfile(local, out / f"best_{name}")
            copied.append(f"best_{name}")
    title = "The best trial: inpainting progressions and latent masks"
    if not copied:
        return Section("best_trial", title, None, f"the artifacts of run {best['run_id']} could not be read")
    text = (f"Trial {best['trial']} of {best['study']} ({_describe(best)}). Each row is a test image: the masked "
            "input, the output after each step, then the ground truth. Below: the token mask before decoding "
            "and after each step (dark: known, grey: filled, white: still masked).")
    images = "\n\n".join(f"![{name}]({name})" for name in copied)
    return Section("best_trial", title, copied[0], f"{text}\n\n{images}")


# --- tables and the summary --------------------------------------------------------------------


def _describe(row: pd.Series) -> str:
    text = f"{row['schedule']}, T = {row['steps']}"
    if "choice_temperature" in row and not pd.isna(row["choice_temperature"]):
        text += f", choice temperature {row['choice_temperature']:g}"
    return text


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        if value is pd.NA:
            return ""
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def fixed_settings(data: ReportData) -> str:
    """The settings no trial varied (e.g. composite = hard), so the tables need not repeat them."""
    varied = data.varied()
    return ", ".join(f"{c} = {data.trials[c].iloc[0]}" for c in SETTING_COLUMNS
                     if c in data.trials and c not in varied)


def top_table(data: ReportData, rows: int = TOP_ROWS) -> pd.DataFrame:
    columns = ["trial", *data.varied(), "best_step", "best_fid", "final_fid", "kid", "seconds_total"]
    if len(data.studies) > 1:
        columns.insert(0, "study")
    return data.trials[[c for c in columns if c in data.trials]].head(rows)


def schedule_table(data: ReportData) -> pd.DataFrame:
    """Each schedule at its best trial, with the reference fills below."""
    best = data.trials.groupby("schedule", sort=False).head(1)
    columns = [c for c in ("schedule", "steps", "choice_temperature", "best_step", "best_fid", "final_fid", "kid")
               if c in best]
    table = best[columns].copy()
    references = pd.DataFrame([{"schedule": f"{name} fill (reference)", "best_fid": value}
                               for name, value in sorted(data.baselines.items())])
    table = pd.concat([table, references], ignore_index=True) if len(references) else table
    return table.astype({c: "Int64" for c in ("steps", "best_step") if c in table})


def summary_lines(data: ReportData) -> list[str]:
    best = data.trials.iloc[0]
    lines = [f"- **Best setting**: {_describe(best)}, sweet spot at step {best['best_step']}: FID "
             f"**{best['best_fid']:.2f}** (its last step: {best['final_fid']:.2f})."]
    if "harmonic" in data.baselines:
        harmonic = data.baselines["harmonic"]
        verdict = "beats" if best["best_fid"] < harmonic else "does **not** beat"
        lines.append(f"- It {verdict} the harmonic fill, which learns nothing (FID {harmonic:.2f}).")
    by_schedule = data.trials.groupby("schedule")["best_fid"].min().sort_values()
    if len(by_schedule) > 1:
        lines.append("- Schedules at their best: " + ", ".join(f"{name} {value:.2f}" for name, value in by_schedule.items())
                     + ".")
    one_step = data.trials[data.trials["steps"] == 1]
    if len(one_step):
        lines.append(f"- One-step decoding (T = 1) at its best: FID {one_step['best_fid'].min():.2f}.")
    later = data.trials[data.trials["best_step"] < data.trials["steps"]]
    lines.append(f"- The sweet spot came before the last step in {len(later)} of {len(data.trials)} trials.")
    return lines


# --- the report -------------------------------------------------------------------------------


@dataclass
class Report:
    out: Path
    sections: list[Section]
    logged_to: list[str]  # parent run ids that got the report as artifacts


def write_report(data: ReportData, out: Path, steps: int | None = None, log: bool = True) -> Report:
    """The figures, report.md and trials.csv in `out`; logged to each study's newest parent run."""
    import matplotlib

    matplotlib.use("Agg")
    style = _style(data, steps)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for key, title, draw in FIGURES:
        path = out / f"{key}.png"
        try:
            sections.append(Section(key, title, path.name, draw(data, style, path)))
        except MissingData as missing:
            path.unlink(missing_ok=True)
            sections.append(Section(key, title, None, f"Not drawn: {missing}."))
    sections.append(best_trial_figures(data, out))
    data.trials.to_csv(out / "trials.csv", index=False)
    (out / "report.md").write_text(render_markdown(data, style, sections))
    logged = []
    if log:
        for parent in data.parent_runs.values():
            data.client.log_artifacts(parent, str(out), artifact_path="report")
            logged.append(parent)
    return Report(out, sections, logged)


def render_markdown(data: ReportData, style: ReportStyle, sections: list[Section]) -> str:
    p = data.provenance
    counts = ", ".join(f"{count} {state.lower()}" for state, count in sorted(data.counts.items()))
    lines = [
        f"# Decoding study report: {', '.join(data.studies)}",
        "",
        "MaskGIT fills the masked tokens of each test image over T decoding steps; after every step the "
        "partly filled image can be decoded and scored. FID (Frechet Inception Distance between the "
        "inpainted images and the ground truth; lower is better) is computed after every step, so each "
        "trial gives a curve, and its *sweet spot* is the step with the lowest FID.",
        "",
        f"- Model `{p['checkpoint']}` (sha256 {p['checkpoint_sha'][:12]}), test set `{p['data']}` "
        f"({p['n_images']} images, data hash {p['data_hash']}), FID protocol `{p['protocol']}`.",
        f"- Trials recorded: {counts}; the figures use the {len(data.trials)} complete ones.",
        f"- Settings shared by every trial: {fixed_settings(data) or 'none'}.",
        f"- FID at {p['n_images']} images is biased upwards at small N: compare rows of this report, not with "
        "numbers from other test-set sizes.",
        "",
        "## Summary",
        "",
        *summary_lines(data),
        "",
        "## Schedules at their best",
        "",
        _markdown_table(schedule_table(data)),
        "",
        f"## Top {min(TOP_ROWS, len(data.trials))} configurations",
        "",
        _markdown_table(top_table(data)),
        "",
        "(`seconds_total`: wall time of the trial: decoding, pixels and FID at every step.)",
        "",
    ]
    for number, section in enumerate(sections, start=1):
        lines += [f"## {number}. {section.title}", ""]
        if section.file and section.key != "best_trial":
            lines += [f"![{section.title}]({section.file})", ""]
        lines += [section.text, ""]
    lines += ["All trials, one row each: [trials.csv](trials.csv)."]
    return "\n".join(lines) + "\n"


def default_out(studies: Sequence[str]) -> Path:
    name = "+".join(studies) if studies else "latest"
    return Path("reports") / re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:80]


def make_report(tracking_uri: str, studies: Sequence[str] = (), experiments: Sequence[str] = (),
                storage: str | None = None, out: Path | None = None, steps: int | None = None,
                log: bool = True) -> Report:
    """`bench report`: load, draw, write, log."""
    data = load_report_data(tracking_uri, studies, experiments, storage)
    return write_report(data, out or default_out(data.studies), steps, log)


def report_lines(report: Report) -> list[str]:
    drawn = [s for s in report.sections if s.file]
    lines = [f"wrote {report.out / 'report.md'} with {len(drawn)} figures"]
    lines += [f"  not drawn: {s.title}: {s.text.removeprefix('Not drawn: ')}" for s in report.sections if not s.file]
    lines += [f"logged to MLflow run {run_id} (artifacts/report)" for run_id in report.logged_to]
    return lines
