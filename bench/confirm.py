"""`bench sweep --confirm K`: the K best configurations of a finished study, evaluated again with fresh
seeds (docs/architecture.md#confirmation-runs).

The best of many noisy trials is, on average, luckier than it is good (the winner's curse): its FID
was chosen for being low. A confirmation run decodes the same settings with seeds no trial of that
configuration has used, at the sweet spot the original trial chose (so the step is not chosen
again on the new noise), and records a trial run like the sweep's, tagged `confirmation=true` and
`confirms=<trial number>`. It is not an Optuna trial: the samplers never see it, and `bench report`
takes its headline from these runs when they exist. Nothing is created before every check passed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from bench._sweep_config import SweepConfig
from bench._sweep_processes import sweep_evaluator
from bench._sweep_runs import RunLogger, TrackingError, run_params, run_tags
from bench.defaults import CONFIRMATION_TAG, CONFIRMS_TAG
from bench.errors import BenchError
from bench.stats import Difference, paired_difference
from bench.storage import open_storage, provenance_mismatch, redacted, same_params_seeds, study_provenance
from bench.tracking import ensure_experiment, tracking_client
from bench.trial import TrialResult, TrialSettings, fresh_seeds


@dataclass(frozen=True)
class Confirmed:
    """One configuration: the study's trial and its confirmation run at the same step."""

    trial: FrozenTrial
    run_id: str
    seeds: tuple[int, ...]
    result: TrialResult

    @property
    def step(self) -> int:
        return self.result.best_step


@dataclass(frozen=True)
class Confirmation:
    study_name: str
    tracking_uri: str
    parent_run_id: str
    confirmed: list[Confirmed]  # by confirmed FID, lowest first
    runner_up: Difference | None  # the confirmed winner minus the second, paired


def study_trials(storage, study_name: str, top: int) -> list[FrozenTrial]:
    """Every trial of the study to confirm; one-line errors for a bad --confirm or an unknown study."""
    if top < 1:
        raise BenchError(f"--confirm must be at least 1 (got {top})")
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise BenchError(f"--confirm {top}: no study {study_name!r} in this --storage "
                         "(run bench sweep first)") from None
    return study.get_trials(deepcopy=False)


def best_trials(trials: list[FrozenTrial], study_name: str, top: int) -> list[FrozenTrial]:
    """The best complete trial (lowest FID, the first objective) of each of the `top` best configurations:
    a configuration the sampler proposed twice is confirmed once. A one-line error when none is complete."""
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    if not complete:
        raise BenchError(f"--confirm {top}: study {study_name} has no complete trial to confirm")
    best = {}
    for trial in sorted(complete, key=lambda trial: trial.values[0]):
        best.setdefault(tuple(sorted(trial.params.items())), trial)
    return list(best.values())[:top]


def check_same_provenance(storage, study_name: str, provenance: dict[str, str]) -> None:
    """The evaluator must be the study's model, images and protocol, or the runs would not pair."""
    mismatch = provenance_mismatch(storage, storage.get_study_id_from_name(study_name), provenance)
    if mismatch:
        key, recorded, value = mismatch
        raise BenchError(f"--confirm: study {study_name} was run with {key} {recorded}, this command has "
                         f"{value}; give the study's --checkpoint, --data, --limit and --protocol")


def used_seeds(runs: RunLogger, trial: FrozenTrial, trials: list[FrozenTrial]) -> set[int]:
    """Every seed a run of this configuration has decoded: every trial's with the same params, and every
    earlier confirmation's of any of those trials."""
    seeds = same_params_seeds(trials, trial.params)
    for number in {t.number for t in trials if t.params == trial.params}:
        earlier = runs.search_runs(f"tags.{CONFIRMS_TAG} = '{number}'")
        for run in earlier:
            seeds |= {int(seed) for seed in run.data.params.get("seed_list", "").split(",") if seed}
    return seeds


def confirmation_settings(trial: FrozenTrial) -> TrialSettings:
    """The trial's settings with its sweet spot fixed at the step it chose."""
    settings = TrialSettings.from_params({k: str(v) for k, v in trial.params.items()})
    return dataclasses.replace(settings, sweet_spot=int(trial.user_attrs["best_step"]))


OUTAGE_ADVICE = ("confirmation runs finished before the failure stay recorded and the study is untouched; "
                 "the same command confirms again, with fresh seeds, once MLflow is back")


