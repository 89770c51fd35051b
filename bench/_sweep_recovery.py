"""Trials of dead workers: found at the start of every sweep (and when its worker processes end),
made FAIL in Optuna, and their MLflow runs closed FAILED, so that nothing shows as running that is not.

A dead worker shows two ways: a process of this machine that no longer exists (found at once, by
the `host:pid` of `_sweep_worker.worker_label`), and, on a database storage, a trial whose
heartbeat stopped for the grace period (any machine).
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Mapping

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from bench._sweep_runs import end_run
from bench.storage import FINISHED, StudyHandle


def fail_orphaned_trials(handle: StudyHandle, client, experiment_id: str) -> list[int]:
    """Trials whose worker died, made FAIL; returns their numbers. Then the trial runs left RUNNING
    while their trial finished are closed, so that MLflow shows nothing running that is not.
    """
    errors = {**_fail_trials_of_dead_local_workers(handle), **_fail_stale_trials(handle)}
    _close_runs_of_finished_trials(handle, client, experiment_id, errors)
    return sorted(errors)


def _fail_trials_of_dead_local_workers(handle: StudyHandle) -> dict[int, str]:
    host = socket.gethostname()
    errors = {}
    for trial in handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        error = f"worker {worker} died while running this trial"
        handle.storage.set_trial_user_attr(handle.trial_id(trial.number), "error", error)
        handle.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        errors[trial.number] = error
    return errors


def _fail_stale_trials(handle: StudyHandle) -> dict[int, str]:
    """Optuna's heartbeat check (database storages): RUNNING trials silent for the grace period become
    FAIL, each atomically, so of several workers checking at once one wins. Optuna fails them itself,
    after which a trial takes no attributes: the reason goes to the run's `error` tag."""
    running = handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(handle.study)
    failed = {t.number for t in handle.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
              if "error" not in t.user_attrs}  # a worker that fails a trial itself says why first
    return {t.number: f"worker {t.user_attrs.get('worker', '(unknown)')} stopped sending heartbeats while "
                      "running this trial (killed, crashed or cut off from the storage)"
            for t in running if t.number in failed}


def _close_runs_of_finished_trials(handle: StudyHandle, client, experiment_id: str, errors: Mapping[int, str]) -> None:
    """Trial runs still RUNNING whose trial has finished (its worker died, or MLflow was away when it
    ended) get the trial's state; failed ones get the reason as an `error` tag."""
    finished = {t.number: t for t in handle.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))}
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        number = run.data.tags.get("optuna_trial_number")
        trial = finished.get(int(number)) if number else None
        if trial is not None:
            status = "FAILED" if trial.state == TrialState.FAIL else "FINISHED"
            end_run(client, run.info.run_id, status, trial.state,
                    errors.get(trial.number, trial.user_attrs.get("error")))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
