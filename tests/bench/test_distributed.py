"""One study, several machines: worker processes (`bench sweep`) sharing a PostgreSQL storage and an
MLflow tracking server, and the faults of such a sweep: a worker killed in the middle of a trial,
the tracking server going away, the storage unreachable at start. Passwords in storage URLs never
reach MLflow (or the terminal) in clear.

The servers are real and this module's own, on 127.0.0.1: PostgreSQL with trust authentication (so
a URL may carry any password, which must then be redacted) and `mlflow server` on a SQLite store.
Trials are cheap: a warm-up sweep in this process fills the result cache (stand-in FID) that the
worker processes inherit, as in test_study.py's two-worker test.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import FrozenTrial, TrialState
from typer.testing import CliRunner

import cli
from bench.errors import BenchError
from bench.report import load_report_data
from bench.study import build_sweep_config, heartbeat_settings, open_storage, redacted, run_sweep

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("sweep_worker.py")  # `bench sweep` with test hooks
PASSWORD = "s3cret-pw"
HEARTBEAT, GRACE = 1, 5  # seconds, for the tests that kill a worker (the default 10 and 30 elsewhere)
WORKER_TIMEOUT = 240  # seconds for a worker process; they take a few (most of it importing torch)

GRID = {"schedule": ["cosine", "linear"], "steps": "2,3", "choice_temperature": "1,4.5"}  # 8 points
HALF_GRID = {"schedule": ["cosine", "linear"], "steps": "2", "choice_temperature": "1,4.5"}  # 4 of them
TWO_POINTS = {"schedule": ["cosine", "linear"], "steps": "3", "choice_temperature": "4.5"}  # 2 of them


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str):
    """condition()'s first true value, polled; a clear failure after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def postgres_programs() -> Path:
    """The folder of initdb and pg_ctl; a missing PostgreSQL fails the tests (it is a test dependency)."""
    installed = Path("/usr/lib/postgresql").glob("*/bin/initdb")  # Debian's layout, off the PATH
    newest = max(installed, key=lambda initdb: [int(n) for n in re.findall(r"\d+", initdb.parts[-3])], default=None)
    found = shutil.which("initdb") or newest
    if found is None:
        pytest.fail("PostgreSQL server programs (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: "
                    "install PostgreSQL (Debian: apt-get install postgresql; .ci/run does) to run these tests")
    return Path(found).parent


def as_postgres_user(folder: Path) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the `postgres` user, owning `folder`."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root, PostgreSQL needs a `postgres` user to run as (the Debian package makes it)")
    os.chown(folder, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of this module's own; its URL carries PASSWORD (trust auth accepts any)."""
    programs = postgres_programs()
    folder = Path(tempfile.mkdtemp(prefix="bench-postgres-"))  # not under pytest's root-only temp folder
    user = as_postgres_user(folder)
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} -c fsync=off"
    subprocess.run([*user, programs / "initdb", "-D", folder / "data", "-U", "postgres", "--auth=trust", "--no-sync",
                    "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*user, programs / "pg_ctl", "-D", folder / "data", "-l", folder / "server.log", "-o", options,
                    "-w", "-t", "60", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*user, programs / "pg_ctl", "-D", folder / "data", "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class MlflowServer:
    """An `mlflow server` process group of ours: a SQLite store and artifacts in `folder`."""

    folder: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, database_template: Path) -> MlflowServer:
        database = self.folder / "mlflow.db"
        if not database.exists():
            shutil.copyfile(database_template, database)  # migrated already: the server starts faster
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{database}",
                   "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job-runner processes
        with open(self.folder / "server.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        wait_until(self._healthy, 180, f"mlflow server on port {self.port} (log: {self.folder / 'server.log'})")
        return self

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"mlflow server exited: {(self.folder / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server and the processes it started (one process group, ours)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, empty_mlflow_database) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), free_port()).start(empty_mlflow_database)
    yield server
    server.stop()


# --- workers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_env(tmp_path_factory, instant_fid_context, empty_mlflow_database, tiny_checkpoint, tiny_test_set) -> dict:
    """The environment of worker processes: a cache home that holds every grid point's result (and the
    FID reference and baselines), from a warm-up sweep in this process with the stand-in FID."""
    folder = tmp_path_factory.mktemp("warm-up")
    shutil.copyfile(empty_mlflow_database, folder / "mlflow.db")
    with instant_fid_context():
        config = build_sweep_config(GRID, None, study_name="warm-up", sampler="grid", storage=str(folder / "journal"),
                                    tracking_uri=f"sqlite:///{folder}/mlflow.db", data=str(tiny_test_set),
                                    checkpoint=str(tiny_checkpoint), batch_size=4, device="cpu", progress=False)
        assert run_sweep(config).counts["COMPLETE"] == 8
        return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def sweep_args(postgres_url, mlflow_server, tiny_checkpoint, tiny_test_set) -> Callable[..., list[str]]:
    """sweep_args(study, settings, tracking_uri=the module's server) -> `bench sweep` arguments."""

    def args(study: str, settings: dict, tracking_uri: str = mlflow_server.url) -> list[str]:
        options = []
        for name, value in settings.items():
            for one in value if isinstance(value, list) else [value]:
                options += [f"--{name.replace('_', '-')}", one]
        return ["sweep", *options, "--sampler", "grid", "--study-name", study,
                "--storage", postgres_url, "--tracking-uri", tracking_uri, "--data", str(tiny_test_set),
                "--checkpoint", str(tiny_checkpoint), "--batch-size", "4", "--device", "cpu"]

    return args


@pytest.fixture
def start_worker() -> Iterator[Callable[..., subprocess.Popen]]:
    """start_worker(args, env, **hooks): `bench sweep ARGS` in a process of its own; hooks (hold=PATH,
    machine=NAME) run it through sweep_worker.py. Workers still running at the end are killed."""
    started = []

    def start(args: list[str], env: dict, **hooks: str) -> subprocess.Popen:
        command = [sys.executable, *(["-m", "cli"] if not hooks else [str(WORKER)]), *args]
        env = {**env, **{f"SWEEP_WORKER_{key.upper()}": value for key, value in hooks.items()}}
        started.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True))
        return started[-1]

    yield start
    for worker in started:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()