def run_confirmation(config: SweepConfig, top: int) -> Confirmation:
    """Check, then evaluate and record each of the `top` best configurations with fresh seeds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(config.storage)
    all_trials = study_trials(storage, config.study_name, top)
    chosen = best_trials(all_trials, config.study_name, top)
    evaluator = sweep_evaluator(config, config.progress)
    check_same_provenance(storage, config.study_name, dataclasses.asdict(study_provenance(evaluator)))
    client = tracking_client(config.tracking_uri)
    evaluator.prepare()
    experiment_id = ensure_experiment(client, config.study_name, config.tracking_uri)
    runs = RunLogger(client, config.tracking_uri, experiment_id, None,
                     {**run_tags(config, evaluator), CONFIRMATION_TAG: "true"}, run_params(config, evaluator.test),
                     subject="the confirmation runs", advice=OUTAGE_ADVICE)
    parent_id = runs.start_parent(f"confirm-{datetime.now():%Y%m%d-%H%M%S}")
    confirmed = []
    try:
        for trial in chosen:
            confirmed.append(_confirm(runs, evaluator, config, trial, all_trials))
    except TrackingError:
        raise  # MLflow is what failed: the parent run cannot be closed either
    except BaseException:
        runs.end_parent("FAILED")
        raise
    runs.end_parent("FINISHED")
    confirmed.sort(key=lambda c: c.result.best_fid)
    runner_up = None
    if len(confirmed) > 1:
        first, second = confirmed[0].result, confirmed[1].result
        runner_up = paired_difference(first.best_fid, first.replicates[first.best_step],
                                      second.best_fid, second.replicates[second.best_step])
    return Confirmation(config.study_name, redacted(config.tracking_uri), parent_id, confirmed, runner_up)


def _confirm(runs: RunLogger, evaluator, config: SweepConfig, trial: FrozenTrial,
             trials: list[FrozenTrial]) -> Confirmed:
    settings = confirmation_settings(trial)
    count = max(config.seeds, len(trial.user_attrs.get("seed_list", [0])))
    seeds = fresh_seeds(settings.seed, count, used_seeds(runs, trial, trials))
    run_id = runs.start_run(f"confirm-trial-{trial.number:03d}", {"optuna_study_name": config.study_name,
                                                                  CONFIRMS_TAG: str(trial.number)})
    try:
        runs.log_settings(run_id, settings, seeds, evaluator.data_hash)
        result = evaluator.evaluate(settings, on_step=lambda score: runs.log_step(run_id, score), seeds=seeds)
        runs.log_result(run_id, result, dict(zip(config.objective_spec.names, config.objective_spec.values(result))))
    except TrackingError:
        raise  # MLflow is what failed: the run cannot be closed either
    except BaseException as exc:
        runs.end(run_id, "FAILED", TrialState.FAIL, f"{type(exc).__name__}: {exc}")
        raise
    runs.end(run_id, "FINISHED", TrialState.COMPLETE)
    return Confirmed(trial, run_id, seeds, result)


def confirmation_lines(confirmation: Confirmation) -> list[str]:
    """Each configuration's FID in the study beside its confirmed FID at the same step, then the winner."""
    lines = [f"study {confirmation.study_name}: {len(confirmation.confirmed)} best configurations evaluated "
             "again with fresh seeds, at the step each trial chose"]
    for c in confirmation.confirmed:
        best = c.result.best
        original = c.trial.values[0]
        seeds = ",".join(map(str, c.seeds))
        lines.append(f"  trial {c.trial.number}: study FID {original:.2f} -> confirmed FID {best.fid:.2f} "
                     f"[{best.fid_ci_low:.2f}, {best.fid_ci_high:.2f}] at step {c.step} (seeds {seeds}; "
                     f"run {c.run_id[:12]})")
    winner = confirmation.confirmed[0]
    lines.append(f"confirmed winner: trial {winner.trial.number}")
    if confirmation.runner_up:
        second = confirmation.confirmed[1].trial.number
        lines.append(f"  against trial {second}: "
                     f"{confirmation.runner_up.verdict(f'trial {winner.trial.number}', f'trial {second}')}")
    lines.append(f"recorded in {confirmation.tracking_uri} under parent run {confirmation.parent_run_id} "
                 f"(experiment {confirmation.study_name}; tags {CONFIRMATION_TAG}=true, {CONFIRMS_TAG}=<trial>)")
    return lines
