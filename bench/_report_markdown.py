"""`bench report`'s text: the tables (schedules at their best beside the reference fills, the top
configurations with which of them the best does not detectably beat), the summary (headed by the
confirmed winner when confirmation runs exist), and report.md around the figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench._report_data import ReportData, describe_trial
from bench._report_figures import Section
from bench._report_verdicts import (
    TOP_ROWS,
    beats_last_step,
    confirmed_winner,
    paired,
    ranked_confirmations,
    seed_sd_at_best,
    versus_best,
    versus_reference,
)
from bench.baselines import reference_label
from bench.stats import Difference


def number_text(value: float) -> str:
    """A FID in a table: 2 decimals, 4 below 1 (KID, stand-in scores)."""
    return "" if math.isnan(value) else f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        if value is pd.NA:
            return ""
        return number_text(value) if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def fixed_settings(data: ReportData) -> str:
    """The settings no trial varied (e.g. composite = hard), so the tables need not repeat them."""
    varied = data.varied()
    return ", ".join(f"{c} = {data.trials[c].iloc[0]}" for c in data.setting_columns() if c not in varied)


def interval_text(row: pd.Series, prefix: str = "best_fid") -> str:
    """'[40.12, 42.50]' from the logged interval, '' where none was logged."""
    low, high = row.get(f"{prefix}_ci_low"), row.get(f"{prefix}_ci_high")
    return "" if low is None or pd.isna(low) else f"[{number_text(low)}, {number_text(high)}]"


def numbers_text(*values: float) -> list[str]:
    """Numbers read side by side, at one precision: 2 decimals, 4 when all are below 1 (no '0.2514 [-2.47, 2.65]')."""
    decimals = 2 if max(abs(value) for value in values) >= 1 else 4
    return [f"{value:.{decimals}f}" for value in values]


def difference_text(difference: Difference | None) -> str:
    if difference is None:
        return ""
    estimate, lo, hi = numbers_text(difference.estimate, difference.lo, difference.hi)
    return f"{estimate} [{lo}, {hi}]"


def top_table(data: ReportData, rows: int = TOP_ROWS) -> pd.DataFrame:
    """The best trials with their intervals, their paired difference from the best and whether the best
    detectably beats them ('no': statistically indistinguishable from the best)."""
    columns = ["trial", *data.varied(), "best_step", "best_fid", "95% interval", "vs best", "beaten by best",
               "final_fid", "kid", "seconds_total"]
    if len(data.studies) > 1:
        columns.insert(0, "study")
    table = data.trials.head(rows).copy()
    differences = versus_best(data, table)
    table["95% interval"] = [interval_text(row) for _, row in table.iterrows()]
    table["vs best"] = [difference_text(d) if i else "" for i, d in enumerate(differences)]
    table["beaten by best"] = [("" if d is None else "yes" if d.detectable else "no") if i else "best"
                       for i, d in enumerate(differences)]
    return table[[c for c in columns if c in table]]


def confirmation_table(data: ReportData) -> pd.DataFrame | None:
    """Each confirmed configuration, winner first: its FID in the study beside its FID on fresh seeds at
    the step the study chose, and its paired difference from the confirmed winner. None without any."""
    ranked = ranked_confirmations(data)
    if ranked is None:
        return None
    study_fid = study_fids(data, ranked)
    settings = [c for c in data.varied() if c not in ("seed", "seed_list")]
    winner = ranked.iloc[0]
    rows = []
    for index, run in ranked.iterrows():
        difference = paired(data, run, winner) if index else None
        rows.append({"confirms trial": run["confirms"], **{c: run[c] for c in settings}, "step": run["best_step"],
                     "FID in the study": study_fid[index],
                     "confirmed FID": run["best_fid"], "95% interval": interval_text(run),
                     "vs winner": difference_text(difference),
                     "beaten by winner": "winner" if not index else "" if difference is None
                     else "yes" if difference.detectable else "no",
                     "fresh seeds": run.get("seed_list", "")})
    return pd.DataFrame(rows)


def study_fids(data: ReportData, confirmations: pd.DataFrame) -> pd.Series:
    """Each confirmation run's configuration's best FID in the study it confirms (NaN where that trial
    is not among the recorded ones), on the confirmations' index."""
    study_fid = data.trials.set_index(["study", "trial"])["best_fid"]
    return pd.Series([study_fid.get(key, math.nan) for key in zip(confirmations["study"], confirmations["confirms"])],
                     index=confirmations.index, dtype=float)


