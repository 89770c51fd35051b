"""The command line as a newcomer meets it: --version, every command's help (a description, an
example, every option's default), plain error lines off a terminal, shell completion, and the two
servers' options (`bench ui`, `bench dashboard`) reaching what they start."""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import cli
from bench import package_version

PYPROJECT = Path(cli.__file__).resolve().parent / "pyproject.toml"
ANSI_ESCAPE = "\x1b["
TYPER_FLAGS = {"help", "version", "install_completion", "show_completion"}  # nothing to default


def invoke(args: list[str], **kwargs):
    return CliRunner().invoke(cli.app, [str(arg) for arg in args], **kwargs)


def command_paths(command, path=()) -> list[tuple[str, ...]]:
    """Every command and group under `command`, as the words that name it on the command line."""
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*path, name))
    return paths


ROOT = typer.main.get_command(cli.app)
COMMANDS = command_paths(ROOT)


def command_at(path: tuple[str, ...]):
    """The command or group that `path`'s words name."""
    command = ROOT
    for name in path:
        command = command.commands[name]
    return command


def pyproject_version() -> str:
    return tomllib.loads(PYPROJECT.read_text())["project"]["version"]


def test_version_prints_the_package_version():
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.output == f"maskgit-bench {pyproject_version()}\n"


def test_version_falls_back_to_pyproject_when_the_package_is_not_installed(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert package_version() == pyproject_version()


def test_every_shipped_model_file_is_package_data():
    """A file under maskgit/pretrained/ that no package-data pattern matches is left out of a wheel:
    the shipped model would load from a clone and not from an installed package."""
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["maskgit"]
    package = PYPROJECT.parent / "maskgit"
    shipped = [path.relative_to(package) for path in (package / "pretrained").rglob("*")
               if path.is_file() and "__pycache__" not in path.parts]
    assert any(path.suffix == ".toml" for path in shipped)  # catfaces' targets.toml
    unpackaged = [str(path) for path in shipped if not any(path.match(pattern) for pattern in patterns)]
    assert unpackaged == []


def test_the_documented_commands_exist():
    expected = {("data", "build"), ("data", "check"), ("data", "toyfaces"), ("fid",), ("train", "vqgan"),
                ("train", "transformer"), ("import-lab",), ("sweep",), ("report",), ("perf",), ("inpaint",),
                ("evaluate",), ("ui",), ("dashboard",)}
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "bench")
def test_every_help_has_a_description_and_an_example_without_colour(path):
    result = invoke([*path, "--help"])
    assert result.exit_code == 0, result.output
    text = "\n".join(line.strip() for line in result.output.splitlines())
    description = text.split("Usage:")[1].split("\n\n")[1]
    assert description and not description.startswith("Example") and "Example: bench" in text
    assert ANSI_ESCAPE not in result.output


def test_every_option_states_its_default_unless_required():
    for path in COMMANDS:
        for param in command_at(path).params:
            if isinstance(param, typer.core.TyperOption) and param.name not in TYPER_FLAGS:
                assert param.help, (path, param.name)
                assert param.required or "Default:" in param.help, (path, param.name)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "bench")
