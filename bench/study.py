"""`bench sweep`: an Optuna study of trials, every trial a nested MLflow run (design.md section 5).

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

import json
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import wraps
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.pruners import BasePruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, CmaEsSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table
from tqdm import tqdm

from bench.data import TestSet, default_benchmark_dir, load_test_set
from bench.errors import BenchError
from bench.search_space import SearchSpace, build_space, dimensions_from_options, load_study_file
from bench.tracking import DEFAULT_TRACKING_URI, ensure_experiment, environment_tags, resolve_device, tracking_client
from bench.trial import Evaluator, StepScore, TrialResult, TrialSettings, save_png
from maskgit.checkpoints import CheckpointError, load_checkpoint
from maskgit.model import MaskGIT
from maskgit.schedules import schedule_names

DEFAULT_STORAGE = "bench-studies.journal"
DEFAULT_CHECKPOINT = "toyfaces"
DEFAULT_LIMIT = 32  # embedded benchmark only: sized so the default sweep takes minutes on 2 CPU cores
DEFAULT_N_TRIALS = 4
GRID = "grid"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HOLDING = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)  # a trial in these holds its grid point


# --- registries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """What a study minimises: names of the values and how a trial result gives them."""

    names: tuple[str, ...]
    values: Callable[[TrialResult], tuple[float, ...]]

    @property
    def directions(self) -> list[str]:
        return ["minimize"] * len(self.names)


OBJECTIVES: dict[str, Objective] = {
    "fid": Objective(("fid",), lambda r: (r.best_fid,)),
    # steps: the decoder can stop at the sweet spot, so its cost is the sweet spot, not T
    "fid+steps": Objective(("fid", "steps"), lambda r: (r.best_fid, float(r.best_step))),
    "fid+seconds": Objective(("fid", "seconds_per_image"), lambda r: (r.best_fid, r.decode_seconds_per_image)),
}
"""Objectives by name; more than one value makes a multi-objective study (a Pareto front)."""

SAMPLERS: dict[str, Callable[[int], BaseSampler]] = {
    "tpe": lambda seed: TPESampler(seed=seed),
    "random": lambda seed: RandomSampler(seed=seed),
    "cmaes": lambda seed: CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "nsga2": lambda seed: NSGAIISampler(seed=seed),
    GRID: lambda seed: RandomSampler(seed=seed),  # never asked: every grid trial is enqueued with its params
}
"""Samplers by name (seeded per worker); add entries to extend."""

PRUNERS: dict[str, Callable[[], BasePruner]] = {
    "none": NopPruner,
    "median": lambda: MedianPruner(n_startup_trials=2, n_warmup_steps=0),
}
"""Pruners by name; they see the FID curve step by step (single-objective studies only)."""


# --- the sweep's configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep (and each of its worker processes) needs; plain values, picklable."""

    space: SearchSpace
    study_name: str
    storage: str = DEFAULT_STORAGE
    tracking_uri: str = DEFAULT_TRACKING_URI
    objective: str = "fid"
    sampler: str | None = None  # None: tpe, or nsga2 for several objectives
    pruner: str = "none"
    n_trials: int | None = None  # the study's target of finished trials (grid: every point)
    timeout: float | None = None  # seconds after which no new trial starts
    workers: int = 1
    data: str | None = None  # None: the embedded benchmark
    limit: int | None = None  # None: DEFAULT_LIMIT on the embedded benchmark, else every image
    checkpoint: str = DEFAULT_CHECKPOINT
    seed: int = 0  # of the samplers (worker i uses seed + i)
    device: str = "auto"
    batch_size: int | None = None  # None: default_batch_size(device)
    compiled: bool = False  # torch.compile the transformer and the VQGAN decoder
    protocol: str = "tf"
    cache: bool = True
    progress: bool = True

    @property
    def sampler_name(self) -> str:
        """The sampler given, else nsga2 for several objectives, grid when the space has no more points
        than the trials asked for (each point once, instead of TPE drawing some twice), else tpe."""
        if self.sampler:
            return self.sampler
        if len(OBJECTIVES[self.objective].names) > 1:
            return "nsga2"
        return GRID if self.space.grid_has_at_most(self.n_trials or DEFAULT_N_TRIALS) else "tpe"


