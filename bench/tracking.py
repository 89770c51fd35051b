"""MLflow plumbing shared by training and sweeps."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from bench.defaults import DEFAULT_TRACKING_URI
from bench.errors import BenchError


def environment_tags(device: str) -> dict[str, str]:
    import mlflow
    import optuna
    import torch

    from bench import __version__

    tags = {
        "code_version": __version__,
        "device": device,
        "torch_version": torch.__version__,
        "mlflow_version": mlflow.__version__,
        "optuna_version": optuna.__version__,
        "python_version": platform.python_version(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        tags["gpu"] = torch.cuda.get_device_name()
    return tags


# --- sweeps: explicit clients and experiments (bench/study.py) -----------------------------------

ARTIFACTS_BESIDE_SQLITE = "mlartifacts"
# The MLflow UI opens an experiment in its model-training view (runs, metrics, charts) rather than its
# GenAI view (traces, prompts) when the experiment carries this tag; the UI's own name for the kind.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"


def tracking_client(tracking_uri: str):
    """An MlflowClient on the store, which must be reachable (a sqlite store is created here).

    Create it in the parent process before starting workers: processes creating one fresh sqlite
    store at once race on its schema migrations. The artifacts bench reads and writes are a few small
    files each, so MLflow's per-file progress bars are off (unless the user set the variable).
    """
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    database = sqlite_path(tracking_uri)
    if database is not None and not database.parent.is_dir():
        raise BenchError(f"--tracking-uri {tracking_uri}: folder {database.parent} does not exist")
    client = MlflowClient(tracking_uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:  # unreachable server, bad URI, unreadable database
        reason = " ".join(str(exc).split())[:300]
        raise BenchError(f"--tracking-uri {tracking_uri}: unreachable ({type(exc).__name__}: {reason})") from None
    return client


def recorded_store_client(tracking_uri: str):
    """`tracking_client` for commands that read what sweeps recorded (compare, report, inpaint --from-run):
    a sqlite store must already exist, else MLflow would create an empty one at a mistyped path."""
    require_existing_database(tracking_uri)
    return tracking_client(tracking_uri)


def require_existing_database(tracking_uri: str) -> None:
    """Refuse a sqlite:/// URI whose database file does not exist (other stores are checked on connecting)."""
    database = sqlite_path(tracking_uri)
    if database is not None and not database.is_file():
        raise BenchError(f"--tracking-uri {tracking_uri}: no such database {database} (run `bench sweep` first)")


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (relative to the working directory unless absolute)."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


def ensure_experiment(client, name: str, tracking_uri: str) -> str:
    """The experiment's id, created if needed (restored if deleted).

    With a sqlite store, artifacts go to mlartifacts/ beside the database rather than MLflow's
    default ./mlruns in whatever folder the command ran from.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        database = sqlite_path(tracking_uri)
        location = None
        if database is not None:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            location = (database.resolve().parent / ARTIFACTS_BESIDE_SQLITE / safe).as_uri()
        try:
            kind = {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            return client.create_experiment(name, artifact_location=location, tags=kind)
        except MlflowException:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before bench set the kind
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return experiment.experiment_id


def setup_mlflow(tracking_uri: str | None, experiment: str):
    """Point MLflow's fluent API at the store and experiment (artifacts beside a sqlite store, as for
    sweeps); returns the mlflow module (imported lazily: it is slow)."""
    uri = tracking_uri or DEFAULT_TRACKING_URI
    experiment_id = ensure_experiment(tracking_client(uri), experiment, uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    return mlflow


def run_mlflow_ui(tracking_uri: str, host: str, port: int) -> None:
    """Become `mlflow ui` on the store (exec: Ctrl-C and kill reach it directly).

    Without MLflow's server jobs (GenAI judges and scorers: seven more Python processes that a
    viewer of sweeps does not use), unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION says otherwise.
    """
    import sys

    require_existing_database(tracking_uri)
    command = mlflow_ui_command(tracking_uri, host, port)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    sys.stdout.flush()
    os.execv(command[0], command)


def mlflow_ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    """The `mlflow ui` command line of `bench ui`. One worker process: the UI serves one person, and
    MLflow's default of four would each import MLflow on a machine that is busy decoding. MLflow's
    app as bench/offline.py serves it (registered by installing maskgit-bench)."""
    import sys
    from importlib.metadata import entry_points

    from bench.offline import MLFLOW_APP_NAME

    if not entry_points(group="mlflow.app", name=MLFLOW_APP_NAME):
        raise BenchError("bench ui: maskgit-bench's MLflow app is not registered; reinstall: pip install -e .")

    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
            "--host", host, "--port", str(port), "--workers", "1", "--app-name", MLFLOW_APP_NAME]
