"""The two web UIs in a real headless Chromium, on a tiny recorded study (stand-in FID, 2 trials of
T = 2): `bench ui` lists the trial runs and serves their FID-vs-step curves, `bench dashboard` shows
the study. Each server is started as a user starts it (`bench ui|dashboard --port N`, a process of
its own on a free port of 127.0.0.1).

Needs Debian's chromium and chromium-driver (.ci/run installs them); Selenium is pointed at them and
never downloads a browser. Screenshots go to $MASKGIT_BENCH_TEST_ARTIFACTS when set (CI keeps them),
else stay in the test's tmp_path; their paths are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
import torch
from mlflow import MlflowClient

import cli
from bench.offline import TELEMETRY_OFF
from bench.study import build_sweep_config, open_storage, run_sweep

BROWSER_PROGRAMS = ("chromium", "chromedriver")  # Debian's, on the PATH
CLI = Path(cli.__file__).resolve()
ARTIFACTS_ENV = "MASKGIT_BENCH_TEST_ARTIFACTS"
STUDY = "browser-study"
TRIAL_RUNS = ("trial-000", "trial-001")
SERVER_START_S = 120  # importing MLflow on a busy 2-core machine takes a while
PAGE_LOAD_S = 60
MLFLOW_QUIET_MARKERS = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS")  # MLflow sends nothing under these
USAGE_DATA_BANNER = "collects usage data"  # MLflow 3's home-page alert about its telemetry
NESTED_RUNS_EXPANDER = "button[data-component-id*='runnamecellrenderer']"  # MLflow 3's run-name cell

@pytest.fixture(scope="module")
def recorded(tmp_path_factory, empty_mlflow_database, instant_fid_context, tiny_checkpoint, tiny_test_set):
    """(folder, tracking URI, journal path) of a finished grid study: cosine and linear at T = 2."""
    folder = tmp_path_factory.mktemp("recorded")
    shutil.copyfile(empty_mlflow_database, folder / "mlflow.db")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    journal = folder / "studies.journal"
    config = build_sweep_config({"schedule": ["cosine", "linear"], "steps": "2"}, None, study_name=STUDY,
                                sampler="grid", storage=str(journal), tracking_uri=tracking_uri,
                                data=str(tiny_test_set), checkpoint=str(tiny_checkpoint), batch_size=4,
                                device="cpu", progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with instant_fid_context():
            assert run_sweep(config).counts["COMPLETE"] == 2
    finally:
        torch.set_num_threads(threads)
    return folder, tracking_uri, journal


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, driven through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = programs = [shutil.which(name) for name in BROWSER_PROGRAMS]
    missing = [name for name, path in zip(BROWSER_PROGRAMS, programs) if path is None]
    if missing:  # a failure, not a skip: CI installs them (.ci/run), so missing means broken set-up
        pytest.fail(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (see .ci/run)")

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,900"):
        options.add_argument(argument)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch a browser or driver
        driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(PAGE_LOAD_S)
    yield driver
    driver.quit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(args: list[str], ready_path: str, folder: Path):
    """`bench ARGS --port N` in a session of its own, yielding its URL once ready_path answers; the
    whole session is stopped afterwards (`mlflow ui` runs its server as a child process)."""
    port = free_port()
    log = folder / f"{args[0]}-server.log"
    with log.open("w") as output:
        server = subprocess.Popen([sys.executable, str(CLI), *args, "--port", str(port)], cwd=folder,
                                  env=users_environment(), stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url + ready_path, server, log)
        yield url
    finally:
        stop(server)


def users_environment() -> dict[str, str]:
    """This environment as a user's shell has it: without the telemetry switches that importing
    `bench` set here, nor the markers of a test run that make MLflow quiet by itself."""
    return {k: v for k, v in os.environ.items() if k not in (*TELEMETRY_OFF, *MLFLOW_QUIET_MARKERS)}


def wait_until_ready(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's whole session (MLflow's uvicorn child too); SIGKILL if it lingers."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:  # the session is gone already
        server.wait()
        return
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def wait_for(driver, condition, what: str):
    """condition(driver)'s first truthy value; both UIs are React apps that fill in after loading."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, PAGE_LOAD_S, poll_frequency=0.5).until(condition)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        pytest.fail(f"{driver.current_url}: no {what} within {PAGE_LOAD_S} s; the page shows:\n{body[:2000]}")


