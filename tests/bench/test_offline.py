"""Offline by default: `bench` turns MLflow's usage telemetry off for itself and every process it
starts unless the user opted in, and studies' experiments open in MLflow's model-training view."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.offline import TELEMETRY_OFF, disable_telemetry
from bench.tracking import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND, ensure_experiment, tracking_client

# MLflow also stays quiet under pytest and CI on its own; the child processes below run without these
# markers, so what they report is bench's doing.
MLFLOW_QUIET_MARKERS = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS")

REPORT_TELEMETRY = """
import json, os
import cli  # what `bench` imports first
from mlflow.telemetry.utils import is_telemetry_disabled
print(json.dumps({"disabled": is_telemetry_disabled(),
                  "env": {name: os.environ.get(name) for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}}))
"""
REPORT_HOME_PAGE = """
import json
from bench.offline import USAGE_BANNER_DISMISSED, create_mlflow_app
create_mlflow_app()  # as `mlflow ui --app-name maskgit-bench` does in bench ui's server
from mlflow.server import app
page = app.test_client().get("/").get_data(as_text=True)
print(json.dumps({"banner_marked_read": USAGE_BANNER_DISMISSED in page, "mlflow_page": "<title>MLflow" in page}))
"""


def child_report(script: str, **env: str) -> dict:
    """The JSON a fresh process running `script` prints, its environment the user's plus `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in (*MLFLOW_QUIET_MARKERS, *TELEMETRY_OFF)}
    result = subprocess.run([sys.executable, "-c", script], env=clean | env,
                            capture_output=True, text=True, timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_disable_telemetry_sets_both_variables_unless_the_user_chose():
    environ: dict[str, str] = {}
    disable_telemetry(environ)
    assert environ == {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    for choice in ({"MLFLOW_DISABLE_TELEMETRY": "false"}, {"DO_NOT_TRACK": "false"}):
        opted_in = dict(choice)
        disable_telemetry(opted_in)
        assert opted_in == choice


def test_a_bench_process_and_what_it_starts_send_no_telemetry():
    """Children inherit the environment: sweep workers and `bench ui`'s exec'd `mlflow ui` alike."""
    report = child_report(REPORT_TELEMETRY)
    assert report == {"disabled": True, "env": TELEMETRY_OFF}


def test_a_user_who_opts_in_gets_mlflow_telemetry():
    """The control for the test above: with no marker of a test or CI, MLflow would report usage."""
    report = child_report(REPORT_TELEMETRY, MLFLOW_DISABLE_TELEMETRY="false")
    assert report == {"disabled": False, "env": {"MLFLOW_DISABLE_TELEMETRY": "false", "DO_NOT_TRACK": None}}


def test_bench_uis_page_marks_the_usage_banner_read_only_while_nothing_is_sent():
    """MLflow's home-page banner ("MLflow collects usage data") reads only the browser's storage;
    bench ui's page sets that entry while telemetry is off, and leaves it to a user who opted in.
    (tests/bench/test_browser.py checks the page in Chromium.)"""
    assert child_report(REPORT_HOME_PAGE) == {"banner_marked_read": True, "mlflow_page": True}
    opted_in = child_report(REPORT_HOME_PAGE, MLFLOW_DISABLE_TELEMETRY="false")
    assert opted_in == {"banner_marked_read": False, "mlflow_page": True}


def test_experiments_open_in_the_model_training_view(tracking_uri):
    client = tracking_client(tracking_uri)
    created = ensure_experiment(client, "kind-study", tracking_uri)
    assert client.get_experiment(created).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"

    older = client.create_experiment("made-before-the-tag")  # e.g. by an earlier version of bench
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(older).tags
    assert ensure_experiment(client, "made-before-the-tag", tracking_uri) == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND


@pytest.mark.parametrize("kind", ["genai_development", "custom_model_development"])
def test_a_kind_the_user_chose_is_kept(tracking_uri, kind):
    client = tracking_client(tracking_uri)
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: kind})
    ensure_experiment(client, "chosen", tracking_uri)
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == kind
