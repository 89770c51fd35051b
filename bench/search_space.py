"""Search spaces: the values each trial setting may take, from a study file and command-line options.

Every setting of `bench.trial.TrialSettings` is a dimension: a `Choice` (one value = fixed) or a
`Range` (low..high, optionally log or stepped). Defaults come from the settings' own defaults, a
study file (`studies/NAME.toml`) replaces them, and options given on the command line replace
those. Everything is validated here, before any study or run exists.

Study file format::

    description = "what this study is for"
    [study]                 # run options; command-line options win
    sampler = "grid"        # name, sampler, objective, pruner, n_trials, timeout, limit, seeds
    [space]                 # settings; a scalar is fixed, an array is a choice, a table a range
    schedule = ["linear", "cosine"]
    steps = [5, 8, 13]
    choice_temperature = { low = 0.5, high = 8.0, log = true }
    sweet_spot = "auto"     # auto | any (every step 1..T) | a step | steps | { low, high }

On the command line the same is written as text: `8` (fixed), `5,8,13` (choice), `4..16` (range),
`0.5..8:log` (log range), `0..1:0.25` (stepped range).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution, check_distribution_compatibility)

from bench.defaults import DEFAULT_STEPS, DEFAULT_SWEEP_COMPOSITE
from bench.errors import BenchError
from bench.trial import AUTO, SETTING_TYPES, TrialSettings, parse_setting
from maskgit.schedules import schedule_names

ANY = "any"  # the sweet spot sampled from every step 1..T
Value = int | float | str | bool


@dataclass(frozen=True)
class Choice:
    """One of these values; a single value fixes the setting."""

    values: tuple[Value, ...]


@dataclass(frozen=True)
class Range:
    """A number in [low, high]; `high` None (sweet spot only) means up to the trial's T."""

    low: int | float
    high: int | float | None
    log: bool = False
    step: int | float | None = None


Dimension = Choice | Range


def default_dimensions() -> dict[str, Dimension]:
    """No options at all: every registered schedule, a few T values, the shipped models' paste, the
    rest at their defaults."""
    defaults = TrialSettings().params()
    dims: dict[str, Dimension] = {name: Choice((value,)) for name, value in defaults.items()}
    dims["schedule"] = Choice(tuple(schedule_names()))
    dims["steps"] = Choice(DEFAULT_STEPS)
    dims["composite"] = Choice((DEFAULT_SWEEP_COMPOSITE,))
    return dims


# --- the space --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSpace:
    """A dimension for every setting, in the settings' order (steps before the sweet spot)."""

    dims: dict[str, Dimension] = field(default_factory=default_dimensions)

    def suggest(self, trial: optuna.Trial) -> TrialSettings:
        """The trial's settings, asked of Optuna; every setting becomes a trial param (fixed ones too)."""
        params: dict[str, Value] = {}
        for name, dim in self.dims.items():
            params[name] = _suggest(trial, name, dim, params)
        return TrialSettings.from_params(params)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna's distribution per setting (a sweet spot up to T as if T were its low end)."""
        return {name: _distribution(dim) for name, dim in self.dims.items()}

    def incompatible_with(self, recorded: Mapping[str, BaseDistribution]) -> str | None:
        """The first setting whose distribution Optuna would refuse next to one recorded in a study."""
        planned = self.distributions()
        for name, old in recorded.items():
            if name in planned:
                try:
                    check_distribution_compatibility(old, planned[name])
                except ValueError:
                    return name
        return None

    def grid(self) -> list[dict[str, Value]]:
        """Every combination of values (sweet spots limited to each T); for the grid sampler."""
        return list(self._grid_points())

    def grid_has_at_most(self, count: int) -> bool:
        """Whether the grid is finite with at most `count` points (a large one is not listed)."""
        try:
            return sum(1 for _ in itertools.islice(self._grid_points(), count + 1)) <= count
        except BenchError:
            return False

    def _grid_points(self) -> Iterator[dict[str, Value]]:
        for name, dim in self.dims.items():
            if isinstance(dim, Range) and SETTING_TYPES[name] is float and dim.step is None:
                raise BenchError(f"--sampler grid: {name} is a continuous range; give choices or a step "
                                 f"(e.g. {dim.low}..{dim.high}:0.5)")
        yield from _combinations(list(self.dims.items()), {})

    def describe(self) -> dict[str, object]:
        """JSON-friendly: fixed values as themselves, choices as lists, ranges as tables."""
        return {name: _describe(dim) for name, dim in self.dims.items()}


