"""`bench report`'s figures: one function per PNG, drawn with seaborn from the recorded data; a
figure the data cannot support raises MissingData, which becomes a note in report.md."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench._report_data import ReportData, describe_trial
from bench._report_verdicts import (
    TOP_ROWS,
    beats_last_step,
    steps_versus_last,
    versus_best,
    versus_reference,
)
from bench.baselines import reference_label
from bench.errors import BenchError
from bench.stats import Difference
from maskgit.schedules import get_schedule, masked_fractions, schedule_names

MIN_TRIALS_FOR_IMPORTANCE = 4
BASELINE_STYLES = {"grey": ":", "harmonic": "--"}


class MissingData(Exception):
    """A figure cannot be drawn from what is recorded; the message goes into report.md."""


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


def report_style(data: ReportData, steps: int | None) -> ReportStyle:
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


def fit_y_to(ax, values) -> None:
    """The y-axis spans the curves (and their bands) with a margin, whatever the reference lines are."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return
    low, high = values.min(), values.max()
    margin = max(0.08 * (high - low), 0.5)
    ax.set_ylim(low - margin, high + margin)


def _draw_baselines(ax, data: ReportData) -> None:
    """Reference fills inside the y-range as lines; those outside it as notes at that edge, so a far
    reference (grey holes are often several times the trials' FID) never squashes the curves."""
    low, high = ax.get_ylim()
    above = sorted((v, n) for n, v in data.baselines.items() if v > high)
    below = sorted(((v, n) for n, v in data.baselines.items() if v < low), reverse=True)
    for name, value in sorted(data.baselines.items()):
        if low <= value <= high:
            ax.axhline(value, color="0.35", linestyle=BASELINE_STYLES.get(name, "-."), linewidth=1.2,
                       label=reference_label(name))
    for row, (value, name) in enumerate(above):
        ax.annotate(f"↑ {reference_label(name)}: {value:.1f}", xy=(0.99, 0.98 - 0.07 * row),
                    xycoords="axes fraction", ha="right", va="top", fontsize=8, color="0.3")
    for row, (value, name) in enumerate(below):
        ax.annotate(f"↓ {reference_label(name)}: {value:.1f}", xy=(0.99, 0.02 + 0.07 * row),
                    xycoords="axes fraction", ha="right", va="bottom", fontsize=8, color="0.3")


def step_bands(data: ReportData, steps: int) -> pd.DataFrame:
    """Each schedule's best trial at T: its FID per step with the interval logged beside each FID
    (bootstrap over test images, and seeds), i.e. the lines and bands of the FID-vs-step figure."""
    best = data.at_steps(steps).groupby("schedule", sort=False).head(1)  # trials are sorted by best FID
    return data.curves.merge(best[["run_id", "schedule", "trial"]], on="run_id").sort_values(["schedule", "step"])