def build_sweep_config(settings: Mapping[str, str | list[str] | None], study_file: Path | None = None,
                       **options) -> SweepConfig:
    """Options given (not None) over the study file's over the defaults.

    `settings`: command-line text per setting (see bench.search_space); `options`: SweepConfig
    fields, the study file's [study] table (name -> study_name) filling those not given.
    """
    file = load_study_file(study_file) if study_file else None
    space = build_space(file.dims if file else None, dimensions_from_options(settings))
    from_file = dict(file.options) if file else {}
    if "name" in from_file:
        from_file["study_name"] = from_file.pop("name")
    chosen = {**from_file, **{key: value for key, value in options.items() if value is not None}}
    chosen.setdefault("study_name", file.path.stem if file else default_study_name(space))
    return SweepConfig(space=space, **chosen)


def check_config(config: SweepConfig) -> None:
    """Option errors that need no file, model or storage."""
    _require_known("--objective", config.objective, OBJECTIVES)
    _require_known("--sampler", config.sampler_name, SAMPLERS)  # the default depends on the objective
    _require_known("--pruner", config.pruner, PRUNERS)
    several = len(OBJECTIVES[config.objective].names) > 1
    if several and config.pruner != "none":
        raise BenchError(f"--pruner {config.pruner}: Optuna prunes single-objective studies only "
                         f"(--objective {config.objective} has {len(OBJECTIVES[config.objective].names)})")
    if config.sampler_name == "cmaes":
        if several:
            raise BenchError("--sampler cmaes: single-objective only; use nsga2 for --objective " + config.objective)
        import importlib.util

        if importlib.util.find_spec("cmaes") is None:
            raise BenchError("--sampler cmaes needs the cmaes package (pip install cmaes)")
    for option, value, least in (("--n-trials", config.n_trials, 1), ("--workers", config.workers, 1),
                                 ("--batch-size", config.batch_size, 1), ("--limit", config.limit, 2)):
        if value is not None and value < least:
            raise BenchError(f"{option} must be at least {least} (got {value})")
    if config.timeout is not None and config.timeout <= 0:
        raise BenchError(f"--timeout must be > 0 seconds (got {config.timeout})")
    if not config.study_name.strip():
        raise BenchError("--study-name must not be empty")


def _require_known(option: str, name: str, registry: Mapping) -> None:
    if name not in registry:
        raise BenchError(f"{option} {name!r}: unknown, expected one of {', '.join(registry)}")


def default_study_name(space: SearchSpace) -> str:
    """sweep-<schedules>, e.g. sweep-cosine; sweep-all when every schedule is searched."""
    names = space.dims["schedule"].values
    return "sweep-all" if list(names) == schedule_names() else "sweep-" + "+".join(map(str, names))


# --- inputs -----------------------------------------------------------------------------------


def load_model(spec: str) -> tuple[MaskGIT, dict]:
    """The checkpoint's model and config (weights_sha256, meta); a missing or broken one is a one-line error."""
    try:
        return load_checkpoint(spec)
    except CheckpointError as exc:
        hint = " (the shipped model is not installed yet: pass --checkpoint PATH)" if spec == DEFAULT_CHECKPOINT else ""
        raise BenchError(f"--checkpoint {exc}{hint}") from None


def load_data(data: str | None, limit: int | None) -> TestSet:
    """The test set (the embedded benchmark by default, then its first DEFAULT_LIMIT images)."""
    if data is None:
        test = load_test_set(default_benchmark_dir())
        limit = limit or DEFAULT_LIMIT
    else:
        test = load_test_set(data)
    return test.subset(limit) if limit and limit < len(test) else test