def schedule_table(data: ReportData) -> pd.DataFrame:
    """Each schedule at its best trial, with the reference fills below."""
    best = data.trials.groupby("schedule", sort=False).head(1).copy()
    best["95% interval"] = [interval_text(row) for _, row in best.iterrows()]
    columns = [c for c in ("schedule", "steps", "choice_temperature", "best_step", "best_fid", "95% interval",
                           "final_fid", "kid") if c in best]
    table = best[columns].copy()
    references = pd.DataFrame([{"schedule": reference_label(name), "best_fid": value,
                                "95% interval": interval_text(pd.Series(data.baseline_intervals.get(name, {})), "fid")}
                               for name, value in sorted(data.baselines.items())])
    table = pd.concat([table, references], ignore_index=True) if len(references) else table
    return table.astype({c: "Int64" for c in ("steps", "best_step") if c in table})


def headline(data: ReportData) -> list[str]:
    """The confirmed winner when confirmation runs exist, else the study's best trial (and that it is
    unconfirmed: the best of many noisy trials is luckier than it is good)."""
    winner = confirmed_winner(data)
    best = data.trials.iloc[0]
    if winner is None:
        return [f"- **Best setting** (not confirmed: `bench sweep --confirm K` evaluates the best again with fresh "
                f"seeds): {describe_trial(best)}, sweet spot at step {best['best_step']}: FID "
                f"**{number_text(best['best_fid'])}** {interval_text(best)} "
                f"(its last step: {number_text(best['final_fid'])})."]
    run = winner.run
    lines = [f"- **Confirmed winner**: {describe_trial(run)} (trial {run['confirms']}), at step {run['best_step']}: "
             f"FID **{number_text(run['best_fid'])}** {interval_text(run)} on {run.get('seeds', '?')} fresh seed(s)"
             + ("." if winner.trial is None else f"; in the study it scored {number_text(winner.trial['best_fid'])}.")]
    if winner.runner_up is not None and winner.margin is not None:
        second = f"trial {winner.runner_up['confirms']}"
        nominal = "" if winner.margin.detectable else "; so the winner is only nominal, its FID the lowest but not " \
                                                      "detectably lower"
        lines.append(f"- Against the next confirmed configuration ({second}, {describe_trial(winner.runner_up)}): "
                     f"{winner.margin.verdict('the winner', second)}{nominal}.")
    ranked = ranked_confirmations(data)  # not None: there is a winner
    shifts = (ranked["best_fid"] - study_fids(data, ranked)).dropna()
    if len(shifts):
        low, high, mean = numbers_text(shifts.min(), shifts.max(), shifts.mean())
        lines.append(f"- On fresh seeds the {len(shifts)} confirmed configurations' FIDs moved by {low} to {high} "
                     f"from their study values (mean {mean}; positive: worse): what the study's best owed to the noise "
                     "they were chosen on (the winner's curse), plus the fresh seeds' own luck.")
    return lines


def summary_lines(data: ReportData) -> list[str]:
    best = data.trials.iloc[0]
    lines = headline(data)
    top = data.trials.head(TOP_ROWS)
    differences = versus_best(data, top)[1:]
    if any(d is not None for d in differences):
        tied = [f"{row['trial']} ({row['schedule']}, T = {row['steps']})"
                for (_, row), d in zip(top.iloc[1:].iterrows(), differences) if d is not None and not d.detectable]
        named = ("trials " if len(tied) > 1 else "trial ") + ", ".join(tied) if tied else "none"
        lines.append(f"- Statistically indistinguishable from the best trial ({best['trial']}; paired 95% interval "
                     f"of the difference includes 0): {named} of the "
                     f"next {len(differences)}.")
    if "harmonic" in data.baselines:
        harmonic = data.baselines["harmonic"]
        paired = versus_reference(data, best, "harmonic")
        if paired is None:
            verdict = "beats" if best["best_fid"] < harmonic else "does **not** beat"
            lines.append(f"- The best trial {verdict} the harmonic fill, which learns nothing (FID {harmonic:.2f}).")
        else:
            trial = f"the best trial ({best['trial']})"
            lines.append(f"- Against the harmonic fill, which learns nothing (FID {number_text(harmonic)}): "
                         f"{paired.verdict(trial, 'the harmonic fill')}.")
    by_schedule = data.trials.groupby("schedule", sort=False).head(1)  # trials are sorted by best FID
    if len(by_schedule) > 1:
        lines.append("- Schedules at their best: " + ", ".join(
            f"{row['schedule']} {number_text(row['best_fid'])} {interval_text(row)}".rstrip()
            for _, row in by_schedule.iterrows()) + ".")
    spread = seed_spread_summary(data)
    if spread:
        lines.append(spread)
    one_step = data.trials[data.trials["steps"] == 1]
    if len(one_step):
        row = one_step.iloc[0]
        lines.append(f"- One-step decoding (T = 1) at its best: FID {number_text(row['best_fid'])} {interval_text(row)}"
                     .rstrip() + ".")
    lines.append(sweet_spot_summary(data))
    return lines