def test_every_option_is_named_whole_with_what_it_takes_at_80_columns(path):
    """No option name cut off (`--sampling-temperatu…`), no line past 80 columns, and every option
    that takes a value says what kind: INT, FLOAT, PATH, NAME, INT|LIST|RANGE, ..., never <str> or TEXT."""
    command = command_at(path)
    result = invoke([*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in result.output
    options = lines[lines.index("Options:"):]
    for param in command.params:
        if not isinstance(param, typer.core.TyperOption) or param.name in TYPER_FLAGS:
            continue
        names = " / ".join(param.opts + param.secondary_opts)
        shown = [line.split() for line in options if line.startswith(f"  {names} ") or line == f"  {names}"]
        assert shown, f"{names} is not named whole in `bench {' '.join(path)} --help`"
        if not param.is_flag:
            metavar = shown[0][1]
            assert metavar == param.metavar and not metavar.startswith("<") and metavar != "TEXT", (names, metavar)
            kind = param.bare_type()
            if kind in ("int", "float"):  # typed numbers say so; the decoding settings' text may be ranges
                assert kind.upper() in metavar, (names, metavar)
    assert "<str>" not in result.output and " TEXT" not in result.output


def test_every_preset_option_names_every_preset_of_the_registry():
    """--preset's help lists maskgit.presets.PRESETS (through bench.defaults.PRESET_USES, which the
    help reads without importing torch): a preset added to the registry and not to the help fails here."""
    from maskgit.presets import PRESETS

    preset_commands = []
    for path in COMMANDS:
        for param in command_at(path).params:
            if param.name == "preset":
                preset_commands.append(path)
                output = " ".join(invoke([*path, "--help"], terminal_width=80, env={"COLUMNS": "80"}).output.split())
                assert all(f"{name} (" in output for name in PRESETS), (path, output)
    assert set(preset_commands) == {("perf",), ("train", "vqgan"), ("train", "transformer")}


def test_shell_completion_is_offered():
    assert "--install-completion" in invoke(["--help"]).output


def test_an_error_is_one_line_coloured_only_on_a_terminal(tmp_path):
    missing = ["ui", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"]
    plain = invoke(missing)  # CliRunner's streams are not terminals
    assert plain.exit_code == 2
    assert plain.stderr.startswith("error: --tracking-uri") and len(plain.stderr.splitlines()) == 1
    assert ANSI_ESCAPE not in plain.stderr
    coloured = invoke(missing, color=True)
    assert coloured.stderr.startswith(ANSI_ESCAPE) and "error: --tracking-uri" in coloured.stderr


def test_ui_host_and_port_reach_mlflow_which_runs_no_job_workers(monkeypatch, tracking_uri):
    commands = []
    monkeypatch.setattr(os, "execv", lambda path, command: commands.append(command))
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    result = invoke(["ui", "--tracking-uri", tracking_uri, "--host", "0.0.0.0", "--port", "5123"])
    assert result.exit_code == 0, result.output
    command = commands[0]
    assert command[command.index("--host") + 1] == "0.0.0.0" and command[command.index("--port") + 1] == "5123"
    assert command[command.index("--workers") + 1] == "1"
    assert os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_dashboard_serves_the_journal_on_localhost(monkeypatch, tmp_path):
    from optuna.storages.journal import JournalStorage

    from bench.study import open_storage

    import optuna_dashboard  # in the test extra

    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, host, port: served.append((storage, host, port)))
    journal = tmp_path / "studies.journal"
    open_storage(str(journal))  # an empty journal file
    result = invoke(["dashboard", "--storage", journal, "--port", "8123"])
    assert result.exit_code == 0, result.output
    storage, host, port = served[0]
    assert isinstance(storage, JournalStorage) and (host, port) == ("127.0.0.1", 8123)


def test_dashboard_refuses_a_journal_that_does_not_exist(tmp_path):
    result = invoke(["dashboard", "--storage", tmp_path / "typo.journal"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --storage ")
    assert "no such journal file" in result.stderr and not (tmp_path / "typo.journal").exists()


READ_ONLY_COMMANDS = {
    "compare": ["compare", "study:0", "study:1"],
    "report": ["report", "--out", "report"],
    "inpaint --from-run": ["inpaint", "--from-run", "0" * 32, "--out", "out"],
    "ui": ["ui"],
}
"""Commands that read what sweeps recorded: a mistyped sqlite store must not be created empty."""


@pytest.mark.parametrize("command", list(READ_ONLY_COMMANDS))
def test_reading_commands_refuse_a_missing_sqlite_store_and_create_none(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "typo" / "mlflow.db"
    (tmp_path / "typo").mkdir()
    uri = f"sqlite:///{database}"
    result = invoke([*READ_ONLY_COMMANDS[command], "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"error: --tracking-uri {uri}: no such database {database} "
                                          "(run `bench sweep` first)"]
    assert list(tmp_path.rglob("*")) == [tmp_path / "typo"]  # no store, no output folder


def test_dashboard_without_its_extra_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails as if not installed
    result = invoke(["dashboard", "--storage", tmp_path / "studies.journal"])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "pip install 'maskgit-bench[dashboard]'" in result.stderr