def checked_device(name: str) -> str:
    """`auto` resolved; a device torch does not know or cannot use is a one-line error."""
    import torch

    device = resolve_device(name)
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise BenchError(f"--device {name}: not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA is not available on this machine")
    return device


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A JournalStorage file for a path, an RDBStorage for a database URL; unreachable = one-line error."""
    if "://" not in url:
        path = Path(url).expanduser()
        if not path.parent.is_dir():
            raise BenchError(f"--storage {url}: folder {path.parent} does not exist")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise BenchError(f"--storage {url}: cannot open the journal file ({exc.strerror})") from None
    interval, grace = heartbeat_settings()
    try:
        storage = _rdb_storage(url, interval, grace)
    except Exception as exc:  # driver missing, host down, bad credentials: all mean "not usable"
        raise BenchError(f"--storage {redacted(url)}: cannot connect ({_connect_failure(exc)})") from None
    # The caching wrapper a Study puts around an RDBStorage, made here so that the studies and the
    # storage-level calls below (claiming trials) share one object and one view of the trials.
    return optuna.storages.get_storage(storage)


SCHEMA_ATTEMPTS = 3


def _rdb_storage(url: str, heartbeat_interval: int, grace_period: int) -> optuna.storages.RDBStorage:
    """An RDBStorage with heartbeats. Workers starting at once on a new database race to create Optuna's
    tables (optuna/optuna#1092): a loser gets a unique-key or already-exists error, and opens the
    storage again once the winner's tables are there."""
    import sqlalchemy.exc

    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)  # Optuna still calls its heartbeat experimental
                return optuna.storages.RDBStorage(url, engine_kwargs=_rdb_engine_kwargs(url),
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(attempt)


def _connect_failure(exc: Exception) -> str:
    """Why a database storage cannot be opened; for a missing driver, which one (Optuna's message hides it)."""
    missing = exc.__cause__ if isinstance(exc, ImportError) and isinstance(exc.__cause__, ImportError) else None
    reason = " ".join(str(missing or exc).split())[:300]
    if missing:
        return (f"{type(missing).__name__}: {reason}; install that driver, or name an installed one in the URL "
                "(e.g. postgresql+psycopg2://)")
    return f"{type(exc).__name__}: {reason}"


def _rdb_engine_kwargs(url: str) -> dict:
    """Fail fast on unreachable servers instead of hanging on the connect."""
    return {"connect_args": {"connect_timeout": 10}} if url.startswith(("postgresql", "mysql")) else {}


HEARTBEAT_SECONDS = 10  # how often a running trial tells a database storage that its worker is alive
GRACE_SECONDS = 30  # a RUNNING trial silent this long belongs to a dead worker, on whichever machine


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace period) in whole seconds; MASKGIT_BENCH_HEARTBEAT / MASKGIT_BENCH_GRACE override
    them (tests make them short). A grace of several intervals spares a busy but live worker."""
    interval = _seconds_from_env("MASKGIT_BENCH_HEARTBEAT", HEARTBEAT_SECONDS)
    grace = _seconds_from_env("MASKGIT_BENCH_GRACE", GRACE_SECONDS)
    if grace <= interval:
        raise BenchError(f"MASKGIT_BENCH_GRACE={grace}: must be longer than the heartbeat interval ({interval} s)")
    return interval, grace


def _seconds_from_env(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise BenchError(f"{name}={text}: expected whole seconds, at least 1")
    return int(text)


def redacted(url: str) -> str:
    """The URL with its password replaced by ***, for everything recorded or printed (MLflow tags,
    study attributes, messages); journal paths and URLs without a password come back as they are."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}").geturl()


# --- the study --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """What a study's results depend on besides the settings; a resumed study must match it."""

    checkpoint_sha: str
    data_hash: str
    protocol: str
    inception_weights: str


