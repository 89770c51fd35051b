"""How `bench`'s help reads and how its commands show errors (the Typer app's group class), and the
options several commands share: a private sibling of cli.py, which only parses options and calls
bench (docs/architecture.md#layers)."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from bench.defaults import CPU_BATCH_SIZE, CUDA_BATCH_SIZE, DEFAULT_STORAGE, DEFAULT_TRACKING_URI, PRESET_USES
from bench.errors import BenchError


class BenchGroup(TyperGroup):
    """Shows a BenchError as one red line on stderr with exit code 2, no traceback (red on a
    terminal only: click strips colours from pipes and files)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _hide_repeated_defaults(self)
        _one_line_summaries(self)
        _typed_metavars(self)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None


def _hide_repeated_defaults(command) -> None:
    """Options whose help says "Default: ..." (often more than the bare value: "all of them",
    "cuda if available") need no second, automatic "[default: ...]" after it."""
    for param in command.params:
        if "Default:" in (getattr(param, "help", None) or ""):
            param.show_default = False
    for sub in getattr(command, "commands", {}).values():
        _hide_repeated_defaults(sub)


def _one_line_summaries(group) -> None:
    """A command's summary in its group's listing is its help's first paragraph, whole (click would cut
    it at 45 characters), joined from the docstring's lines."""
    for sub in group.commands.values():
        if sub.help and not sub.short_help:
            sub.short_help = " ".join(sub.help.split("\n\n")[0].split())
        if hasattr(sub, "commands"):
            _one_line_summaries(sub)


_METAVARS = {"int": "INT", "float": "FLOAT", "Path": "PATH"}


def _typed_metavars(command) -> None:
    """INT, FLOAT and PATH for the options of those types (Typer would show <int>, <path>), the
    metavars of _TEXT_METAVARS for text options that declare none (tests/test_cli.py checks them)."""
    for param in command.params:
        if param.param_type_name == "option" and param.metavar is None and not param.is_flag:
            kind = "Path" if param.type_descriptor.is_path else param.bare_type()
            param.metavar = _METAVARS.get(kind) or _TEXT_METAVARS.get(param.name)
        elif param.param_type_name == "argument" and param.name in _TEXT_METAVARS:  # TRIAL, not <str>
            param.display_type_rich = lambda ctx, kind=_TEXT_METAVARS[param.name]: kind
    for sub in getattr(command, "commands", {}).values():
        _typed_metavars(sub)


_TEXT_METAVARS = {"checkpoint": "PATH|NAME", "device": "DEVICE", "preset": "NAME", "protocol": "NAME",
                  "schedule": "NAME", "study": "NAME", "experiment": "NAME", "study_name": "NAME", "sampler": "NAME",
                  "objective": "NAME", "pruner": "NAME", "from_run": "RUN_ID", "host": "ADDRESS",
                  "composite": "LIST", "trial_a": "TRIAL", "trial_b": "TRIAL"}
"""Metavars of the text options that do not declare their own: the same name takes the same kind of
value in every command."""


PRESETS_HELP = ", ".join(f"{name} ({use})" for name, use in PRESET_USES.items())
"""Every preset with what it is for, as --preset's help lists them."""


def tracking_uri_option(what: str):
    return typer.Option(DEFAULT_TRACKING_URI, metavar="URI", help=f"{what}. Default: {DEFAULT_TRACKING_URI}.")


def storage_option(what: str):
    return typer.Option(DEFAULT_STORAGE, metavar="PATH|URL", help=f"{what}. Default: {DEFAULT_STORAGE}.")


def batch_size_option(what: str, **checks):
    return typer.Option(None, **checks, help=f"{what}. Default: {CPU_BATCH_SIZE} on the CPU, {CUDA_BATCH_SIZE} "
                                             "on CUDA.")
