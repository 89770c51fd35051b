"""What a sweep leaves, as the terminal shows it: the best trials (or the Pareto front) and where to
look next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState
from rich.table import Table

from bench._sweep_config import Objective, SweepConfig
from bench.storage import StudyHandle, redacted


@dataclass
class SweepOutcome:
    """What a sweep leaves: where it is recorded, counts, and the best trials."""

    study_name: str
    storage: str  # URLs as printed: passwords redacted
    tracking_uri: str
    parent_run_id: str
    objective: Objective
    ran: int  # trials finished by this invocation
    counts: dict[str, int]  # trials of the study by state
    best: list[FrozenTrial]  # best complete trials (several objectives: the Pareto front)
    orphans: list[int]  # trials of dead workers failed at start


BEST_SHOWN = 5


def sweep_outcome(handle: StudyHandle, config: SweepConfig, parent_id: str, ran: int, orphans: list[int]) -> SweepOutcome:
    study = handle.study
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(study.directions) > 1:
        best = sorted(study.best_trials, key=lambda t: t.values)
    else:
        best = sorted(complete, key=lambda t: t.values[0])[:BEST_SHOWN]
    return SweepOutcome(config.study_name, redacted(config.storage), redacted(config.tracking_uri), parent_id,
                        config.objective_spec, ran, counts, best, orphans)


def outcome_table(outcome: SweepOutcome) -> Table:
    """The best trials (or the Pareto front) with the settings that differ between them."""
    several = len(outcome.objective.names) > 1
    title = "Pareto front" if several else f"best trials of {len(outcome.best)} shown"
    table = Table(title=f"study {outcome.study_name}: {title}")
    varied = _varied_settings(outcome.best)
    for header in ("trial", *outcome.objective.names, "best step", "final FID", "KID", *varied, "MLflow run"):
        table.add_column(header, justify="left" if header in varied or header == "MLflow run" else "right")
    for trial in outcome.best:
        attrs = trial.user_attrs
        kid = attrs.get("kid")
        table.add_row(str(trial.number), *(_number(v) for v in trial.values), str(attrs.get("best_step", "")),
                      _number(attrs.get("final_fid")), "" if kid is None else f"{kid:.4f}",
                      *(str(trial.params.get(name, "")) for name in varied), attrs.get("mlflow_run_id", "")[:12])
    return table


def outcome_lines(outcome: SweepOutcome) -> list[str]:
    """Below the table: what the study holds, and where to look next."""
    counts = ", ".join(f"{count} {state.lower()}" for state, count in outcome.counts.items() if count)
    orphans = [f"trials {', '.join(map(str, outcome.orphans))}: left running by a dead worker, now FAIL"]
    return [*(orphans if outcome.orphans else []),
            f"study {outcome.study_name}: {counts or 'no trials'} ({outcome.ran} run now) in {outcome.storage}",
            f"open the UI:  bench ui --tracking-uri {outcome.tracking_uri}   (experiment {outcome.study_name})",
            f"report:       bench report --study {outcome.study_name} --storage {outcome.storage} "
            f"--tracking-uri {outcome.tracking_uri}",
            f"resume:       run the same command again (study {outcome.study_name}, storage {outcome.storage})"]


def _varied_settings(trials: Sequence[FrozenTrial]) -> list[str]:
    """schedule and steps, plus every setting that is not the same in all these trials."""
    names = list(dict.fromkeys(name for trial in trials for name in trial.params))
    return [name for name in names
            if name in ("schedule", "steps") or len({str(t.params.get(name)) for t in trials}) > 1]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}" if abs(value) >= 0.01 else f"{value:.2e}"
