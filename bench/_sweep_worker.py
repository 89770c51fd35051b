"""One Optuna worker of a sweep: asks (or, on a grid, claims) trials, evaluates them, records each in
Optuna and MLflow. A trial that raises is recorded FAIL and the study goes on; Ctrl-C records the
running trial FAIL and its run KILLED."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from bench._sweep_config import PRUNERS, SAMPLERS, Objective, SweepConfig
from bench._sweep_runs import RunLogger, TrackingError, run_params, run_tags
from bench.search_space import SearchSpace
from bench.storage import StudyHandle, claim_waiting_trial, heartbeat, same_params_seeds
from bench.trial import Evaluator, StepScore, fresh_seeds


def worker_label() -> str:
    """host:pid, recorded on each trial: how _sweep_recovery tells a dead local worker's trials."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Worker:
    """What one process needs to run trials of a study."""

    handle: StudyHandle
    space: SearchSpace
    evaluator: Evaluator
    runs: RunLogger
    objective: Objective
    seeds: int = 1  # K: each trial decodes the test set with K seeds

    def run_trial(self, trial: optuna.Trial) -> TrialState:
        """Evaluate one trial and record it in Optuna and MLflow; only Ctrl-C and TrackingError escape."""
        study, run_id = self.handle.study, None
        trial.set_user_attr("worker", worker_label())
        try:
            run_id = self.runs.start_trial(trial, study.study_name)
            trial.set_user_attr("mlflow_run_id", run_id)
            settings = self.space.suggest(trial)
            seeds = fresh_seeds(settings.seed, self.seeds, self._used_seeds(trial))
            trial.set_user_attr("seed_list", list(seeds))
            self.runs.log_settings(run_id, settings, seeds, self.evaluator.data_hash)
            result = self.evaluator.evaluate(settings, on_step=lambda score: self._on_step(trial, run_id, score),
                                             seeds=seeds)
            values = self.objective.values(result)
            self.runs.log_result(run_id, result, dict(zip(self.objective.names, values)))
            for key, value in (("best_step", result.best_step), ("final_fid", result.final_fid),
                               ("best_fid_ci_low", result.best.fid_ci_low),
                               ("best_fid_ci_high", result.best.fid_ci_high),
                               ("kid", result.kid), ("cached", result.cached)):
                trial.set_user_attr(key, value)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            self.runs.end(run_id, "FINISHED", TrialState.PRUNED)
            return TrialState.PRUNED
        except KeyboardInterrupt:
            self._fail(trial, run_id, "interrupted (Ctrl-C)", "KILLED")
            raise
        except TrackingError as exc:  # MLflow failed, not the trial: recorded in Optuna only, and the sweep stops
            trial.set_user_attr("error", str(exc)[:2000])
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as exc:  # a failing trial must not stop the study
            self._fail(trial, run_id, f"{type(exc).__name__}: {exc}", "FAILED")
            return TrialState.FAIL
        study.tell(trial, list(values))
        self.runs.end(run_id, "FINISHED", TrialState.COMPLETE)
        return TrialState.COMPLETE

    def _used_seeds(self, trial: optuna.Trial) -> set[int]:
        """Seeds of the study's other trials with the same settings (complete, or running elsewhere): a
        configuration proposed again is a new replicate with fresh seeds."""
        others = self.handle.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        return same_params_seeds([t for t in others if t.number != trial.number], trial.params)

    def _on_step(self, trial: optuna.Trial, run_id: str, score: StepScore) -> None:
        self.runs.log_step(run_id, score)
        if len(self.objective.names) == 1:  # Optuna keeps curves of single-objective trials only
            trial.report(score.fid, score.step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {score.step} (FID {score.fid:.3f})")

    def _fail(self, trial: optuna.Trial, run_id: str | None, error: str, status: str) -> None:
        trial.set_user_attr("error", error[:2000])
        self.handle.study.tell(trial, state=TrialState.FAIL)
        self.runs.end(run_id, status, TrialState.FAIL, error)

    def run(self, budget: TrialBudget, grid: bool,
            after_trial: Callable[[TrialState], None] = lambda state: None) -> None:
        """Run trials while the budget lasts (grid: while WAITING trials are left to claim)."""
        while budget.take():
            trial = claim_waiting_trial(self.handle) if grid else self._ask()
            if trial is None:
                return
            with heartbeat(self.handle.storage, self.handle.trial_id(trial.number)):
                state = self.run_trial(trial)
            budget.done()
            after_trial(state)

    def _ask(self) -> optuna.Trial:
        with warnings.catch_warnings():  # Optuna warns that its heartbeat is meant for optimize(): we beat ourselves
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            return self.handle.study.ask()


class TrialBudget:
    """How many trials this invocation may start, and until when; shared by worker processes."""

    def __init__(self, trials: int, deadline: float | None):
        context = multiprocessing.get_context("spawn")
        self.trials, self.deadline = trials, deadline
        self._started, self._finished = context.Value("i", 0), context.Value("i", 0)

    def take(self) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            return False
        with self._started.get_lock():
            if self._started.value >= self.trials:
                return False
            self._started.value += 1
            return True

    def done(self) -> None:
        with self._finished.get_lock():
            self._finished.value += 1

    @property
    def finished(self) -> int:
        return self._finished.value


def make_worker(config: SweepConfig, evaluator: Evaluator, storage, client, experiment_id: str, parent_id: str,
                index: int) -> Worker:
    """Worker `index` of a sweep: its own sampler (seed + index) on the shared study."""
    sampler = SAMPLERS[config.sampler_name](config.seed + index)
    study = optuna.load_study(study_name=config.study_name, storage=storage, sampler=sampler,
                              pruner=PRUNERS[config.pruner]())
    handle = StudyHandle(study, storage, storage.get_study_id_from_name(config.study_name))
    runs = RunLogger(client, config.tracking_uri, experiment_id, parent_id, run_tags(config, evaluator),
                     run_params(config, evaluator.test))
    return Worker(handle, config.space, evaluator, runs, config.objective_spec, config.seeds)