def wait_for_texts(driver, texts) -> None:
    def shows_all(page):
        body = page.find_element("tag name", "body").text
        return all(text in body for text in texts)

    wait_for(driver, shows_all, f"text {', '.join(texts)}")


def expand_the_sweep_run(driver) -> None:
    """Click the sweep's parent run open: MLflow lists its trial runs (nested runs) folded under it."""
    from selenium.webdriver.support import expected_conditions

    expander = ("css selector", NESTED_RUNS_EXPANDER)
    wait_for(driver, expected_conditions.element_to_be_clickable(expander), "expandable parent run").click()


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    """Save the page as NAME.png in tmp_path, copied to $MASKGIT_BENCH_TEST_ARTIFACTS when set."""
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 0
    if os.environ.get(ARTIFACTS_ENV):
        keep = Path(os.environ[ARTIFACTS_ENV])
        keep.mkdir(parents=True, exist_ok=True)
        path = Path(shutil.copy2(path, keep / path.name))
    print(f"screenshot: {path}")
    return path


def test_the_mlflow_ui_lists_the_trials_and_serves_their_fid_curves(recorded, browser, tmp_path):
    folder, tracking_uri, journal = recorded
    experiment_id = MlflowClient(tracking_uri).get_experiment_by_name(STUDY).experiment_id
    trials = optuna.load_study(study_name=STUDY, storage=open_storage(str(journal))).trials
    with serving(["ui", "--tracking-uri", tracking_uri], "/health", folder) as url:
        browser.get(f"{url}/#/experiments/{experiment_id}/runs")
        expand_the_sweep_run(browser)
        wait_for_texts(browser, TRIAL_RUNS)
        screenshot(browser, tmp_path, "mlflow-ui-experiment")
        for trial in trials:
            run_id = trial.user_attrs["mlflow_run_id"]
            history = get_json(f"{url}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=fid")
            curve = {int(point["step"]): point["value"] for point in history["metrics"]}
            assert len(history["metrics"]) == 2 and curve == trial.intermediate_values


def test_the_mlflow_ui_of_bench_ui_sends_no_usage_data(recorded, browser, tmp_path):
    """`bench ui` started as a user starts it: its server tells the page not to send usage data and
    drops what a page posts; the home page shows no banner about collecting usage data."""
    folder, tracking_uri, _ = recorded
    with serving(["ui", "--tracking-uri", tracking_uri], "/health", folder) as url:
        config = get_json(f"{url}/ajax-api/3.0/mlflow/ui-telemetry")
        assert config["disable_ui_telemetry"] is True and config["ui_rollout_percentage"] == 0
        posted = urllib.request.Request(f"{url}/ajax-api/3.0/mlflow/ui-telemetry", data=b'{"records": []}',
                                        headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(posted, timeout=30) as response:
            assert json.load(response) == {"status": "disabled"}
        browser.get(f"{url}/#/")
        wait_for_texts(browser, ["Welcome to MLflow", STUDY])
        screenshot(browser, tmp_path, "mlflow-ui-home")
        assert USAGE_DATA_BANNER not in browser.find_element("tag name", "body").text


def test_the_optuna_dashboard_shows_the_study(recorded, browser, tmp_path):
    folder, _, journal = recorded
    with serving(["dashboard", "--storage", str(journal)], "/api/studies", folder) as url:
        browser.get(f"{url}/dashboard")
        wait_for_texts(browser, [STUDY])
        screenshot(browser, tmp_path, "optuna-dashboard")