def check_resumable(storage: optuna.storages.BaseStorage, config: SweepConfig, provenance: Provenance) -> None:
    """An existing study must have the same objective, model, data and compatible settings."""
    try:
        study_id = storage.get_study_id_from_name(config.study_name)
    except KeyError:
        return
    name = config.study_name
    directions = [d.name.lower() for d in storage.get_study_directions(study_id)]
    if directions != OBJECTIVES[config.objective].directions:
        raise BenchError(f"--study-name {name}: the study has {len(directions)} objective(s), "
                         f"--objective {config.objective} has {len(OBJECTIVES[config.objective].names)}")
    recorded = storage.get_study_user_attrs(study_id)
    for key, value in asdict(provenance).items():
        if key in recorded and recorded[key] != value:
            raise BenchError(f"--study-name {name}: the study was run with {key} {recorded[key]}, this sweep has "
                             f"{value} (other --checkpoint, --data, --limit or --protocol); "
                             "choose another --study-name")
    searched = {setting: distribution for trial in storage.get_all_trials(study_id, deepcopy=False, states=FINISHED)
                for setting, distribution in trial.distributions.items()}
    setting = config.space.incompatible_with(searched)
    if setting:
        raise BenchError(f"--study-name {name}: its trials searched {setting} differently ({searched[setting]}); "
                         "Optuna cannot mix them, choose another --study-name")


def create_study(storage, config: SweepConfig, provenance: Provenance, experiment_id: str) -> optuna.Study:
    study = optuna.create_study(study_name=config.study_name, storage=storage, load_if_exists=True,
                                directions=OBJECTIVES[config.objective].directions)
    if not study.user_attrs:
        for key, value in {**asdict(provenance), "objective": config.objective, "objective_names": list(
                OBJECTIVES[config.objective].names), "mlflow_tracking_uri": redacted(config.tracking_uri),
                "mlflow_experiment_id": experiment_id}.items():
            study.set_user_attr(key, value)
    return study


def enqueue_grid(study: optuna.Study, points: Sequence[dict]) -> int:
    """Enqueue the grid points no trial holds yet (failed ones again); returns how many are waiting."""
    held = {_grid_key(t) for t in study.get_trials(deepcopy=False, states=HOLDING)}
    for point in points:
        if json.dumps(point, sort_keys=True) not in held:
            study.enqueue_trial(point)
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