def finish(worker: subprocess.Popen, exit_code: int = 0) -> tuple[str, str]:
    """(stdout, stderr) of a worker that must exit with `exit_code`."""
    stdout, stderr = worker.communicate(timeout=WORKER_TIMEOUT)
    assert worker.returncode == exit_code, f"exit code {worker.returncode}\n{stdout}\n{stderr}"
    return stdout, stderr


def short_heartbeats(env: dict) -> dict:
    return {**env, "MASKGIT_BENCH_HEARTBEAT": str(HEARTBEAT), "MASKGIT_BENCH_GRACE": str(GRACE)}


def trials_run_now(stdout: str) -> int:
    return int(re.search(r"\((\d+) run now\)", stdout).group(1))


def held_trial(storage: optuna.storages.RDBStorage, study: str, worker: subprocess.Popen) -> FrozenTrial:
    """The trial `worker` is running (held by its hook), once it runs one: its MLflow run exists by then,
    since the hook holds the evaluation, which starts after the run's id is recorded."""

    def running() -> FrozenTrial | None:
        if worker.poll() is not None:
            pytest.fail(f"worker exited with {worker.returncode} before holding a trial: {worker.communicate()}")
        try:
            study_id = storage.get_study_id_from_name(study)
        except KeyError:
            return None
        return next((t for t in storage.get_all_trials(study_id, states=(TrialState.RUNNING,))
                     if t.user_attrs.get("worker", "").endswith(f":{worker.pid}")
                     and "mlflow_run_id" in t.user_attrs), None)

    return wait_until(running, WORKER_TIMEOUT, f"a RUNNING trial of worker {worker.pid}")


def point(trial: FrozenTrial) -> str:
    """The grid point a trial evaluated: all its settings."""
    return json.dumps(trial.params, sort_keys=True)


def grid_points(settings: dict) -> list[str]:
    return sorted(json.dumps(p, sort_keys=True) for p in build_sweep_config(settings, None).space.grid())


def trial_runs(tracking_uri: str, study: str) -> tuple[list, dict]:
    """(parent runs, trial runs by run id) of the study's experiment."""
    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(study).experiment_id])
    return ([run for run in runs if "mlflow.parentRunId" not in run.data.tags],
            {run.info.run_id: run for run in runs if "mlflow.parentRunId" in run.data.tags})


# --- tests --------------------------------------------------------------------------------------


