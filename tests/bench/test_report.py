"""bench.report: every figure drawn from a tiny recorded study, the tables hold the recorded numbers,
missing data becomes a note, unknown studies are one-line errors.

The studies are recorded by real sweeps (tiny random model, six toy faces, instant FID), so the
report reads exactly what `bench sweep` writes.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image
from typer.testing import CliRunner

from bench.errors import BenchError
from bench.report import FIGURES, make_report
from bench.study import build_sweep_config, open_storage, run_sweep
from cli import app

GRID = {"schedule": ["cosine", "linear"], "steps": "2,3", "choice_temperature": "1,4.5"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, empty_mlflow_database, instant_fid_context, tiny_checkpoint, tiny_test_set):
    """A grid study (2 schedules x T in {2, 3} x 2 temperatures) and a two-objective study."""
    folder = tmp_path_factory.mktemp("recorded")
    shutil.copyfile(empty_mlflow_database, folder / "mlflow.db")
    tracking_uri, storage = f"sqlite:///{folder / 'mlflow.db'}", str(folder / "studies.journal")
    common = dict(tracking_uri=tracking_uri, storage=storage, data=str(tiny_test_set), checkpoint=str(tiny_checkpoint),
                  batch_size=4, device="cpu", progress=False)
    with instant_fid_context():
        run_sweep(build_sweep_config(GRID, None, study_name="grid", sampler="grid", **common))
        run_sweep(build_sweep_config({"schedule": ["cosine"], "steps": "1..3"}, None, study_name="front",
                                     objective="fid+steps", n_trials=4, **common))
        run_sweep(build_sweep_config({"schedule": ["cosine"], "steps": "2"}, None, study_name="single", **common))
    return folder, tracking_uri, storage


def report(recorded, tmp_path, *studies, **options):
    folder, tracking_uri, storage = recorded
    return make_report(tracking_uri, studies, storage=storage, out=tmp_path / "report", **options)


def is_blank(path) -> bool:
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    return pixels.std() < 5 or min(pixels.shape) < 100


def test_every_figure_is_drawn_non_blank_and_referenced(recorded, tmp_path):
    result = report(recorded, tmp_path, "grid", "front")
    markdown = (result.out / "report.md").read_text()
    expected = [f"{key}.png" for key, _, _ in FIGURES] + ["best_progression.png", "best_latent_mask.png"]
    for name in expected:
        assert (result.out / name).is_file(), name
        assert not is_blank(result.out / name), name
        assert f"]({name})" in markdown, name
    assert "Not drawn" not in markdown
    assert "Settings shared by every trial: " in markdown and "composite = seamless" in markdown


def test_tables_hold_the_recorded_numbers(recorded, tmp_path):
    folder, tracking_uri, storage = recorded
    result = report(recorded, tmp_path, "grid")
    study = optuna.load_study(study_name="grid", storage=open_storage(storage))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 8
    trials = pd.read_csv(result.out / "trials.csv")
    recorded_fids = sorted(t.values[0] for t in complete)
    assert sorted(trials["best_fid"]) == pytest.approx(recorded_fids, rel=1e-12)
    markdown = (result.out / "report.md").read_text()
    for schedule in ("cosine", "linear"):
        best = min(t.values[0] for t in complete if t.params["schedule"] == schedule)
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {schedule} |"))
        assert f"{best:.2f}" in row
    parent = MlflowClient(tracking_uri).get_run(result.logged_to[0])
    for name, label in (("grey", "grey holes"), ("harmonic", "harmonic fill")):
        value = parent.data.metrics[f"baseline_{name}_fid"]
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {label} (reference) |"))
        assert f"| {value:.2f} |" in row
    assert f"FID **{recorded_fids[0]:.2f}**" in markdown


def test_the_report_is_logged_to_the_studys_parent_run(recorded, tmp_path):
    folder, tracking_uri, storage = recorded
    result = report(recorded, tmp_path, "grid")
    client = MlflowClient(tracking_uri)
    logged = {info.path for info in client.list_artifacts(result.logged_to[0], "report")}
    assert {"report/report.md", "report/fid_vs_step.png", "report/trials.csv"} <= logged
    assert "mlflow.parentRunId" not in client.get_run(result.logged_to[0]).data.tags


def test_missing_data_gives_notes_not_a_crash(recorded, tmp_path):
    result = report(recorded, tmp_path, "single", log=False)
    markdown = (result.out / "report.md").read_text()
    notes = {s.key: s.text for s in result.sections if s.file is None}
    assert {"best_and_final_vs_steps", "temperature", "optuna_importance", "pareto_front"} <= set(notes)
    assert all(text.startswith("Not drawn: ") for text in notes.values())
    assert markdown.count("Not drawn: ") == len(notes)
    assert not (result.out / "temperature.png").exists()
    assert (result.out / "fid_vs_step.png").is_file() and not result.logged_to


def test_the_chosen_t_sets_the_step_figures(recorded, tmp_path):
    result = report(recorded, tmp_path, "grid", steps=3, log=False)
    assert "T = 3" in (result.out / "report.md").read_text()
    with pytest.raises(BenchError, match=r"^--steps 7: no complete trial used T = 7 \(recorded: 2, 3\)$"):
        report(recorded, tmp_path, "grid", steps=7, log=False)


def test_without_optuna_storage_the_optuna_figures_are_notes(recorded, tmp_path):
    folder, tracking_uri, storage = recorded
    result = make_report(tracking_uri, experiments=["grid"], storage=str(tmp_path / "absent.journal"),
                         out=tmp_path / "report", log=False)
    notes = {s.key for s in result.sections if s.file is None}
    assert {"optuna_history", "optuna_importance", "pareto_front"} <= notes
    assert (result.out / "fid_vs_step.png").is_file()


def test_cli_unknown_study_is_a_one_line_error(recorded, tmp_path):
    folder, tracking_uri, storage = recorded
    before = (folder / "mlflow.db").read_bytes()
    result = CliRunner().invoke(app, ["report", "--study", "nope", "--tracking-uri", tracking_uri,
                                      "--storage", storage, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and re.match(r"error: --study nope: no such study in .* \(recorded: .*grid.*\)$", lines[0])
    assert not (tmp_path / "r").exists()
    assert (folder / "mlflow.db").read_bytes() == before


def test_cli_writes_the_report_of_the_newest_study_by_default(recorded, tmp_path, monkeypatch):
    folder, tracking_uri, storage = recorded
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", "--tracking-uri", tracking_uri, "--storage", storage, "--no-log"])
    assert result.exit_code == 0, result.output
    assert "wrote reports/single/report.md" in result.output
    assert (tmp_path / "reports" / "single" / "fid_vs_step.png").is_file()
