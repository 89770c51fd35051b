"""Offline by default: no `bench` command, and no server one starts, sends usage data anywhere.

MLflow 3 reports usage to its maintainers unless MLFLOW_DISABLE_TELEMETRY or DO_NOT_TRACK is true;
its servers also tell the UI whether to. Importing `bench` sets both before MLflow is imported, in
this process and so in every process it starts (workers, `bench ui`'s server). A user who set
either variable has chosen: nothing is changed then (opting in: MLFLOW_DISABLE_TELEMETRY=false).
Optuna and optuna-dashboard collect nothing.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
# The MLflow UI's home page shows "MLflow collects usage data..." until this browser-storage entry
# (the UI's key, suffixed _v<version>) is true: it never asks the server whether anything is collected.
USAGE_BANNER_DISMISSED = "mlflow.telemetry.info.alert.dismissed_v1"
MLFLOW_APP_NAME = "maskgit-bench"  # this module's create_mlflow_app, registered as an "mlflow.app" plugin


def disable_telemetry(environ: MutableMapping[str, str] = os.environ) -> None:
    """Turn usage reporting off in `environ`, unless the user set either variable."""
    if not any(name in environ for name in TELEMETRY_OFF):
        environ.update(TELEMETRY_OFF)


def create_mlflow_app():
    """The server of `bench ui` (`mlflow ui --app-name maskgit-bench`): MLflow's own, except that while
    MLflow sends nothing its page marks the usage-data banner as read, so it does not claim otherwise."""
    from flask import Response
    from mlflow.server import app
    from mlflow.server.fastapi_app import create_fastapi_app
    from mlflow.telemetry.utils import is_telemetry_disabled

    if is_telemetry_disabled():
        page = Path(app.static_folder, "index.html").read_text(encoding="utf-8")
        read = f"<script>localStorage.setItem('{USAGE_BANNER_DISMISSED}', 'true')</script>"
        html = page.replace("<head>", "<head>" + read, 1)
        app.view_functions["serve"] = lambda: Response(html, mimetype="text/html")
    return create_fastapi_app(app)
