"""Every `bench` command in the README and the shipped model cards parses: the command exists and every
option it uses exists and takes the value given. (What the commands do is tested in tests/bench; this
keeps the README from drifting away from the CLI.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """`bench ...` commands in the README's bash blocks (continuation lines joined, `&&` chains split)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "bench":
                    commands.append(" ".join(shlex.quote(w) for w in words if w != "&"))
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_the_commands_a_newcomer_runs():
    names = {" ".join(shlex.split(c)[:2]) for c in COMMANDS}
    assert {"bench sweep", "bench report", "bench ui", "bench dashboard", "bench import-lab",
            "bench data", "bench train"} <= names
    assert len(COMMANDS) >= 20


def test_the_readme_test_command_is_ci_run_which_fails_with_the_suite():
    """A fresh clone passes with the README's command alone: .ci/run installs what the suite needs,
    stops at the first failing step, and its exit status is pytest's."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert "bash .ci/run" in [line.strip() for block in blocks for line in block.splitlines()]
    script = (README.parent / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script and "pip install --quiet -e '.[test]'" in script
    assert script.rstrip().splitlines()[-1] == "exec python -m pytest -q"


def model_card_commands() -> list[str]:
    """`bench ...` commands with options quoted in the shipped models' cards (a bare `bench inpaint` names
    a command, it is not one to run)."""
    cards = sorted((README.parent / "maskgit" / "pretrained").glob("*/MODEL_CARD.md"))
    return [command for card in cards for command in re.findall(r"`(bench [^`]+)`", card.read_text())
            if " --" in command]


@pytest.mark.parametrize("command", COMMANDS + model_card_commands())
def test_a_readme_command_parses(command):
    group = typer.main.get_command(cli.app)
    command_object, args = group, shlex.split(command)[1:]
    while hasattr(command_object, "commands") and args and not args[0].startswith("-"):
        assert args[0] in command_object.commands, f"{command}: no command {args[0]!r}"
        command_object, args = command_object.commands[args[0]], args[1:]
    if command_object is group:  # options of `bench` itself (--version): known to the group
        known = {opt for param in group.params for opt in param.opts}
        assert all(arg in known for arg in args if arg.startswith("-")), command
        return
    command_object.make_context(command_object.name, list(args))  # raises on unknown options or bad values


def test_the_readmes_python_imports_exist():
    """Every name the README's Python examples import is where they import it from (a function moved to
    another module breaks the example a newcomer copies)."""
    import importlib

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    imports = [match for block in blocks for match in re.findall(r"^from (\S+) import (.+)$", block, flags=re.M)]
    assert imports
    for module, names in imports:
        imported = importlib.import_module(module)
        for name in names.split(","):
            assert hasattr(imported, name.strip()), f"README: from {module} import {name.strip()}"


def test_the_readme_says_what_the_default_sweep_does():
    """Quickstart step 2 describes the run `bench sweep --schedule cosine` makes: its images, its T values,
    its paste and the reference rows of its table (the numbers come from the code's defaults)."""
    from bench.defaults import DEFAULT_LIMIT, DEFAULT_STEPS, DEFAULT_SWEEP_COMPOSITE

    text = README.read_text()
    section = " ".join(text.split("### 2. Run a sweep")[1].split("### 3.")[0].split())  # lines joined
    steps = "T in {" + ", ".join(map(str, DEFAULT_STEPS)) + "}"
    assert f"{DEFAULT_LIMIT} test images" in section and steps in section
    assert f"`--composite {DEFAULT_SWEEP_COMPOSITE}`" in section
    assert "grey holes" in section and "harmonic fill" in section and "below a line" in section
    defaults = f"{DEFAULT_LIMIT} toy-face test images, {steps}, --composite {DEFAULT_SWEEP_COMPOSITE}"
    assert f"# embedded default: {defaults}" in text