@contextmanager
def enqueue_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """Held by one sweep at a time per study, across machines, while it enqueues grid points: sweeps
    starting at once would each enqueue the missing points, and the copies would fail as duplicates
    (claim_waiting_trial). A PostgreSQL advisory lock, released with its transaction; other storages
    go without (their duplicates still fail instead of running twice)."""
    if not storage_url.startswith("postgresql"):
        yield
        return
    import hashlib

    import sqlalchemy
    from sqlalchemy.pool import NullPool

    digest = hashlib.sha256(f"maskgit-bench enqueue {study_name}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)  # advisory locks are named by a 64-bit number
    engine = sqlalchemy.create_engine(storage_url, poolclass=NullPool, **_rdb_engine_kwargs(storage_url))
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield
    finally:
        engine.dispose()


def _grid_key(trial: FrozenTrial) -> str:
    """A trial's grid point (enqueued params, or the params of a trial that ran)."""
    return json.dumps(trial.system_attrs.get("fixed_params", trial.params), sort_keys=True)


@dataclass(frozen=True)
class StudyHandle:
    """A study with the storage and id that the storage-level operations below need."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    study_id: int

    @classmethod
    def load(cls, storage, name: str) -> StudyHandle:
        return cls(optuna.load_study(study_name=name, storage=storage), storage, storage.get_study_id_from_name(name))

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)


def claim_waiting_trial(handle: StudyHandle) -> optuna.Trial | None:
    """A WAITING trial switched to RUNNING by this process, or None when none is left.

    The storage makes the switch atomic: of several workers racing for one trial exactly one wins.
    A claimed trial whose grid point a lower-numbered trial holds (two sweeps started at once both
    enqueued it) is failed as a duplicate, so each point runs once.
    """
    for frozen in handle.storage.get_all_trials(handle.study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = handle.trial_id(frozen.number)
        try:
            if not handle.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        twin = _lower_twin(handle, frozen)
        if twin is None:
            return optuna.Trial(handle.study, trial_id)
        handle.storage.set_trial_user_attr(trial_id, "error", f"duplicate of trial {twin} (same grid point)")
        handle.storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return None


def _lower_twin(handle: StudyHandle, claimed: FrozenTrial) -> int | None:
    key = _grid_key(claimed)
    for trial in handle.storage.get_all_trials(handle.study_id, deepcopy=False, states=HOLDING):
        if trial.number < claimed.number and _grid_key(trial) == key:
            return trial.number
    return None


def worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_orphaned_trials(handle: StudyHandle, client, experiment_id: str) -> list[int]:
    """Trials whose worker died, made FAIL; returns their numbers. Then the trial runs left RUNNING
    while their trial finished are closed, so that MLflow shows nothing running that is not.

    A dead worker shows two ways: a process of this machine that no longer exists (found at once),
    and, on a database storage, a trial whose heartbeat stopped for the grace period (any machine).
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


# --- MLflow runs ----------------------------------------------------------------------------


class TrackingError(BenchError):
    """MLflow could not record a trial (say, the tracking server went away). The trial is recorded FAIL
    in Optuna and the sweep stops instead of buffering: trials it cannot record would be missing from
    every report."""


def _recording(method):
    """For RunLogger's methods: an MLflow failure becomes a one-line TrackingError naming --tracking-uri."""

    @wraps(method)
    def recorded(self, *args, **kwargs):
        from mlflow.exceptions import MlflowException
        from requests import RequestException

        try:
            return method(self, *args, **kwargs)
        except (MlflowException, RequestException) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise TrackingError(f"--tracking-uri {self.tracking_uri}: MLflow could not record the trial "
                                f"({type(exc).__name__}: {reason}); the trial is recorded FAIL and the same "
                                "command resumes the study once MLflow is back") from None

    return recorded


def end_run(client, run_id: str, status: str, state: TrialState, error: str | None = None) -> None:
    """Close a trial run (status FINISHED, FAILED or KILLED) with its trial's Optuna state and error."""
    client.set_tag(run_id, "optuna_state", state.name)
    if error:
        client.set_tag(run_id, "error", error[:5000])
    client.set_terminated(run_id, status)


class RunLogger:
    """The MLflow side of a sweep: nested runs under the invocation's parent run."""

    def __init__(self, client, tracking_uri: str, experiment_id: str, parent_run_id: str, tags: dict[str, str],
                 params: dict[str, object]):
        self.client, self.experiment_id, self.parent_run_id = client, experiment_id, parent_run_id
        self.tracking_uri = redacted(tracking_uri)  # for messages
        self.tags, self.params = tags, params  # on every trial run

    @_recording
    def start_trial(self, trial: optuna.Trial, study_name: str) -> str:
        tags = {**self.tags, "mlflow.parentRunId": self.parent_run_id, "optuna_study_name": study_name,
                "optuna_trial_number": str(trial.number)}
        return self.client.create_run(self.experiment_id, run_name=f"trial-{trial.number:03d}", tags=tags).info.run_id

    @_recording
    def log_settings(self, run_id: str, settings: TrialSettings) -> None:
        from mlflow.entities import Param

        params = {**settings.params(), **self.params}
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])

    @_recording
    def log_step(self, run_id: str, score: StepScore) -> None:
        """`fid` at step s, so the UI draws FID against the decoding step."""
        self.client.log_metric(run_id, "fid", score.fid, step=score.step)

    @_recording
    def log_result(self, run_id: str, result: TrialResult, objective_values: dict[str, float]) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        values = {"best_fid": result.best_fid, "best_step": result.best_step, "final_fid": result.final_fid,
                  "decode_seconds_per_image": result.decode_seconds_per_image, "n_images": result.n_images,
                  **{f"seconds_{phase}": seconds for phase, seconds in result.seconds.items()},
                  **{f"objective_{name}": value for name, value in objective_values.items()}}
        if result.kid is not None:
            values["kid"] = result.kid
        metrics = [Metric(key, float(value), now, 0) for key, value in values.items()]
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag("cached", str(result.cached).lower())])
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "curve.csv").write_text(result.curve_csv())
            for name, image in result.figures.items():
                save_png(image, Path(folder) / name)
            self.client.log_artifacts(run_id, folder)

    @_recording
    def end(self, run_id: str | None, status: str, state: TrialState, error: str | None = None) -> None:
        if run_id is not None:
            end_run(self.client, run_id, status, state, error)