def _suggest(trial: optuna.Trial, name: str, dim: Dimension, so_far: Mapping[str, Value]) -> Value:
    kind = SETTING_TYPES[name]
    if isinstance(dim, Choice):
        value = dim.values[0]
        if len(dim.values) == 1 and _numeric(value):
            suggest = trial.suggest_int if kind is int else trial.suggest_float
            return suggest(name, value, value)
        return trial.suggest_categorical(name, list(dim.values))
    high = _high(name, dim, so_far)
    if kind is int:
        return trial.suggest_int(name, dim.low, high, step=dim.step or 1, log=dim.log)
    return trial.suggest_float(name, dim.low, high, step=dim.step, log=dim.log)


def _high(name: str, dim: Range, so_far: Mapping[str, Value]) -> int | float:
    """A sweet spot never goes past the trial's T."""
    if name != "sweet_spot":
        return dim.high
    return so_far["steps"] if dim.high is None else min(dim.high, so_far["steps"])


def _numeric(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _distribution(dim: Dimension) -> BaseDistribution:
    if isinstance(dim, Choice):
        value = dim.values[0]
        if len(dim.values) == 1 and _numeric(value):
            return IntDistribution(value, value) if isinstance(value, int) else FloatDistribution(value, value)
        return CategoricalDistribution(dim.values)
    high = dim.low if dim.high is None else dim.high
    if isinstance(dim.low, int) and isinstance(high, int):
        return IntDistribution(dim.low, high, log=dim.log, step=dim.step or 1)
    return FloatDistribution(dim.low, high, log=dim.log, step=dim.step)


def _combinations(dims: list[tuple[str, Dimension]], point: dict[str, Value]) -> Iterator[dict[str, Value]]:
    if not dims:
        yield dict(point)
        return
    (name, dim), rest = dims[0], dims[1:]
    for value in _grid_values(name, dim, point):
        yield from _combinations(rest, {**point, name: value})


def _grid_values(name: str, dim: Dimension, so_far: Mapping[str, Value]) -> list[Value]:
    if isinstance(dim, Choice):
        return list(dim.values)
    high = _high(name, dim, so_far)
    if SETTING_TYPES[name] is int:
        return list(range(dim.low, high + 1, dim.step or 1))
    count = math.floor((high - dim.low) / dim.step + 1e-9) + 1
    return [round(dim.low + i * dim.step, 12) for i in range(count)]


def _describe(dim: Dimension) -> object:
    if isinstance(dim, Choice):
        return dim.values[0] if len(dim.values) == 1 else list(dim.values)
    table = {"low": dim.low, "high": "T" if dim.high is None else dim.high}
    if dim.log:
        table["log"] = True
    if dim.step is not None:
        table["step"] = dim.step
    return table


# --- building and checking ----------------------------------------------------------------------


def build_space(file_dims: Mapping[str, Dimension] | None = None,
                options: Mapping[str, Dimension] | None = None) -> SearchSpace:
    """Defaults, replaced by a study file's dimensions, replaced by command-line ones; checked as a whole."""
    defaults = default_dimensions()
    dims = {**defaults, **(file_dims or {}), **(options or {})}
    space = SearchSpace({name: dims[name] for name in defaults})
    _check_sweet_spot(space.dims["sweet_spot"], space.dims["steps"])
    return space


def _check_sweet_spot(sweet: Dimension, steps: Dimension) -> None:
    """Sweet spots must exist for every T the study may draw: at most its smallest T."""
    least_t = min(steps.values) if isinstance(steps, Choice) else steps.low
    if isinstance(sweet, Choice):
        numbers = [v for v in sweet.values if v != AUTO]
        if numbers and len(numbers) != len(sweet.values):
            raise BenchError("--sweet-spot: either auto or step numbers, not both")
        largest = max(numbers, default=0)
    else:
        largest = sweet.low
    if largest > least_t:
        raise BenchError(f"--sweet-spot {largest} is more than T = {least_t} (--steps); a sweet spot is a step 1..T")


def option_dimension(name: str, text: str | list[str], source: str | None = None) -> Dimension:
    """A dimension from command-line text: `8`, `5,8,13`, `4..16`, `0.5..8:log`, `0..1:0.25`;
    a list (a repeated option) is a choice. `source` names the option in errors."""
    source = source or "--" + name.replace("_", "-")
    if isinstance(text, list):
        return _checked(name, Choice(tuple(_value(name, item, source) for item in text)), source)
    text = text.strip()
    if name == "sweet_spot" and text == ANY:
        return Range(1, None)
    if ".." in text:
        return _checked(name, _range_from_text(name, text, source), source)
    return _checked(name, Choice(tuple(_value(name, part, source) for part in text.split(","))), source)


def _range_from_text(name: str, text: str, source: str) -> Range:
    bounds, _, modifier = text.partition(":")
    low_text, _, high_text = bounds.partition("..")
    low, high = _value(name, low_text, source), _value(name, high_text, source)
    if not (_numeric(low) and _numeric(high)):
        raise BenchError(f"{source}: a range goes from one number to another (got {text})")
    if modifier == "log":
        return Range(low, high, log=True)
    step = _value(name, modifier, source) if modifier else None
    return Range(low, high, step=step)


def _value(name: str, text: str, source: str) -> Value:
    try:
        value = parse_setting(name, text)
    except ValueError as exc:
        raise BenchError(f"{source}: {exc}") from None
    return AUTO if name == "sweet_spot" and value is None else value


def _checked(name: str, dim: Dimension, source: str) -> Dimension:
    """Every value (or both ends of a range) must make valid settings on its own."""
    kind = SETTING_TYPES[name]
    if isinstance(dim, Range):
        if kind not in (int, float):
            raise BenchError(f"{source}: {name} takes values, not a range")
        if dim.high is not None and dim.low > dim.high:
            raise BenchError(f"{source}: range {dim.low}..{dim.high} is empty")
        if dim.log and (dim.low <= 0 or dim.step is not None):
            raise BenchError(f"{source}: a log range needs low > 0 and no step")
        if dim.step is not None and dim.step <= 0:
            raise BenchError(f"{source}: step must be > 0 (got {dim.step})")
        values = [dim.low] + ([] if dim.high is None else [dim.high])
    else:
        values = list(dim.values)
        if len(set(values)) != len(values):
            raise BenchError(f"{source}: repeated value in {', '.join(map(str, values))}")
    for value in values:
        _check_value(name, value, source)
    return dim


def _check_value(name: str, value: Value, source: str) -> None:
    if name == "sweet_spot":  # checked against T later; here only its own range
        if value != AUTO and value < 1:
            raise BenchError(f"{source}: a sweet spot is auto, any or a step >= 1 (got {value})")
        return
    try:
        TrialSettings.from_params({name: value})
    except ValueError as exc:
        raise BenchError(f"{source}: {exc}") from None


# --- study files ------------------------------------------------------------------------------

STUDY_OPTIONS: dict[str, type] = {"name": str, "sampler": str, "objective": str, "pruner": str,
                                  "n_trials": int, "timeout": float, "limit": int, "seeds": int}
"""Run options a study file may set, and their types."""


@dataclass(frozen=True)
class StudyFile:
    path: Path
    description: str
    options: dict[str, object]  # STUDY_OPTIONS given in [study]
    dims: dict[str, Dimension]  # settings given in [space]


def load_study_file(path: str | Path) -> StudyFile:
    """A study definition; unknown keys and wrong types are errors naming the file and key."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"--study-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"--study-file {path}: unreadable ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: not valid TOML ({exc})") from None
    _require_keys(document, {"description", "study", "space"}, path, "")
    description = document.get("description", "")
    if not isinstance(description, str):
        raise BenchError(f"{path}: description must be a string")
    study, space = (_table(document, key, path) for key in ("study", "space"))
    _require_keys(study, set(STUDY_OPTIONS), path, "study.")
    _require_keys(space, set(SETTING_TYPES), path, "space.")
    options = {key: _typed(value, STUDY_OPTIONS[key], f"{path}: study.{key}") for key, value in study.items()}
    dims = {name: _file_dimension(name, value, f"{path}: space.{name}") for name, value in space.items()}
    return StudyFile(path, description, options, dims)


def _table(document: dict, key: str, path: Path) -> dict:
    table = document.get(key, {})
    if not isinstance(table, dict):
        raise BenchError(f"{path}: [{key}] must be a table")
    return table


def _require_keys(table: Mapping, known: set[str], path: Path, prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise BenchError(f"{path}: unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")


def _typed(value: object, kind: type, where: str) -> object:
    """A TOML value of the expected type (an integer is a fine float; a boolean is no number)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BenchError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _file_dimension(name: str, value: object, where: str) -> Dimension:
    kind = SETTING_TYPES[name]
    if name == "sweet_spot" and value in (AUTO, ANY):
        return option_dimension(name, value, where)
    if isinstance(value, dict):
        _require_keys(value, {"low", "high", "log", "step"}, where, "")
        if "low" not in value or "high" not in value:
            raise BenchError(f"{where}: a range needs low and high")
        high = None if name == "sweet_spot" and value["high"] == "T" else _typed(value["high"], kind, where)
        step = _typed(value["step"], kind, where) if "step" in value else None
        dim = Range(_typed(value["low"], kind, where), high, _typed(value.get("log", False), bool, where), step)
        return _checked(name, dim, where)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise BenchError(f"{where}: empty list")
    return _checked(name, Choice(tuple(_typed(v, kind, where) for v in values)), where)


def dimensions_from_options(options: Mapping[str, str | list[str] | None]) -> dict[str, Dimension]:
    """The command line's settings (None = not given) as dimensions."""
    return {name: option_dimension(name, text) for name, text in options.items() if text not in (None, [])}
