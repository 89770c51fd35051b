"""Optuna storage of the studies: opening it (a journal file or a database), heartbeats of running
trials, a study's provenance, and the grid points that workers claim, each exactly once.

Imports neither torch nor MLflow: `bench report` and `bench dashboard` open storages through it.
Passwords in storage and tracking URLs are redacted in everything recorded or printed.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from bench.errors import BenchError

if TYPE_CHECKING:
    from bench._sweep_config import SweepConfig
    from bench.trial import Evaluator

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HOLDING = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)  # a trial in these holds its grid point


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


# --- the study --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """What a study's results depend on besides the settings; a resumed study must match it."""

    checkpoint_sha: str
    data_hash: str
    protocol: str
    inception_weights: str


def provenance_mismatch(storage: optuna.storages.BaseStorage, study_id: int, provenance: Mapping[str, str]
                        ) -> tuple[str, str, str] | None:
    """The first of the study's recorded model, data and protocol attributes that `provenance` contradicts,
    as (key, recorded, given); None when they agree (runs on other ones would not pair)."""
    recorded = storage.get_study_user_attrs(study_id)
    return next(((key, recorded[key], value) for key, value in provenance.items()
                 if key in recorded and recorded[key] != value), None)


def check_resumable(storage: optuna.storages.BaseStorage, config: SweepConfig, provenance: Provenance) -> None:
    """An existing study must have the same objective, model, data and compatible settings."""
    try:
        study_id = storage.get_study_id_from_name(config.study_name)
    except KeyError:
        return
    name = config.study_name
    directions = [d.name.lower() for d in storage.get_study_directions(study_id)]
    if directions != config.objective_spec.directions:
        raise BenchError(f"--study-name {name}: the study has {len(directions)} objective(s), "
                         f"--objective {config.objective} has {len(config.objective_spec.names)}")
    mismatch = provenance_mismatch(storage, study_id, asdict(provenance))
    if mismatch:
        key, recorded, value = mismatch
        raise BenchError(f"--study-name {name}: the study was run with {key} {recorded}, this sweep has "
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
                                directions=config.objective_spec.directions)
    if not study.user_attrs:
        for key, value in {**asdict(provenance), "objective": config.objective, "objective_names": list(
                config.objective_spec.names), "mlflow_tracking_uri": redacted(config.tracking_uri),
                "mlflow_experiment_id": experiment_id}.items():
            study.set_user_attr(key, value)
    return study


def study_provenance(evaluator: Evaluator) -> Provenance:
    recorded = evaluator.provenance()
    return Provenance(**{name: recorded[name] for name in Provenance.__dataclass_fields__})


def same_params_seeds(trials: Sequence[FrozenTrial], params: dict) -> set[int]:
    """Every seed the trials with these params decoded (their `seed_list`; a trial without one: its seed
    param, else 0, the settings' default), so that the configuration evaluated again is a new replicate."""
    return {seed for trial in trials if trial.params == params
            for seed in trial.user_attrs.get("seed_list", [trial.params.get("seed", 0)])}


# --- grid points --------------------------------------------------------------------------------


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
