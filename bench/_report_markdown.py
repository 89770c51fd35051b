"""`bench report`'s text: the tables (schedules at their best beside the reference fills, the top
configurations), the summary, and report.md around the figures."""

from __future__ import annotations

import math

import pandas as pd

from bench._report_data import SETTING_COLUMNS, ReportData, describe_trial
from bench._report_figures import Section
from bench.baselines import reference_label

TOP_ROWS = 10



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
    references = pd.DataFrame([{"schedule": reference_label(name), "best_fid": value}
                               for name, value in sorted(data.baselines.items())])
    table = pd.concat([table, references], ignore_index=True) if len(references) else table
    return table.astype({c: "Int64" for c in ("steps", "best_step") if c in table})


def summary_lines(data: ReportData) -> list[str]:
    best = data.trials.iloc[0]
    lines = [f"- **Best setting**: {describe_trial(best)}, sweet spot at step {best['best_step']}: FID "
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


def render_markdown(data: ReportData, sections: list[Section]) -> str:
    """report.md: what was measured and on what, the summary, the two tables, then every figure."""
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