# --- trials ---------------------------------------------------------------------------------


@dataclass
class Worker:
    """What one process needs to run trials of a study."""

    handle: StudyHandle
    space: SearchSpace
    evaluator: Evaluator
    runs: RunLogger
    objective: Objective

    def run_trial(self, trial: optuna.Trial) -> TrialState:
        """Evaluate one trial and record it in Optuna and MLflow; only Ctrl-C and TrackingError escape."""
        study, run_id = self.handle.study, None
        trial.set_user_attr("worker", worker_label())
        try:
            run_id = self.runs.start_trial(trial, study.study_name)
            trial.set_user_attr("mlflow_run_id", run_id)
            settings = self.space.suggest(trial)
            self.runs.log_settings(run_id, settings)
            result = self.evaluator.evaluate(settings, on_step=lambda score: self._on_step(trial, run_id, score))
            values = self.objective.values(result)
            self.runs.log_result(run_id, result, dict(zip(self.objective.names, values)))
            for key, value in (("best_step", result.best_step), ("final_fid", result.final_fid),
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


@contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> Iterator[None]:
    """While the block runs, record the trial's heartbeat every interval (storages that keep one).

    Optuna beats only inside Study.optimize; our workers claim or ask trials themselves, and without a
    heartbeat the trial of a worker killed on another machine would stay RUNNING forever.
    """
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_beat, args=(storage, trial_id, interval, stop), daemon=True,
                              name=f"heartbeat-trial-{trial_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _beat(storage, trial_id: int, interval: int, stop: threading.Event) -> None:
    while True:
        try:
            storage.record_heartbeat(trial_id)
        except Exception:  # the storage is briefly unreachable: a missed beat is what the grace period is for
            pass
        if stop.wait(interval):
            return


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


# --- the sweep ------------------------------------------------------------------------------


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


def load_evaluator(config: SweepConfig, progress: bool) -> Evaluator:
    """The sweep's model and test set, loaded and checked (once per process)."""
    model, checkpoint = load_model(config.checkpoint)
    test = load_data(config.data, config.limit)
    return Evaluator(model, checkpoint["weights_sha256"], test, device=checked_device(config.device),
                     batch_size=config.batch_size, protocol=config.protocol, cache=config.cache, progress=progress,
                     compiled=config.compiled)


def study_provenance(evaluator: Evaluator) -> Provenance:
    recorded = evaluator.provenance()
    return Provenance(**{name: recorded[name] for name in Provenance.__dataclass_fields__})


def _run_tags(config: SweepConfig, evaluator: Evaluator) -> dict[str, str]:
    return {**environment_tags(evaluator.device), **asdict(study_provenance(evaluator)),
            "optuna_study_name": config.study_name, "optuna_storage": redacted(config.storage)}


def make_worker(config: SweepConfig, evaluator: Evaluator, storage, client, experiment_id: str, parent_id: str,
                index: int) -> Worker:
    """Worker `index` of a sweep: its own sampler (seed + index) on the shared study."""
    sampler = SAMPLERS[config.sampler_name](config.seed + index)
    study = optuna.load_study(study_name=config.study_name, storage=storage, sampler=sampler,
                              pruner=PRUNERS[config.pruner]())
    handle = StudyHandle(study, storage, storage.get_study_id_from_name(config.study_name))
    runs = RunLogger(client, config.tracking_uri, experiment_id, parent_id, _run_tags(config, evaluator),
                     _run_params(config, evaluator.test))
    return Worker(handle, config.space, evaluator, runs, OBJECTIVES[config.objective])


def run_sweep(config: SweepConfig) -> SweepOutcome:
    """Run or resume the study: check everything, then create, then work."""
    check_config(config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar and the summary say it better
    grid = config.sampler_name == GRID
    points = config.space.grid() if grid else None
    evaluator = load_evaluator(config, config.progress)
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
    parent_tags = {**_run_tags(config, evaluator), "sampler": config.sampler_name, "objective": config.objective}
    parent_id = client.create_run(experiment_id, run_name=f"sweep-{datetime.now():%Y%m%d-%H%M%S}",
                                  tags=parent_tags).info.run_id
    _log_sweep_params(client, parent_id, config, evaluator, trials)
    client.log_batch(parent_id, metrics=_baseline_metrics(evaluator.baselines))
    try:
        if trials and config.workers == 1:
            worker = make_worker(config, evaluator, storage, client, experiment_id, parent_id, index=0)
            _run_here(worker, budget, grid, config.progress)
        elif trials:
            _run_processes(config, experiment_id, parent_id, budget, grid, handle, client)
    except KeyboardInterrupt:
        client.set_terminated(parent_id, "KILLED")
        raise
    except TrackingError:
        raise  # MLflow is what failed: the parent run cannot be closed either
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    outcome = _outcome(handle, config, parent_id, budget.finished, orphans)
    client.log_batch(parent_id, metrics=_count_metrics(outcome))
    client.set_terminated(parent_id, "FINISHED")
    return outcome


def _missing_trials(handle: StudyHandle, config: SweepConfig) -> int:
    """Trials still needed to reach the target (running ones of other workers count as on their way)."""
    target = config.n_trials or DEFAULT_N_TRIALS
    return max(0, target - len(handle.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))))


