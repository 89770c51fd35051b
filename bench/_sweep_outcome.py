"""What a sweep leaves, as the terminal shows it: the best trials (or the Pareto front), the reference
fills scored on the same test images beside them, and where to look next."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from rich import box
from rich.cells import cell_len
from rich.table import Table

from bench._sweep_config import GRID, Objective, SweepConfig
from bench.baselines import baseline_label
from bench.stats import DEFAULT_LEVEL, Difference, paired_difference
from bench.storage import StudyHandle, redacted

if TYPE_CHECKING:
    from bench.compare import Uncertainty


@dataclass
class SweepOutcome:
    """What a sweep leaves: where it is recorded, counts, the best trials and the references beside them."""

    study_name: str
    storage: str  # URLs as printed: passwords redacted
    tracking_uri: str
    parent_run_id: str
    objective: Objective
    ran: int  # trials finished by this invocation
    counts: dict[str, int]  # trials of the study by state
    best: list[FrozenTrial]  # best complete trials (several objectives: the Pareto front)
    orphans: list[int]  # trials of dead workers failed at start
    references: dict[str, dict[str, float]]  # {name: {fid, kid}} of the fills that learn nothing (bench.baselines)
    n_images: int  # test images every FID here is computed on
    pastes: tuple[str, ...]  # the composites the study searches (usually one)
    schedules: tuple[str, ...] = ()  # the schedules the study searches
    versus_best: dict[int, Difference] = field(default_factory=dict)  # trial number -> FID minus the best's, paired
    versus_references: dict[str, Difference] = field(default_factory=dict)  # name -> best's FID minus its, paired
    grid_done: int = 0  # a grid study's point count when every point was already done (nothing left to run), else 0


BEST_SHOWN = 5
OBJECTIVE_HEADERS = {"fid": "FID"}
TABLE_WIDTH = 80  # rich's width off a terminal; the README promises the table fits it


ReferenceDraws = Mapping[str, tuple[float, np.ndarray, str]]
"""{name: (FID, bootstrap replicates [B], bootstrap key)} of the reference fills (bench.baselines)."""


def sweep_outcome(handle: StudyHandle, config: SweepConfig, parent_id: str, ran: int, orphans: list[int],
                  references: Mapping[str, Mapping[str, float]], n_images: int,
                  uncertainty: Callable[[str], Uncertainty | None], reference_draws: ReferenceDraws
                  ) -> SweepOutcome:
    """`uncertainty` reads a trial run's uncertainty.npz (bench.compare.read_uncertainty) for the paired
    differences from the best trial and of the best trial from the references (`reference_draws`)."""
    uncertainty = cache(uncertainty)  # the best trial's is read for both
    study = handle.study
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(study.directions) > 1:
        best = sorted(study.best_trials, key=lambda t: t.values)
    else:
        best = sorted(complete, key=lambda t: t.values[0])[:BEST_SHOWN]
    single = len(study.directions) == 1 and bool(best)
    left = ran or counts[TrialState.WAITING.name] or counts[TrialState.RUNNING.name]
    grid_done = len(config.space.grid()) if config.sampler_name == GRID and not left else 0
    return SweepOutcome(config.study_name, redacted(config.storage), redacted(config.tracking_uri), parent_id,
                        config.objective_spec, ran, counts, best, orphans,
                        {name: dict(row) for name, row in references.items()}, n_images,
                        tuple(map(str, config.space.dims["composite"].values)),
                        tuple(map(str, config.space.dims["schedule"].values)),
                        differences_from_best(best, uncertainty) if single else {},
                        differences_from_references(best[0], reference_draws, uncertainty) if single else {},
                        grid_done)


def differences_from_best(best: list[FrozenTrial], uncertainty: Callable[[str], Uncertainty | None]
                          ) -> dict[int, Difference]:
    """For each trial after the first (the best): its FID minus the best's, each at its best step, paired
    on their bootstrap replicates (docs/architecture.md#paired-verdicts). Trials without replicates
    there, or whose replicates do not pair with the best's (another key or count), are left out."""
    leader = _at_best_step(best[0], uncertainty) if best else None
    if leader is None:
        return {}
    differences = {}
    for trial in best[1:]:
        other = _at_best_step(trial, uncertainty)
        if other is not None and _pairable(other, leader):
            differences[trial.number] = paired_difference(*other[1:], *leader[1:])
    return differences


def differences_from_references(best: FrozenTrial, draws: ReferenceDraws,
                                uncertainty: Callable[[str], Uncertainty | None]) -> dict[str, Difference]:
    """For each reference fill: the best trial's FID at its best step minus the fill's, paired on their
    bootstrap replicates (the fills are scored on the same test images, docs/architecture.md#paired-verdicts).
    Fills whose replicates do not pair with the trial's (another key or count), or all of them when the
    trial recorded none, are left out: the outcome says those by point estimates alone."""
    leader = _at_best_step(best, uncertainty)
    if leader is None:
        return {}
    return {name: paired_difference(*leader[1:], fid, replicates)
            for name, (fid, replicates, key) in draws.items() if _pairable(leader, (key, fid, replicates))}


def _pairable(a, b) -> bool:
    """Whether two (bootstrap key, FID, replicates) were resampled on the same indices: same key and count."""
    return a[0] == b[0] and np.shape(a[2]) == np.shape(b[2])


def _at_best_step(trial: FrozenTrial, uncertainty: Callable[[str], Uncertainty | None]):
    """(bootstrap key, FID, replicates) of the trial at its best step; None where none were recorded."""
    found, step = uncertainty(trial.user_attrs.get("mlflow_run_id", "")), trial.user_attrs.get("best_step")
    if found is None or step is None or not found.has(int(step)):
        return None
    return (found.key, *found.at(int(step)))


# --- the table --------------------------------------------------------------------------------


def _no_cell(name: str, row: Mapping[str, float]) -> str:
    return ""


@dataclass(frozen=True)
class Column:
    """A column of the sweep's table: its header, its cell in a trial's row and in a reference's row
    (the fills that learn nothing have a FID and a KID, nothing else)."""

    header: str
    trial: Callable[[FrozenTrial], str]
    reference: Callable[[str, Mapping[str, float]], str] = _no_cell
    text: bool = False  # left-justified names, else right-justified numbers
    wraps: bool = False  # may wrap at its spaces (the trial or reference's name), else whole on one line


def outcome_columns(outcome: SweepOutcome) -> list[Column]:
    """The table's columns in order: the trial (or reference), its objective values, best step, its paired
    difference from the best trial (where recorded; else the final step's FID), KID and the settings that
    differ between the trials shown, each header broken after its underscores. The MLflow runs go to a
    line below (`outcome_lines`): with them, two searched schedules or pastes took the table past 80
    columns, and rich cuts cells there. KID's column gives way where the table would otherwise break
    words at 80 columns (e.g. two long-named settings searched): FID is the objective, MLflow keeps KID."""
    fid = Column(f"FID\n{DEFAULT_LEVEL:.0%} interval",
                 lambda t: _interval(t.values[0], *(t.user_attrs.get(f"best_fid_ci_{end}") for end in ("low", "high"))),
                 lambda name, row: _interval(row["fid"], row.get("fid_ci_low"), row.get("fid_ci_high")))
    objectives = [fid, *(Column(OBJECTIVE_HEADERS.get(name, name), lambda t, i=i: _number(t.values[i]))
                         for i, name in enumerate(outcome.objective.names) if i > 0)]
    settings = [Column(name.replace("_", "_\n"), lambda t, name=name: str(t.params.get(name, "")), text=True)
                for name in _shown_settings(outcome)]
    # where trials pair with the best, that verdict replaces the final step's FID (MLflow keeps it): 80 columns
    last = (Column("vs best", lambda t: _versus_best(outcome, t)) if outcome.versus_best
            else Column("final\nFID", lambda t: _number(t.user_attrs.get("final_fid"))))
    kid = Column("KID", lambda t: _kid(t.user_attrs.get("kid")), lambda name, row: _kid(row.get("kid")))
    columns = [Column("trial", lambda t: _trial_label(outcome, t), lambda name, row: baseline_label(name),
                      text=True, wraps=True),
               *objectives,
               Column("best\nstep", lambda t: str(t.user_attrs.get("best_step", ""))),
               last,
               kid,
               *settings]
    return columns if _whole_width(columns, outcome) <= TABLE_WIDTH else [c for c in columns if c is not kid]


def _whole_width(columns: list[Column], outcome: SweepOutcome) -> int:
    """The table's width with no word broken: each column as wide as its header's longest line and its
    widest cell (its longest word where it wraps), two spaces between columns (padding and divider),
    none at the right edge (`outcome_table` pads none there)."""
    def width(column: Column) -> int:
        cells = [*map(column.trial, outcome.best), *(column.reference(*item) for item in outcome.references.items())]
        pieces = [word for cell in cells for word in cell.split()] if column.wraps else cells
        return max(map(cell_len, [*column.header.split("\n"), *pieces]))

    return sum(map(width, columns)) + 2 * (len(columns) - 1)


def outcome_table(outcome: SweepOutcome) -> Table:
    """The best trials (or the Pareto front), then the reference fills scored on the same images."""
    several = len(outcome.objective.names) > 1
    title = "Pareto front" if several else f"best trials of {len(outcome.best)} shown"
    table = Table(title=f"study {outcome.study_name}: {title}", box=box.HORIZONTALS, show_edge=False,
                  padding=(0, 1, 0, 0), pad_edge=False)
    columns = outcome_columns(outcome)
    for column in columns:  # short of 80 columns, names wrap at their spaces; numbers and settings stay whole
        table.add_column(column.header, justify="left" if column.text else "right", no_wrap=not column.wraps,
                         overflow="fold")
    for trial in outcome.best:
        table.add_row(*(column.trial(trial) for column in columns))
    table.add_section()
    for name, row in sorted(outcome.references.items(), key=lambda item: item[1]["fid"]):
        table.add_row(*(column.reference(name, row) for column in columns), style="dim")
    return table


def outcome_lines(outcome: SweepOutcome) -> list[str]:
    """Below the table: what the numbers are, what the study holds, and where to look next."""
    counts = ", ".join(f"{count} {state.lower()}" for state, count in outcome.counts.items() if count)
    orphans = [f"trials {', '.join(map(str, outcome.orphans))}: left running by a dead worker, now FAIL"]
    references = " and ".join(baseline_label(name) for name in sorted(outcome.references))
    schedule = f", schedule: {outcome.schedules[0]}" if len(outcome.schedules) == 1 else ""
    return [f"FID and KID on {outcome.n_images} test images (lower is better); paste (--composite): "
            f"{', '.join(outcome.pastes)}{schedule}",
            f"below the line: {references}, the same images filled without a model (bench/baselines.py)",
            *_comparison(outcome),
            *([INDISTINGUISHABLE_NOTE] if outcome.versus_best else []),
            f"FID's {DEFAULT_LEVEL:.0%} interval: bootstrap over the test images (and seeds) of the FID that "
            f"{outcome.n_images} images give on average; more images narrow it, more trials do not",
            *(orphans if outcome.orphans else []),
            f"study {outcome.study_name}: {counts or 'no trials'} ({outcome.ran} run now) in {outcome.storage}",
            *([grid_done_line(outcome.grid_done)] if outcome.grid_done else []),
            *_run_ids(outcome),
            f"open the UI:  bench ui --tracking-uri {outcome.tracking_uri}   (experiment {outcome.study_name})",
            f"report:       bench report --study {outcome.study_name} --storage {outcome.storage} "
            f"--tracking-uri {outcome.tracking_uri}",
            f"resume:       run the same command again (study {outcome.study_name}, storage {outcome.storage})"]


def grid_done_line(points: int) -> str:
    """Why a sweep of a finished grid ran nothing, and how to get more trials: --n-trials adds none to a grid."""
    return (f"the grid's {points} point{'s are' if points != 1 else ' is'} all done, so nothing ran (--n-trials adds "
            "no trials to a grid); for more trials search ranges under a new --study-name (e.g. --study-name "
            "wide --steps 4..16 --choice-temperature 0.5..8:log, sampled by TPE), or rerun the best with fresh "
            "seeds (--confirm K)")


INDISTINGUISHABLE_NOTE = (f"trials marked ≈ are not distinguishable from the best (paired {DEFAULT_LEVEL:.0%} "
                          "interval of the difference contains 0)")


def _trial_label(outcome: SweepOutcome, trial: FrozenTrial) -> str:
    """The trial's number, marked '≈' when it is not distinguishable from the best."""
    difference = outcome.versus_best.get(trial.number)
    return f"{trial.number} ≈" if difference is not None and not difference.detectable else str(trial.number)


def _versus_best(outcome: SweepOutcome, trial: FrozenTrial) -> str:
    """'+1.9 [0.8, 3.1]': FID minus the best's with its paired interval; 'best' for the best trial,
    nothing where no paired difference was recorded."""
    if trial.number == outcome.best[0].number:
        return "best"
    difference = outcome.versus_best.get(trial.number)
    if difference is None:
        return ""
    text = _interval(difference.estimate, difference.lo, difference.hi)
    return text if text.startswith("-") else f"+{text}"


def _comparison(outcome: SweepOutcome) -> list[str]:
    """The best trial against each reference (single-objective studies with a complete trial): a line
    per reference with the paired verdict in `bench compare`'s words ('A - B: ...'); the references
    without replicates to pair (studies recorded before them) by point estimates, said to be so."""
    if len(outcome.objective.names) > 1 or not outcome.best or not outcome.references:
        return []
    best = outcome.best[0]
    fid = best.values[0]
    ranked = sorted(outcome.references.items(), key=lambda item: item[1]["fid"])
    paired = [f"best trial {best.number} - {baseline_label(name)}: "
              f"{outcome.versus_references[name].verdict(f'trial {best.number}', baseline_label(name))}"
              for name, _ in ranked if name in outcome.versus_references]
    unpaired = [(f"{baseline_label(name)} ({_number(row['fid'])})", row["fid"])
                for name, row in ranked if name not in outcome.versus_references]
    better = [text for text, value in unpaired if fid < value]
    worse = [text for text, value in unpaired if fid >= value]
    parts = [f"{word} than {' and '.join(names)}" for word, names in (("better", better), ("worse", worse)) if names]
    point = (f"best trial {best.number}: FID {_number(fid)}, {', '.join(parts)} "
             "(point estimates only: no bootstrap replicates recorded to pair them)")
    return [*paired, *([point] if unpaired else [])]


def _run_ids(outcome: SweepOutcome) -> list[str]:
    """'MLflow runs: trial 0 a32fbb01, trial 1 ec20f781' (the id's first 8 characters; none without trials)."""
    runs = ", ".join(f"trial {t.number} {t.user_attrs.get('mlflow_run_id', '')[:8]}".rstrip() for t in outcome.best)
    return [f"MLflow runs: {runs}"] if runs else []


def _shown_settings(outcome: SweepOutcome) -> list[str]:
    """steps, the schedule and the paste when several are searched (else the lines below name them),
    and every setting that is not the same in all the trials shown."""
    trials = outcome.best
    names = list(dict.fromkeys(name for trial in trials for name in trial.params))
    searched = {"schedule": len(outcome.schedules) != 1, "composite": len(outcome.pastes) > 1}
    return [name for name in names
            if name == "steps" or searched.get(name) or len({str(t.params.get(name)) for t in trials}) > 1]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}" if abs(value) >= 0.01 else f"{value:.2e}"


def _interval(value: float, lo: float | None, hi: float | None) -> str:
    """'27.3 [26.1, 28.4]': a FID and its interval to two digits of the interval's width, so the column
    fits 80 columns ('160 [107, 220]'); the FID alone where no interval was recorded."""
    if lo is None or hi is None:
        return _number(value)
    decimals = max(0, 1 - math.floor(math.log10(max(hi - lo, 1e-3))))
    return f"{value:.{decimals}f} [{lo:.{decimals}f}, {hi:.{decimals}f}]"


def _kid(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
