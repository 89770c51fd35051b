"""`bench sweep`: an Optuna study of trials, every trial a nested MLflow run.

Layout. Optuna: one study per name in a storage several processes share (a JournalStorage file
by default, an RDB URL for several machines); every setting is a trial param (fixed ones too), the
FID curve its intermediate values (step = s), the MLflow run id a user attr. MLflow: one
experiment per study (same name), one parent run per `bench sweep` invocation, one nested run per
trial with every setting as a param, `fid` logged at step = s, the summary metrics, hashes and
library versions as tags, and the curve, a progression grid and the latent masks as artifacts.

Robustness. Everything a sweep needs is checked before a study or run is created. A trial that
raises is recorded FAIL (error in a user attr, run FAILED) and the study goes on; Ctrl-C records
the running trial FAIL and its run KILLED; trials left RUNNING by a dead worker are failed on the
next start (a dead process of this machine at once; on a database storage, any machine's worker
whose trial stopped its heartbeat), and their runs closed FAILED. When MLflow stops answering, the
running trial is recorded FAIL in Optuna and the sweep stops with one line (nothing is buffered).
Grid studies enqueue their points once, in the parent (sweeps starting at once on PostgreSQL take
turns), and workers only claim WAITING trials (atomically, through the storage), so no point runs
twice or is lost. Passwords in storage and tracking URLs are redacted in everything recorded or
printed.
"""

from __future__ import annotations

import time
from datetime import datetime

import optuna
from optuna.trial import TrialState

from bench._sweep_config import (DEFAULT_N_TRIALS, GRID, OBJECTIVES, PRUNERS, SAMPLERS, Objective, SweepConfig,
                                 build_sweep_config, check_config)
from bench._sweep_outcome import SweepOutcome, outcome_lines, outcome_table, sweep_outcome
from bench._sweep_processes import run_here, run_processes, sweep_evaluator
from bench._sweep_recovery import fail_orphaned_trials
from bench._sweep_runs import (SWEEP_OUTAGE_ADVICE, RunLogger, TrackingError, count_metrics, reference_draws,
                              run_tags)
from bench._sweep_worker import TrialBudget, make_worker
from bench.compare import read_uncertainty
from bench.storage import (FINISHED, StudyHandle, check_resumable, create_study, enqueue_grid, enqueue_lock,
                           heartbeat_settings, open_storage, redacted, study_provenance)
from bench.tracking import ensure_experiment, tracking_client

__all__ = ["OBJECTIVES", "PRUNERS", "SAMPLERS", "Objective", "SweepConfig", "SweepOutcome", "build_sweep_config",
           "check_config", "heartbeat_settings", "open_storage", "outcome_lines", "outcome_table", "redacted",
           "run_sweep"]


def run_sweep(config: SweepConfig) -> SweepOutcome:
    """Run or resume the study: check everything, then create, then work."""
    check_config(config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar and the summary say it better
    grid = config.sampler_name == GRID
    points = config.space.grid() if grid else None
    evaluator = sweep_evaluator(config, config.progress)
    provenance = study_provenance(evaluator)
    storage = open_storage(config.storage)
    check_resumable(storage, config, provenance)
    client = tracking_client(config.tracking_uri)
    evaluator.prepare()  # the one-off work: tokens of the masked images, the FID reference

    experiment_id = ensure_experiment(client, config.study_name, config.tracking_uri)
    create_study(storage, config, provenance, experiment_id)
    handle = StudyHandle.load(storage, config.study_name)
    orphans = fail_orphaned_trials(handle, client, experiment_id)
    if grid:
        with enqueue_lock(config.storage, config.study_name):
            trials = enqueue_grid(handle.study, points)
    else:
        trials = _missing_trials(handle, config)
    if grid and config.n_trials:
        trials = min(trials, config.n_trials)
    budget = TrialBudget(trials, None if config.timeout is None else time.time() + config.timeout)
    parent_tags = {**run_tags(config, evaluator), "sampler": config.sampler_name, "objective": config.objective}
    parent = RunLogger(client, config.tracking_uri, experiment_id, None, parent_tags, {},
                       subject="the sweep's parent run", advice=SWEEP_OUTAGE_ADVICE)
    parent_id = parent.start_parent(f"sweep-{datetime.now():%Y%m%d-%H%M%S}")
    parent.log_sweep(config, evaluator, trials)
    try:
        if trials and config.workers == 1:
            worker = make_worker(config, evaluator, storage, client, experiment_id, parent_id, index=0)
            run_here(worker, budget, grid, config.progress)
        elif trials:
            run_processes(config, experiment_id, parent_id, budget, grid, handle, client)
    except KeyboardInterrupt:
        parent.end_parent("KILLED")
        raise
    except TrackingError:
        raise  # MLflow is what failed: the parent run cannot be closed either
    except BaseException:
        parent.end_parent("FAILED")
        raise
    outcome = sweep_outcome(handle, config, parent_id, budget.finished, orphans, evaluator.baselines,
                            len(evaluator.test), lambda run_id: read_uncertainty(client, run_id),
                            reference_draws(evaluator))
    parent.end_parent("FINISHED", count_metrics(outcome))
    return outcome


def _missing_trials(handle: StudyHandle, config: SweepConfig) -> int:
    """Trials still needed to reach the target (running ones of other workers count as on their way)."""
    target = config.n_trials or DEFAULT_N_TRIALS
    return max(0, target - len(handle.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))))