def _run_params(config: SweepConfig, test: TestSet) -> dict[str, object]:
    """What every trial run records besides its settings: enough to replay it (`bench inpaint --from-run`)."""
    checkpoint = Path(config.checkpoint)
    return {"data": str(test.root), "n_images": len(test), "protocol": config.protocol,
            "checkpoint": str(checkpoint.resolve()) if checkpoint.exists() else config.checkpoint}


def _log_sweep_params(client, run_id: str, config: SweepConfig, evaluator: Evaluator, trials: int) -> None:
    from mlflow.entities import Param

    params = {**_run_params(config, evaluator.test), "sampler": config.sampler_name, "objective": config.objective,
              "pruner": config.pruner, "n_trials": config.n_trials, "timeout": config.timeout,
              "workers": config.workers, "trials_planned": trials, "batch_size": evaluator.batch_size,
              "compiled": evaluator.compiled,
              "search_space": json.dumps(config.space.describe())}
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])


def _baseline_metrics(baselines: Mapping[str, Mapping[str, float]]) -> list:
    """baseline_<name>_fid / _kid: the reference rows `bench report` draws beside the trials."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(f"baseline_{name}_{key}", float(value), now, 0)
            for name, row in baselines.items() for key, value in row.items()]


def _count_metrics(outcome: SweepOutcome) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = {f"trials_{state.lower()}": count for state, count in outcome.counts.items()}
    values["trials_this_sweep"] = outcome.ran
    return [Metric(key, float(value), now, 0) for key, value in values.items()]


def _run_here(worker: Worker, budget: TrialBudget, grid: bool, progress: bool) -> None:
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


def _run_processes(config: SweepConfig, experiment_id: str, parent_id: str, budget: TrialBudget, grid: bool,
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
    evaluator = load_evaluator(config, progress=False)
    storage = open_storage(config.storage)
    client = tracking_client(config.tracking_uri)
    worker = make_worker(config, evaluator, storage, client, experiment_id, parent_id, index)
    try:
        worker.run(budget, grid)
    except KeyboardInterrupt:
        pass  # the trial is recorded FAIL and its run KILLED; the parent reports the interruption


# --- the outcome ----------------------------------------------------------------------------

BEST_SHOWN = 5


def _outcome(handle: StudyHandle, config: SweepConfig, parent_id: str, ran: int, orphans: list[int]) -> SweepOutcome:
    study = handle.study
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(study.directions) > 1:
        best = sorted(study.best_trials, key=lambda t: t.values)
    else:
        best = sorted(complete, key=lambda t: t.values[0])[:BEST_SHOWN]
    return SweepOutcome(config.study_name, redacted(config.storage), redacted(config.tracking_uri), parent_id,
                        OBJECTIVES[config.objective], ran, counts, best, orphans)


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