def fig_fid_vs_step(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt

    bands = step_bands(data, style.steps)
    if bands.empty:
        raise MissingData(f"no FID curves recorded at T = {style.steps}")
    names = [s for s in style.palette if s in set(bands["schedule"])]
    versus_last = {name: steps_versus_last(data, bands.loc[bands["schedule"] == name, "run_id"].iloc[0])
                   for name in names}
    versus_last = {name: frame for name, frame in versus_last.items() if frame is not None}
    if versus_last:
        fig, (ax, below) = plt.subplots(2, 1, figsize=(7, 6.6), sharex=True, height_ratios=(3, 2))
    else:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in names:
        curve = bands[bands["schedule"] == name]
        colour = style.palette[name]
        ax.plot(curve["step"], curve["fid"], marker="o", color=colour, label=f"{name} (trial {curve['trial'].iloc[0]})")
        _outlined_band(ax, curve["step"], curve["fid_ci_low"], curve["fid_ci_high"], colour)
    fit_y_to(ax, bands[["fid", "fid_ci_low", "fid_ci_high"]].to_numpy().ravel())
    _draw_baselines(ax, data)
    ax.set(xlabel="" if versus_last else "decoding step s (sweet spot)", ylabel="FID (lower is better)",
           title=f"FID vs decoding step, T = {style.steps} ({data.provenance['n_images']} test images)")
    ax.set_xticks(range(1, style.steps + 1))
    ax.legend(fontsize=8, loc="upper left")  # over the bands' top, clear of the curves in the middle
    if versus_last:
        for name, frame in versus_last.items():
            below.plot(frame["step"], frame["estimate"], marker="o", markersize=4, color=style.palette[name])
            _outlined_band(below, frame["step"], frame["lo"], frame["hi"], style.palette[name])
        below.axhline(0, color="black", linewidth=1)
        below.set(xlabel="decoding step s (sweet spot)", ylabel="FID(s) - FID(T), paired")
    _save(fig, path)
    banded = bands["fid_ci_low"].notna().any()
    band = ("the band is that trial's 95% interval, logged beside each FID (bootstrap over the test images, "
            "and over seeds when the trial ran several): it covers the FID expected at this number of images, "
            "and most of its width is which images were drawn, which every trial shares, so overlapping bands "
            "do not make two curves indistinguishable (paired differences decide that: the lower panel, the "
            "next figure and the table's `vs best` column)"
            if banded else "no intervals were logged with these runs (recorded before intervals existed), so "
            "no bands are drawn")
    lower = (" Below: the same trials' FID after step s minus their FID after the last step, with the 95% "
             "interval of that paired difference; a step beats decoding to the end only where its band lies "
             "wholly below 0." if versus_last else "")
    return (f"Each line is a schedule's best trial at T = {style.steps}: its FID after step s; {band}. Reference "
            f"fills that learn nothing are dashed and dotted lines, or a note at the edge when outside the range.{lower}")


def _outlined_band(ax, x, low, high, colour) -> None:
    """A light interval band with dashed edges, so that several schedules' bands stay apart."""
    ax.fill_between(x, low, high, color=colour, alpha=0.08, linewidth=0)
    for edge in (low, high):
        ax.plot(x, edge, color=colour, linewidth=0.8, linestyle="--", alpha=0.7)


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


def _errorbars(ax, frame: pd.DataFrame, x: str, value: str, low: str, high: str, **style) -> None:
    """Points with the logged interval as error bars (none where no interval was logged)."""
    spread = np.stack([frame[value] - frame[low], frame[high] - frame[value]]) if low in frame else None
    ax.errorbar(frame[x], frame[value], yerr=None if spread is None else np.nan_to_num(spread), capsize=3, **style)


def dodge(names: list[str], positions: pd.Series) -> dict[str, float]:
    """A small sideways shift per series, centred on 0, so error bars at the same x do not hide each other."""
    step = 0.04 * (positions.max() - positions.min()) or 0.1
    return {name: (index - (len(names) - 1) / 2) * step for index, name in enumerate(names)}


def fig_best_and_final_vs_steps(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt

    if data.trials["steps"].nunique() < 2:
        raise MissingData(f"only T = {style.steps} was swept; this figure compares several T")
    best = data.trials.groupby(["schedule", "steps"], sort=False).head(1)  # each (schedule, T)'s best trial
    final = best[["run_id", "schedule", "steps"]].merge(data.curves, left_on=["run_id", "steps"],
                                                        right_on=["run_id", "step"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    panels = ((best, "best_fid", "best FID (at the sweet spot)"), (final, "fid", "final FID (step T)"))
    names = [s for s in style.palette if s in set(best["schedule"])]
    offsets = dodge(names, data.trials["steps"])
    for ax, (frame, column, title) in zip(axes, panels):
        for name in names:
            rows = frame[frame["schedule"] == name].sort_values("steps")
            rows = rows.assign(shown_at=rows["steps"] + offsets[name])
            _errorbars(ax, rows, "shown_at", column, f"{column}_ci_low", f"{column}_ci_high", marker="o",
                       color=style.palette[name], label=name)
        ax.set(xlabel="total iterations T", ylabel="FID (lower is better)", title=title)
        ax.set_xticks(sorted(set(data.trials["steps"])))
    values = [best.get(c) for c in ("best_fid", "best_fid_ci_low", "best_fid_ci_high")] + \
        [final.get(c) for c in ("fid", "fid_ci_low", "fid_ci_high")]
    fit_y_to(axes[0], np.concatenate([v.to_numpy(dtype=float) for v in values if v is not None]))
    for ax in axes:
        _draw_baselines(ax, data)
        ax.legend(fontsize=7, loc="best")
    _save(fig, path)
    return ("The best trial of each schedule and T: its best FID over the steps (the lowest of the curve, so "
            "chosen on the same noise it is measured with and biased low; the final FID is not chosen) and the "
            "FID of its last step, "
            "against the number of iterations T (schedules shifted slightly sideways so that their bars stay "
            "apart); error bars are each trial's logged 95% interval (test images and seeds), not a spread over "
            "different settings.")


def _setting_label(row: pd.Series) -> str:
    return f"trial {row['trial']}: {row['schedule']}, T = {row['steps']}, step {row['best_step']}"


def differences_from_best(data: ReportData) -> list[tuple[str, Difference, bool]]:
    """(label, FID minus the best trial's, whether it is a reference fill) for the best trials after the
    first and the harmonic fill, each paired with the best on the same images; pairless ones are left out."""
    top = data.trials.head(TOP_ROWS)
    rows = [(_setting_label(row), difference, False)
            for (_, row), difference in list(zip(top.iterrows(), versus_best(data, top)))[1:] if difference is not None]
    harmonic = versus_reference(data, top.iloc[0], "harmonic")
    if harmonic is not None:  # best minus harmonic, turned round: harmonic minus best
        rows.append((reference_label("harmonic"), Difference(-harmonic.estimate, -harmonic.hi, -harmonic.lo), True))
    return rows


def fig_versus_best(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt

    rows = differences_from_best(data)
    if not any(not reference for _, _, reference in rows):
        raise MissingData("no second trial shares uncertainty data with the best one, so nothing pairs with it")
    best = data.trials.iloc[0]
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(rows) + 1.6))
    ax.plot(0, 0, "*", color="black", markersize=10)
    labels, colours = [f"{_setting_label(best)}: the best"], ["black"]
    for position, (label, difference, reference) in enumerate(rows, start=1):
        colour = "0.45" if reference else "tab:red" if difference.detectable else "tab:green"
        ax.errorbar(difference.estimate, position, xerr=[[difference.estimate - difference.lo],
                                                           [difference.hi - difference.estimate]],
                    fmt="s" if reference else "o", color=colour, capsize=3)
        verdict = "" if reference else ": worse" if difference.detectable else ": indistinguishable"
        labels.append(label + verdict)
        colours.append(colour)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for tick, colour in zip(ax.get_yticklabels(), colours):  # the verdict in words and colour, no legend to hide a row
        tick.set_color(colour)
    ax.invert_yaxis()
    ax.set(xlabel=f"FID minus the best's ({best['best_fid']:.2f}), paired 95% interval",
           title="Each setting against the best, paired on the same images")
    _save(fig, path)
    return (f"Each of the best trials after trial {best['trial']} (the best), and the harmonic fill: its FID minus the "
            "best one's, with the 95% interval of that paired difference (both resampled on the same images and "
            "seeds, so it is much narrower than the two FIDs' own intervals). Green, *indistinguishable*: the interval "
            "includes 0, the setting is statistically indistinguishable from the best; red, *worse*: detectably worse.")


def fig_temperature(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt

    trials = data.trials
    if "choice_temperature" not in trials or trials["choice_temperature"].nunique() < 2:
        raise MissingData("the choice temperature was not varied")
    hue = "anneal" if trials["anneal"].nunique() > 1 else "schedule"
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index, (name, rows) in enumerate(trials.groupby(hue, sort=False)):
        colour = style.palette.get(name) if hue == "schedule" else f"C{index}"
        _errorbars(ax, rows, "choice_temperature", "best_fid", "best_fid_ci_low", "best_fid_ci_high",
                   fmt="o", color=colour, label=name, alpha=0.8)
    positive = trials["choice_temperature"][trials["choice_temperature"] > 0]
    if len(positive) and positive.max() / positive.min() >= 10 and (trials["choice_temperature"] > 0).all():
        ax.set_xscale("log")
    fit_y_to(ax, trials[[c for c in ("best_fid", "best_fid_ci_low", "best_fid_ci_high") if c in trials]]
             .to_numpy().ravel())
    _draw_baselines(ax, data)
    ax.set(xlabel="choice temperature (Gumbel noise scale at step 1)", ylabel="best FID (lower is better)",
           title=f"Choice temperature vs best FID, by {hue}")
    ax.legend(fontsize=8)
    _save(fig, path)
    return (f"Best FID of each trial against its choice temperature, coloured by {hue}; error bars are each "
            "trial's logged 95% interval.")


def sweet_spot_boxes(data: ReportData, curves: pd.DataFrame) -> list[tuple[int, int, bool | None]]:
    """(T, sweet spot, whether it detectably beats step T) per T of one schedule's curves; the verdict
    is the paired one of the trial when a single trial ran that T (None: several trials, or no
    uncertainty data, so no claim)."""
    boxes = []
    for steps, rows in curves.groupby("steps"):
        mean = rows.groupby("step")["fid"].mean()
        best = int(mean.idxmin())
        runs = rows["run_id"].unique()
        boxes.append((int(steps), best, beats_last_step(data, runs[0], best) if len(runs) == 1 else None))
    return boxes


def fig_sweet_spot_heatmap(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt
    import seaborn as sns

    curves = data.curves.merge(data.trials[["run_id", "schedule", "steps"]], on="run_id")
    names = [s for s in style.palette if s in set(curves["schedule"])][:4]
    shown = curves[curves["schedule"].isin(names)]["fid"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 1.2, 3.6), squeeze=False)
    for index, (ax, name) in enumerate(zip(axes[0], names)):
        rows = curves[curves["schedule"] == name]
        grid = rows.pivot_table(index="steps", columns="step", values="fid", aggfunc="mean")
        last = index == len(names) - 1  # one colour scale for every panel, so colours compare across schedules
        sns.heatmap(grid, ax=ax, cmap="viridis_r", vmin=shown.min(), vmax=shown.max(), cbar=last,
                    cbar_kws={"label": "FID (bright: lower)"} if last else None,
                    annot=grid.shape[1] <= 13, fmt=".1f", annot_kws={"fontsize": 7})
        ax.grid(False)
        for steps, best, beats in sweet_spot_boxes(data, rows):
            ax.add_patch(plt.Rectangle((list(grid.columns).index(best), list(grid.index).index(steps)), 1, 1,
                                       fill=False, edgecolor="red", lw=2, linestyle="-" if beats else ":"))
        ax.set(xlabel="decoding step s", ylabel="total iterations T" if index == 0 else "", title=name)
    _save(fig, path)
    half = step_noise(data, curves[curves["schedule"].isin(names)]["run_id"].unique())
    noise = (f" The colours span {shown.max() - shown.min():.2f} FID; a step's paired 95% interval against its "
             f"row's last step is ±{half:.2f} FID on average, so colour differences smaller than that are noise."
             if half is not None else "")
    return ("FID over (T, step) per schedule, one colour scale for all (each cell: the mean over the trials of that "
            "setting, each the mean over its seeds); the red box in each row is that T's sweet spot, solid where "
            "it beats step T detectably (paired 95% interval of the difference below 0), dotted where it does not "
            f"(then the curve is flat within the noise there and the sweet spot is no claim).{noise}")


def step_noise(data: ReportData, run_ids) -> float | None:
    """The mean half-width of the paired intervals of each step against its trial's last step (the last
    step itself left out): the size below which the heatmap's colours are noise. None without any."""
    frames = [steps_versus_last(data, run_id) for run_id in run_ids]
    widths = [(frame["hi"] - frame["lo"])[frame["step"] < frame["step"].max()] / 2 for frame in frames
              if frame is not None]
    widths = [width for width in widths if len(width)]
    return float(pd.concat(widths).mean()) if widths else None


def fig_optuna_history(data: ReportData, style: ReportStyle, path: Path) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    studies = [s for s in data.optuna_studies if len(s.directions) == 1]
    if not studies:
        raise MissingData("no single-objective study found in the Optuna storage (--storage)")
    from optuna.trial import TrialState

    fig, ax = plt.subplots(figsize=(7, 4))
    for index, study in enumerate(studies):
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        frame = pd.DataFrame({"trial": [t.number for t in done], "objective": [t.values[0] for t in done]})
        logged = data.trials.loc[data.trials["study"] == study.study_name, ["trial", "best_fid_ci_low",
                                                                            "best_fid_ci_high"]]
        frame = frame.merge(logged, on="trial", how="left")  # the objective is the best FID: its logged interval
        _errorbars(ax, frame, "trial", "objective", "best_fid_ci_low", "best_fid_ci_high", fmt="o", markersize=4,
                   color=f"C{index}", alpha=0.7, label=f"{study.study_name}: trials (95% interval)")
        ax.step(frame["trial"], np.minimum.accumulate(frame["objective"]), where="post", color=f"C{index}",
                label=f"{study.study_name}: best so far")
    ax.set(xlabel="trial number", ylabel="objective (FID)",
           title="Optimisation history: each trial (95% interval) and the best so far (line)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(studies) > 1:  # one study: the title says it all, and no legend covers a bar
        ax.legend(fontsize=8)
    _save(fig, path)
    return ("Objective (best FID) of each complete trial in the order Optuna ran them, with its logged 95% interval "
            "(images and seeds), and the best value so far; whether a later best really is better, the paired "
            "differences say (figure 2 and the tables), not this figure.")


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
            f"({len(done)} trials; Optuna's default importance evaluator). Fitted to the trials' FIDs as if they "
            "were exact, it has no interval: it shares out whatever differences there are, noise included, so "
            "read it beside the paired differences (figure 2 and the tables), not as evidence on its own.")


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
    ("versus_best", "The best settings against the best: paired differences", fig_versus_best),
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
    text = (f"Trial {best['trial']} of {best['study']} ({describe_trial(best)}). Each row is a test image: the masked "
            "input, the output after each step, then the ground truth. Below: the token mask before decoding "
            "and after each step (dark: known, grey: filled, white: still masked).")
    images = "\n\n".join(f"![{name}]({name})" for name in copied)
    return Section("best_trial", title, copied[0], f"{text}\n\n{images}")
