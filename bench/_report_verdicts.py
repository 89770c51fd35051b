"""`bench report`'s verdicts: which of the best trials are statistically indistinguishable from the best
one (paired differences of their uncertainty.npz replicates, bench.stats), and the confirmed winner
from the confirmation runs of `bench sweep --confirm` (docs/architecture.md#paired-verdicts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench._report_data import ReportData
from bench.compare import step_vs_last
from bench.stats import Difference, paired_difference

TOP_ROWS = 10  # the best trials that the top table, the summary and the differences figure set against the best


def _at_best(data: ReportData, row: pd.Series):
    """(FID, replicates) of the run at its best step, or None without uncertainty data there."""
    uncertainty = data.uncertainty(row["run_id"])
    step = int(row["best_step"])
    if uncertainty is None or not uncertainty.has(step):
        return None
    return uncertainty.at(step)


def paired(data: ReportData, a: pd.Series, b: pd.Series) -> Difference | None:
    """FID(a) - FID(b), each run at its best step, paired; None where either has no uncertainty data
    there or their bootstrap keys differ (then nothing pairs)."""
    mine, theirs = _at_best(data, a), _at_best(data, b)
    if mine is None or theirs is None or data.uncertainty(a["run_id"]).key != data.uncertainty(b["run_id"]).key:
        return None
    return paired_difference(*mine, *theirs)


def versus_reference(data: ReportData, row: pd.Series, name: str) -> Difference | None:
    """FID(run at its best step) - FID(reference fill `name`), paired; None without the data to pair."""
    mine, reference = _at_best(data, row), data.reference_draws().get(name)
    if mine is None or reference is None or reference[2] != data.uncertainty(row["run_id"]).key:
        return None
    return paired_difference(*mine, *reference[:2])


def versus_best(data: ReportData, trials: pd.DataFrame) -> list[Difference | None]:
    """For each row of `trials`: its best FID minus that of the first row (the best trial)."""
    return [paired(data, row, trials.iloc[0]) for _, row in trials.iterrows()]


def beats_last_step(data: ReportData, run_id: str, step: int) -> bool | None:
    """Whether FID at `step` is detectably below the run's last step (the paired interval lies below 0);
    None without uncertainty data at that step. The last step itself never beats itself."""
    uncertainty = data.uncertainty(run_id)
    if uncertainty is None or not uncertainty.has(step):
        return None
    return step != uncertainty.last_step and step_vs_last(uncertainty, step).hi < 0


def steps_versus_last(data: ReportData, run_id: str) -> pd.DataFrame | None:
    """FID at each scored step minus FID at the run's last step, with the paired 95% interval (columns
    step, estimate, lo, hi): where the curve dips below its end beyond the noise. None without
    uncertainty data."""
    uncertainty = data.uncertainty(run_id)
    if uncertainty is None:
        return None
    differences = [(int(step), step_vs_last(uncertainty, int(step))) for step in uncertainty.steps]
    return pd.DataFrame([(step, d.estimate, d.lo, d.hi) for step, d in differences],
                        columns=["step", "estimate", "lo", "hi"])


def seed_sd_at_best(data: ReportData, trials: pd.DataFrame) -> list[tuple[float, int]]:
    """Per trial with several seeds: (the standard deviation over its seeds of the FID at its best step,
    the number of seeds): how much one setting moves from seed to seed, beside how much settings differ."""
    spreads = []
    for _, row in trials.iterrows():
        uncertainty = data.uncertainty(row["run_id"])
        step = int(row["best_step"])
        if uncertainty is not None and uncertainty.has(step) and len(uncertainty.seed_fid) > 1:
            at_step = uncertainty.seed_fid[:, uncertainty.steps == step]
            spreads.append((float(np.std(at_step, ddof=1)), len(at_step)))
    return spreads


@dataclass(frozen=True)
class Winner:
    """The confirmed FID of the best configuration and what it was measured against."""

    run: pd.Series  # the confirmation run (bench report's trials columns + confirms)
    trial: pd.Series | None  # the study's trial it confirms (None when not among the reported trials)
    runner_up: pd.Series | None  # the next confirmation run, if any
    margin: Difference | None  # winner minus runner-up, paired


def ranked_confirmations(data: ReportData) -> pd.DataFrame | None:
    """The confirmation runs, lowest FID first; None when no trial was confirmed."""
    if data.confirmations is None:
        return None
    return data.confirmations.sort_values("best_fid", kind="stable").reset_index(drop=True)


def confirmed_winner(data: ReportData) -> Winner | None:
    """The confirmation run of lowest FID; None when no trial was confirmed."""
    ranked = ranked_confirmations(data)
    if ranked is None:
        return None
    winner = ranked.iloc[0]
    trials = data.trials[(data.trials["study"] == winner["study"]) & (data.trials["trial"] == winner["confirms"])]
    runner_up = ranked.iloc[1] if len(ranked) > 1 else None
    margin = None if runner_up is None else paired(data, winner, runner_up)
    return Winner(winner, trials.iloc[0] if len(trials) else None, runner_up, margin)