def seed_spread_summary(data: ReportData) -> str:
    """The seed-to-seed standard deviation of a trial's FID beside the spread of the settings' best FIDs:
    differences between settings no larger than the first are noise until a verdict says otherwise."""
    per_trial = seed_sd_at_best(data, data.trials)
    if not per_trial:
        return ""
    spreads = [sd for sd, _ in per_trial]
    of_mean = float(np.mean([sd / math.sqrt(seeds) for sd, seeds in per_trial]))
    fids = data.trials["best_fid"]
    low, high, grid_sd = numbers_text(fids.min(), fids.max(), fids.std(ddof=1) if len(fids) > 1 else 0.0)
    grid = f"; the {len(fids)} trials' best FIDs span {low} to {high} (sd {grid_sd})" if len(fids) > 1 else ""
    mean, smallest, largest, of_mean = numbers_text(float(np.mean(spreads)), min(spreads), max(spreads), of_mean)
    over = f"mean over {len(spreads)} trials, from {smallest} to {largest}" if len(spreads) > 1 else "1 trial"
    return (f"- Seed to seed, a trial's FID at its best step moves by sd {mean} ({over}), so the mean over a "
            f"trial's seeds that the tables show, by about {of_mean}{grid}.")


def sweet_spot_summary(data: ReportData) -> str:
    """How many trials' sweet spot detectably beats their last step (the interval of the paired
    difference excludes 0); a sweet spot that does not is not counted."""
    earlier = data.trials[data.trials["best_step"] < data.trials["steps"]]
    verdicts = [beats_last_step(data, row["run_id"], int(row["best_step"])) for _, row in earlier.iterrows()]
    beats = [verdict for verdict in verdicts if verdict is not None]
    text = f"- The sweet spot came before the last step in {len(earlier)} of {len(data.trials)} trials"
    if not beats:
        return text + "."
    return text + f"; it beats the last step detectably (paired 95% interval below 0) in {sum(beats)} of those " \
                  f"{len(beats)} with uncertainty data."


def confirmation_lines(data: ReportData) -> list[str]:
    """The confirmation runs' section of report.md; none without confirmation runs."""
    table = confirmation_table(data)
    if table is None:
        return []
    return ["## Confirmation runs (`bench sweep --confirm`)", "", _markdown_table(table), "",
            "(The best configurations of the study decoded again with seeds none of their runs had used, at the "
            "step the study chose: the best of many noisy trials is luckier than it is good, so the headline "
            "comes from these runs. `vs winner`: this run's FID minus the confirmed winner's, with the 95% interval "
            "of that paired difference; `beaten by winner`: yes where it excludes 0.)", ""]


def render_markdown(data: ReportData, sections: list[Section]) -> str:
    """report.md: what was measured and on what, the summary, the tables (and the confirmation runs), then every figure."""
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
        "(`95% interval`: covers the FID expected at this number of test images, over the images and the "
        "trial's seeds. `vs best`: this trial's FID minus the best one's, with the 95% interval of that paired "
        "difference; `beaten by best`: yes where it excludes 0, no where the two are statistically "
        "indistinguishable. `seconds_total`: wall time of the trial: decoding, pixels and FID at every step.)",
        "",
        *confirmation_lines(data),
    ]
    for number, section in enumerate(sections, start=1):
        lines += [f"## {number}. {section.title}", ""]
        if section.file and section.key != "best_trial":
            lines += [f"![{section.title}]({section.file})", ""]
        lines += [section.text, ""]
    lines += ["All trials, one row each: [trials.csv](trials.csv)."]
    return "\n".join(lines) + "\n"
