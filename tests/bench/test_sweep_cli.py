"""`bench sweep` and `bench ui` on the command line: help, a small run, and every invalid option failing
before any work with one line (exit 2) while existing studies and runs stay as they were."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from typer.testing import CliRunner

import cli
from bench import inception_weights as weights_lookup
from bench import toyfaces
from bench._sweep_outcome import INDISTINGUISHABLE_NOTE, grid_done_line
from bench.search_space import Choice, Range, build_space, load_study_file, option_dimension
from bench.study import build_sweep_config, open_storage

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STUDY = "sweep-cosine"


def invoke(args: list[str]):
    return CliRunner().invoke(cli.app, [str(arg) for arg in args])


def sweep_args(folder: Path, tracking_uri: str, checkpoint: Path, data: Path) -> list[str]:
    return ["sweep", "--schedule", "cosine", "--steps", "2", "--n-trials", "2", "--data", data,
            "--checkpoint", checkpoint, "--storage", folder / "studies.journal", "--tracking-uri", tracking_uri,
            "--batch-size", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def existing(tmp_path_factory, empty_mlflow_database, instant_fid_context, tiny_checkpoint, tiny_test_set):
    """A finished study (stand-in FID) that the invalid invocations must not touch."""
    folder = tmp_path_factory.mktemp("existing")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    shutil.copyfile(empty_mlflow_database, folder / "mlflow.db")
    args = sweep_args(folder, tracking_uri, tiny_checkpoint, tiny_test_set)
    with instant_fid_context():
        result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "(1 run now)" in result.output and "all done" not in result.output  # it ran the grid's one point
    return folder, tracking_uri, args


def snapshot(folder: Path, tracking_uri: str) -> tuple[bytes, int]:
    client = MlflowClient(tracking_uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments]) if experiments else []
    return (folder / "studies.journal").read_bytes(), len(runs)


def test_a_sweep_prints_the_best_trials_and_where_to_look(existing):
    folder, tracking_uri, args = existing
    result = invoke(args + ["--n-trials", "3", "--steps", "2", "--choice-temperature", "4.5"])
    assert result.exit_code == 0, result.output
    assert f"study {STUDY}" in result.output and "best trials" in result.output
    lines = result.output.splitlines()
    trial_row = next(i for i, line in enumerate(lines) if line.startswith("0 "))
    references = [i for i, line in enumerate(lines) if line.startswith(("grey holes ", "harmonic fill "))]
    assert len(references) == 2 and min(references) > trial_row
    assert "FID and KID on 6 test images (lower is better); paste (--composite): seamless, schedule: cosine" in lines
    assert f"bench ui --tracking-uri {tracking_uri}" in result.output.replace("\n", " ")
    assert "resume:" in result.output


def test_a_finished_grid_says_why_nothing_ran_and_how_to_get_more_trials(existing):
    """--n-trials on a grid study whose points are all done runs nothing: one line says so and how to
    get more trials, instead of a silent '0 run now'."""
    folder, tracking_uri, args = existing
    result = invoke(args + ["--n-trials", "6"])
    assert result.exit_code == 0, result.output
    assert "(0 run now)" in result.output
    line = grid_done_line(1)
    assert line in result.output.splitlines()
    assert line.startswith("the grid's 1 point is all done, so nothing ran (--n-trials adds no trials to a grid)")
    assert "new --study-name" in line and "--confirm K" in line


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


STUDY_FILES = {
    "no-seeds.toml": ("[study]\nseeds = 0\n", "--seeds must be at least 1 (got 0)"),
    "unknown-key.toml": ("[space]\nflavour = 'vanilla'\n", "unknown key space.flavour"),
    "bad-type.toml": ("[space]\nsteps = 'eight'\n", "space.steps: expected int"),
    "bad-study-key.toml": ("[study]\nsamplr = 'tpe'\n", "unknown key study.samplr"),
    "bad-range.toml": ("[space]\nsteps = { low = 4 }\n", "a range needs low and high"),
    "not-toml.toml": ("[space\n", "not valid TOML"),
}

INVALID = [
    (["--steps", "0"], "--steps: steps must be >= 1"),
    (["--steps", "5", "--sweet-spot", "9"], "--sweet-spot 9 is more than T = 5"),
    (["--schedule", "nope"], "--schedule: schedule 'nope' is unknown"),
    (["--choice-temperature", "-1"], "--choice-temperature: choice_temperature must be >= 0"),
    (["--sampling-temperature", "0"], "--sampling-temperature: sampling_temperature must be > 0"),
    (["--anneal", "sideways"], "--anneal: anneal 'sideways' is unknown"),
    (["--sampler", "annealing"], "--sampler 'annealing': unknown"),
    (["--objective", "fid+steps", "--pruner", "median"], "--pruner median: Optuna prunes single-objective"),
    (["--sampler", "grid", "--choice-temperature", "1..2"], "continuous range"),
    (["--limit", "1"], "--limit must be at least 2"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--seeds", "0"], "--seeds must be at least 1 (got 0)"),
    (["--seeds", "-2"], "--seeds must be at least 1 (got -2)"),
    (["--data", "/no/such/folder"], "/no/such/folder: missing folder"),
    (["--checkpoint", "/no/such/checkpoint"], "--checkpoint /no/such/checkpoint: no such checkpoint"),
    (["--storage", "/no/such/dir/studies.journal"], "--storage /no/such/dir/studies.journal: folder"),
    (["--storage", "postgresql://bench@127.0.0.1:9/studies"], "--storage postgresql://bench@127.0.0.1:9/studies: "
                                                             "cannot connect"),
    (["--tracking-uri", "sqlite:////no/such/dir/mlflow.db"], "--tracking-uri sqlite:////no/such/dir/mlflow.db"),
    (["--limit", "4"], f"--study-name {STUDY}: the study was run with data_hash"),
    (["--objective", "fid+seconds"], f"--study-name {STUDY}: the study has 1 objective(s)"),
    (["--anneal", "linear,none"], f"--study-name {STUDY}: its trials searched anneal differently"),
    (["--study-file", "/no/such/study.toml"], "--study-file /no/such/study.toml: no such file"),
    *[(["--study-file", name], message) for name, (_, message) in STUDY_FILES.items()],
    (["--checkpoint", "TRUNCATED"], "model.safetensors: unreadable or truncated safetensors file"),
    (["--checkpoint", "MISFIT"], "has shape (16, 16, 3, 3), the model expects (24, 16, 3, 3)"),
    (["--data", "MASK_MISSING"], "mask64"),
    (["--data", "TRUNCATED_PNG"], "image_001.png: unreadable image"),
]


def truncated_checkpoint(folder: Path, checkpoint: Path, data: Path) -> Path:
    copy = Path(shutil.copytree(checkpoint, folder / "truncated"))
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return copy


def misfit_checkpoint(folder: Path, checkpoint: Path, data: Path) -> Path:
    """A config whose shapes the weights do not have (latent dim 16 -> 24)."""
    copy = Path(shutil.copytree(checkpoint, folder / "misfit"))
    config = json.loads((copy / "config.json").read_text())
    config["vqgan"]["latent_dim"] = 24
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def mask_missing(folder: Path, checkpoint: Path, data: Path) -> Path:
    copy = Path(shutil.copytree(data, folder / "mask-missing"))
    next((copy / "mask64").iterdir()).unlink()
    return copy


def truncated_png(folder: Path, checkpoint: Path, data: Path) -> Path:
    copy = Path(shutil.copytree(data, folder / "truncated-png"))
    png = copy / "masked_image" / "image_001.png"
    png.write_bytes(png.read_bytes()[:200])
    return copy


BAD_INPUTS = {"TRUNCATED": truncated_checkpoint, "MISFIT": misfit_checkpoint, "MASK_MISSING": mask_missing,
              "TRUNCATED_PNG": truncated_png}


@pytest.mark.parametrize("extra, message", INVALID, ids=[" ".join(map(str, extra)) for extra, _ in INVALID])
def test_an_invalid_option_fails_first_with_one_line(existing, extra, message, tmp_path, tiny_checkpoint,
                                                    tiny_test_set):
    folder, tracking_uri, args = existing
    for name, (text, _) in STUDY_FILES.items():
        write(tmp_path, name, text)
    extra = [str(tmp_path / arg) if arg in STUDY_FILES else
             str(BAD_INPUTS[arg](tmp_path, tiny_checkpoint, tiny_test_set)) if arg in BAD_INPUTS else arg
             for arg in extra]
    before = snapshot(folder, tracking_uri)
    result = invoke(args + extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert snapshot(folder, tracking_uri) == before


def test_the_readmes_first_command_runs_end_to_end(tmp_path, monkeypatch, inception_weights):
    """`bench sweep --schedule cosine`, the README's first command, in a fresh folder with an empty
    cache: the embedded toy-face benchmark is built, the shipped toyfaces model decodes, real FIDs are
    computed and the study and its MLflow runs land beside the command. Kept fast by --limit 4 and a
    benchmark built with fewer train and validation images (the test images are drawn alike). Printed at
    rich's width off a terminal (80 columns), the table reads uncut and the best trial gets a paired
    verdict against each reference."""
    real_build = toyfaces.build_toyfaces_benchmark
    monkeypatch.setattr(toyfaces, "build_toyfaces_benchmark",
                        lambda out: real_build(out, n_train=8, n_val=2, n_test=6))
    monkeypatch.setenv("MASKGIT_BENCH_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(weights_lookup.WEIGHTS_ENV, str(inception_weights))  # converted once per session
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(["sweep", "--schedule", "cosine", "--limit", "4"])
    assert result.exit_code == 0, result.output
    assert f"study {STUDY}" in result.output and "bench ui" in result.output
    assert INDISTINGUISHABLE_NOTE in result.output  # which trials the best is not told apart from
    assert "vs best" in result.output and "…" not in result.output  # the table fits 80 columns uncut
    lines = result.output.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if "best trials of" in line):
                  next(i for i, line in enumerate(lines) if line.startswith("FID and KID on"))]
    assert max(map(len, table)) <= 80
    best = next(line for line in table if line[:1].isdigit()).split()[0]
    for label in ("harmonic fill", "grey holes"):
        assert re.search(rf"^best trial {best} - {label}: (no detectable difference|.* is better than .* by) ",
                         result.output, re.MULTILINE), result.output
    assert "point estimates only" not in result.output
    assert (tmp_path / "cache" / toyfaces.BENCHMARK_NAME / "benchmark.json").is_file()

    study = optuna.load_study(study_name=STUDY, storage=open_storage("bench-studies.journal"))
    trials = study.get_trials()
    assert trials and all(t.state == TrialState.COMPLETE for t in trials)
    client = MlflowClient("sqlite:///mlflow.db")
    for trial in trials:
        assert trial.params["schedule"] == "cosine"
        assert sorted(trial.intermediate_values) == list(range(1, trial.params["steps"] + 1))
        assert all(math.isfinite(v) and v > 0 for v in trial.intermediate_values.values())
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.params["n_images"] == "4" and run.data.metrics["best_fid"] == trial.value


def test_the_default_model_missing_is_a_clear_error(tmp_path, tracking_uri, monkeypatch):
    from maskgit import checkpoints

    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path / "no-shipped-models")
    result = invoke(["sweep", "--schedule", "cosine", "--storage", tmp_path / "s.journal",
                     "--tracking-uri", tracking_uri])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --checkpoint toyfaces: no such checkpoint")
    assert "pass --checkpoint PATH" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_ui_serves_the_store_on_localhost(monkeypatch, tmp_path, tracking_uri):
    import os

    commands = []
    monkeypatch.setattr(os, "execv", lambda path, command: commands.append(command))
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)  # restored afterwards
    result = invoke(["ui", "--tracking-uri", tracking_uri, "--port", "5123"])
    assert result.exit_code == 0, result.output
    command = commands[0]
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--port") + 1] == "5123"
    assert command[command.index("--backend-store-uri") + 1] == tracking_uri
    assert command[command.index("--app-name") + 1] == "maskgit-bench"  # bench/offline.py: no usage banner
    missing = invoke(["ui", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"])
    assert missing.exit_code == 2 and "no such database" in missing.stderr


# --- search spaces: option text and study files ----------------------------------------------------

STUDIES = Path(cli.__file__).parent / "studies"


@pytest.mark.parametrize("name, text, expected", [
    ("steps", "8", Choice((8,))),
    ("steps", "5,8,13", Choice((5, 8, 13))),
    ("steps", "4..16", Range(4, 16)),
    ("choice_temperature", "0.5..8:log", Range(0.5, 8.0, log=True)),
    ("choice_temperature", "0..1:0.25", Range(0.0, 1.0, step=0.25)),
    ("sampling", "on,off", Choice((True, False))),
    ("sweet_spot", "auto", Choice(("auto",))),
    ("sweet_spot", "any", Range(1, None)),
    ("schedule", ["cosine", "pow2.5"], Choice(("cosine", "pow2.5"))),
])
def test_option_text_becomes_a_dimension(name, text, expected):
    assert option_dimension(name, text) == expected


def test_a_grid_limits_sweet_spots_to_each_t():
    space = build_space(None, {"schedule": Choice(("cosine",)), "steps": Choice((2, 3)), "sweet_spot": Range(1, None)})
    assert [(p["steps"], p["sweet_spot"]) for p in space.grid()] == [(2, 1), (2, 2), (3, 1), (3, 2), (3, 3)]


def test_every_shipped_study_file_is_valid():
    files = sorted(STUDIES.glob("*.toml"))
    assert {f.stem for f in files} >= {"seed-report", "default", "temperature", "all-schedules"}
    for path in files:
        config = build_sweep_config({}, path)
        assert config.study_name == path.stem and load_study_file(path).description.strip()
        if config.sampler_name == "grid":
            assert config.space.grid()


def test_the_seed_report_study_reproduces_its_experiment():
    config = build_sweep_config({}, STUDIES / "seed-report.toml")
    points = config.space.grid()
    assert sorted((p["schedule"], p["steps"]) for p in points) == sorted(
        (schedule, t) for schedule in ("linear", "lab-cosine", "square") for t in (5, 8, 13))
    assert {(p["sweet_spot"], p["confidence"]) for p in points} == {("auto", "prob")}
    assert config.space.dims["steps"] == Choice((5, 8, 13))


def test_options_given_override_the_study_file():
    config = build_sweep_config({"steps": "4"}, STUDIES / "seed-report.toml", sampler="random", n_trials=2)
    assert config.space.dims["steps"] == Choice((4,)) and config.space.dims["confidence"] == Choice(("prob",))
    assert config.sampler_name == "random" and config.n_trials == 2 and config.study_name == "seed-report"