def test_three_worker_processes_share_one_grid_study(postgres_url, mlflow_server, worker_env, sweep_args, start_worker):
    """Three `bench sweep` processes started at once, as on three machines: they take turns to enqueue
    the grid, every point runs exactly once, every trial has exactly one MLflow run (through the
    server), and the report sees them all."""
    args = sweep_args("three-workers", GRID)
    workers = [start_worker(args, worker_env) for _ in range(3)]
    outputs = [finish(worker) for worker in workers]
    grid = grid_points(GRID)
    assert sum(trials_run_now(stdout) for stdout, _ in outputs) == len(grid) == 8  # nothing evaluated twice

    study = optuna.load_study(study_name="three-workers", storage=postgres_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(point(t) for t in complete) == grid
    assert len(study.trials) == len(complete)  # none failed (no point enqueued twice), waiting or running

    parents, runs = trial_runs(mlflow_server.url, "three-workers")
    assert len(parents) == 3 and {run.info.status for run in parents} == {"FINISHED"}
    assert sorted(runs) == sorted(t.user_attrs["mlflow_run_id"] for t in complete)
    for trial in complete:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED" and run.data.tags["optuna_state"] == "COMPLETE"
        assert run.data.tags["optuna_trial_number"] == str(trial.number)
        assert run.data.metrics["best_fid"] == trial.value

    report = load_report_data(mlflow_server.url, studies=["three-workers"], storage=postgres_url)
    assert len(report.trials) == 8 and report.counts == {"COMPLETE": 8} and len(report.optuna_studies) == 1

    # the storage URL carries a password: redacted wherever the sweep records or prints it
    assert {run.data.tags["optuna_storage"] for run in [*parents, *runs.values()]} == {redacted(postgres_url)}
    assert ":***@" in redacted(postgres_url)
    recorded = [json.dumps([run.data.tags, run.data.params]) for run in [*parents, *runs.values()]]
    printed = [text for output in outputs for text in output]
    study_attrs = json.dumps(study.user_attrs)
    server_log = (mlflow_server.folder / "server.log").read_text()
    assert not [text for text in [*recorded, *printed, study_attrs, server_log] if PASSWORD in text]


def test_a_worker_killed_mid_trial_is_found_by_its_heartbeat_and_the_study_completes(
        postgres_url, mlflow_server, worker_env, sweep_args, start_worker, tmp_path):
    """A worker "on another machine" is SIGKILLed while its trial runs: a worker that was running
    carries on; after the grace period the next start fails the silent trial (its run FAILED with the
    reason), runs its grid point again, and the study is complete with nothing run twice."""
    args, env = sweep_args("killed-worker", HALF_GRID), short_heartbeats(worker_env)
    storage = optuna.storages.RDBStorage(postgres_url)
    victim = start_worker(args, env, hold=str(tmp_path / "never"), machine="other-machine")
    killed = held_trial(storage, "killed-worker", victim)
    survivor = start_worker(args, env, hold=str(tmp_path / "go"))
    held_trial(storage, "killed-worker", survivor)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    (tmp_path / "go").touch()
    stdout, _ = finish(survivor)
    assert trials_run_now(stdout) == 3  # its own trial and the two left waiting
    assert optuna.load_study(study_name="killed-worker", storage=postgres_url).trials[killed.number].state == \
        TrialState.RUNNING  # nobody can tell yet

    time.sleep(GRACE + HEARTBEAT + 1)  # the killed trial's heartbeat is stale now
    stdout, _ = finish(start_worker(args, env))
    assert f"trials {killed.number}: left running by a dead worker, now FAIL" in stdout
    assert trials_run_now(stdout) == 1  # the killed trial's grid point, again

    study = optuna.load_study(study_name="killed-worker", storage=postgres_url)
    assert sorted(point(t) for t in study.get_trials(states=(TrialState.COMPLETE,))) == grid_points(HALF_GRID)
    assert [t.number for t in study.get_trials(states=(TrialState.FAIL,))] == [killed.number]
    assert len(study.trials) == 5
    _, runs = trial_runs(mlflow_server.url, "killed-worker")
    assert sorted(runs) == sorted(t.user_attrs["mlflow_run_id"] for t in study.trials)  # one run per trial
    dead = runs[killed.user_attrs["mlflow_run_id"]]
    assert dead.info.status == "FAILED" and dead.data.tags["optuna_state"] == "FAIL"
    assert "other-machine" in dead.data.tags["error"] and "heartbeat" in dead.data.tags["error"]
    assert {run.info.status for run in runs.values() if run is not dead} == {"FINISHED"}


def test_when_the_tracking_server_goes_away_the_trial_fails_and_nothing_is_lost(
        postgres_url, worker_env, sweep_args, start_worker, empty_mlflow_database, tmp_path):
    """MLflow stops answering mid-trial: the trial is recorded FAIL (not buffered) and the worker stops
    with one line; no trial is left RUNNING or lost, and once the server is back the same command
    completes the study and closes the failed trial's run."""
    server = MlflowServer(tmp_path / "server", free_port())
    server.folder.mkdir()
    server.start(empty_mlflow_database)
    args = sweep_args("tracking-outage", TWO_POINTS, tracking_uri=server.url)
    env = {**worker_env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}  # fail at once, not after minutes of retries
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        worker = start_worker(args, env, hold=str(tmp_path / "go"))
        failed = held_trial(storage, "tracking-outage", worker)
        server.stop(signal.SIGKILL)
        (tmp_path / "go").touch()
        _, stderr = finish(worker, exit_code=2)
        error = stderr.strip().splitlines()[-1]
        assert error.startswith(f"error: --tracking-uri {server.url}: MLflow could not record the trial")
        assert "Traceback" not in stderr

        study_id = storage.get_study_id_from_name("tracking-outage")
        trials = storage.get_all_trials(study_id)
        assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]  # none RUNNING, none lost
        assert trials[0].number == failed.number and error.endswith(trials[0].user_attrs["error"])

        server.start(empty_mlflow_database)
        stdout, _ = finish(start_worker(args, env))
        assert trials_run_now(stdout) == 2  # the waiting point and the failed one, again
        study = optuna.load_study(study_name="tracking-outage", storage=postgres_url)
        assert sorted(point(t) for t in study.get_trials(states=(TrialState.COMPLETE,))) == grid_points(TWO_POINTS)
        _, runs = trial_runs(server.url, "tracking-outage")
        closed = runs[failed.user_attrs["mlflow_run_id"]]
        assert closed.info.status == "FAILED" and closed.data.tags["error"].startswith("--tracking-uri")
    finally:
        server.stop()


