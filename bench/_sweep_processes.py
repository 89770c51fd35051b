"""Running a sweep's workers: one in this process with a progress bar, or several processes on the
shared storage (each loads the model and data itself, from warm caches)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from bench._sweep_config import SweepConfig
from bench._sweep_recovery import fail_orphaned_trials
from bench._sweep_worker import TrialBudget, Worker, make_worker
from bench.session import open_evaluator
from bench.storage import StudyHandle, open_storage
from bench.tracking import tracking_client
from bench.trial import Evaluator


def sweep_evaluator(config: SweepConfig, progress: bool) -> Evaluator:
    """The sweep's model and test set, loaded and checked (once per process)."""
    return open_evaluator(config.checkpoint, config.data, config.limit, config.device, batch_size=config.batch_size,
                          protocol=config.protocol, cache=config.cache, progress=progress, compiled=config.compiled)


def run_here(worker: Worker, budget: TrialBudget, grid: bool, progress: bool) -> None:
    """One worker in this process, with a progress bar over the trials."""
    with tqdm(total=budget.trials, desc=f"study {worker.handle.study.study_name}", unit="trial",
              disable=None if progress else True) as bar:
        def after_trial(state: TrialState) -> None:
            bar.update()
            bar.set_postfix_str(_best_text(worker.handle.study))

        worker.run(budget, grid, after_trial)


def _best_text(study: optuna.Study) -> str:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete or len(study.directions) > 1:
        return f"{len(complete)} complete"
    return f"best FID {min(t.values[0] for t in complete):.3f}"


def run_processes(config: SweepConfig, experiment_id: str, parent_id: str, budget: TrialBudget, grid: bool,
                   handle: StudyHandle, client) -> None:
    """`config.workers` processes, each its own Optuna worker on the shared storage."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_process, args=(config, experiment_id, parent_id, budget, grid, index),
                                 name=f"bench-sweep-worker-{index}") for index in range(config.workers)]
    for process in processes:
        process.start()
    try:
        with tqdm(total=budget.trials, desc=f"study {config.study_name} ({config.workers} workers)",
                  unit="trial", disable=None if config.progress else True) as bar:
            while any(process.is_alive() for process in processes):
                time.sleep(0.5)
                bar.update(budget.finished - bar.n)
    except KeyboardInterrupt:
        for process in processes:  # a terminal's Ctrl-C reached them already; a signal to us alone did not
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        raise
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
                process.join()
        fail_orphaned_trials(handle, client, experiment_id)


def _worker_process(config: SweepConfig, experiment_id: str, parent_id: str, budget: TrialBudget, grid: bool,
                    index: int) -> None:
    """A worker process: loads the model and data itself (their caches are warm), then runs trials."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    evaluator = sweep_evaluator(config, progress=False)
    storage = open_storage(config.storage)
    client = tracking_client(config.tracking_uri)
    worker = make_worker(config, evaluator, storage, client, experiment_id, parent_id, index)
    try:
        worker.run(budget, grid)
    except KeyboardInterrupt:
        pass  # the trial is recorded FAIL and its run KILLED; the parent reports the interruption
