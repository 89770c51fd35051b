"""MLflow plumbing shared by training and sweeps."""

from __future__ import annotations

import os
import platform

import torch

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def setup_mlflow(tracking_uri: str | None, experiment: str):
    """Point MLflow at the store and experiment; returns the mlflow module (imported lazily: it is slow)."""
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri or DEFAULT_TRACKING_URI)
    mlflow.set_experiment(experiment)
    return mlflow


def environment_tags(device: str) -> dict[str, str]:
    import mlflow
    import optuna

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


def resolve_device(device: str) -> str:
    """`auto` -> CUDA when present, else CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