def test_an_unreachable_storage_is_one_line_before_any_work(mlflow_server, sweep_args, instant_fid):
    url = f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    args = sweep_args("unreachable", TWO_POINTS)
    args[args.index("--storage") + 1] = url
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"error: --storage {redacted(url)}: cannot connect (OperationalError")
    assert PASSWORD not in result.output
    assert MlflowClient(tracking_uri=mlflow_server.url).get_experiment_by_name("unreachable") is None


def test_a_missing_database_driver_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # `import psycopg2` fails
    with pytest.raises(BenchError) as raised:
        open_storage(f"postgresql+psycopg2://bench:{PASSWORD}@127.0.0.1:1/studies")
    message = str(raised.value)
    assert message.startswith("--storage postgresql+psycopg2://bench:***@127.0.0.1:1/studies: cannot connect")
    assert "psycopg2" in message.partition("cannot connect")[2] and "install that driver" in message


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://bench:pw@db.lab:5432/studies", "postgresql://bench:***@db.lab:5432/studies"),
    ("postgresql+psycopg2://bench:p@ss:w@db/studies?sslmode=require",
     "postgresql+psycopg2://bench:***@db/studies?sslmode=require"),
    ("postgresql://bench@db/studies", "postgresql://bench@db/studies"),
    ("http://user:token@mlflow.lab:5000", "http://user:***@mlflow.lab:5000"),
    ("bench-studies.journal", "bench-studies.journal"),
])
def test_passwords_in_urls_are_redacted(url, shown):
    assert redacted(url) == shown


def test_heartbeat_settings_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("MASKGIT_BENCH_HEARTBEAT", raising=False)
    monkeypatch.delenv("MASKGIT_BENCH_GRACE", raising=False)
    assert heartbeat_settings() == (10, 30)
    monkeypatch.setenv("MASKGIT_BENCH_HEARTBEAT", "2")
    monkeypatch.setenv("MASKGIT_BENCH_GRACE", "5")
    assert heartbeat_settings() == (2, 5)
    monkeypatch.setenv("MASKGIT_BENCH_GRACE", "2")
    with pytest.raises(BenchError, match="MASKGIT_BENCH_GRACE=2: must be longer"):
        heartbeat_settings()
    monkeypatch.setenv("MASKGIT_BENCH_HEARTBEAT", "soon")
    with pytest.raises(BenchError, match="MASKGIT_BENCH_HEARTBEAT=soon: expected whole seconds"):
        heartbeat_settings()
