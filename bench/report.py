"""`bench report`: comparison figures and a written summary from recorded studies.

Reads the trial runs of one or more studies from MLflow (params, summary metrics and the `fid`
curve of every run) into pandas, and the studies themselves from Optuna's storage where it helps
(optimisation history, parameter importances, Pareto fronts). Writes one PNG per figure and a
`report.md` that embeds them with short tables, then logs the folder to each study's newest
parent run. A figure whose data is missing (one schedule swept, one T, no Optuna storage) becomes
a note in `report.md`, never a crash.

The work is split by reason to change: reading the recorded data (`bench/_report_data.py`), the
figures (`bench/_report_figures.py`) and the text of report.md (`bench/_report_markdown.py`);
this module puts them together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._report_data import ReportData, load_report_data
from bench._report_figures import FIGURES, MissingData, Section, best_trial_figures, report_style
from bench._report_markdown import render_markdown

__all__ = ["FIGURES", "Report", "ReportData", "Section", "default_out", "load_report_data", "make_report",
           "report_lines", "write_report"]


@dataclass
class Report:
    out: Path
    sections: list[Section]
    logged_to: list[str]  # parent run ids that got the report as artifacts


def write_report(data: ReportData, out: Path, steps: int | None = None, log: bool = True) -> Report:
    """The figures, report.md and trials.csv in `out`; logged to each study's newest parent run."""
    import matplotlib

    matplotlib.use("Agg")
    style = report_style(data, steps)
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
    (out / "report.md").write_text(render_markdown(data, sections))
    logged = []
    if log:
        for parent in data.parent_runs.values():
            data.client.log_artifacts(parent, str(out), artifact_path="report")
            logged.append(parent)
    return Report(out, sections, logged)


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
