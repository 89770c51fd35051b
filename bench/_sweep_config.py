"""`bench sweep`'s configuration: what a sweep is asked to do, its checks, and the registries of
objectives, samplers and pruners that the options name (add entries to extend)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from optuna.pruners import BasePruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, CmaEsSampler, NSGAIISampler, RandomSampler, TPESampler

from bench.defaults import DEFAULT_CHECKPOINT, DEFAULT_PROTOCOL, DEFAULT_STORAGE, DEFAULT_TRACKING_URI
from bench.errors import BenchError
from bench.search_space import SearchSpace, build_space, dimensions_from_options, load_study_file
from bench.trial import TrialResult
from maskgit.schedules import schedule_names

DEFAULT_N_TRIALS = 4
GRID = "grid"


# --- registries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """What a study minimises: names of the values and how a trial result gives them."""

    names: tuple[str, ...]
    values: Callable[[TrialResult], tuple[float, ...]]

    @property
    def directions(self) -> list[str]:
        return ["minimize"] * len(self.names)


OBJECTIVES: dict[str, Objective] = {
    "fid": Objective(("fid",), lambda r: (r.best_fid,)),
    # steps: the decoder can stop at the sweet spot, so its cost is the sweet spot, not T
    "fid+steps": Objective(("fid", "steps"), lambda r: (r.best_fid, float(r.best_step))),
    "fid+seconds": Objective(("fid", "seconds_per_image"), lambda r: (r.best_fid, r.decode_seconds_per_image)),
}
"""Objectives by name; more than one value makes a multi-objective study (a Pareto front)."""

SAMPLERS: dict[str, Callable[[int], BaseSampler]] = {
    "tpe": lambda seed: TPESampler(seed=seed),
    "random": lambda seed: RandomSampler(seed=seed),
    "cmaes": lambda seed: CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "nsga2": lambda seed: NSGAIISampler(seed=seed),
    GRID: lambda seed: RandomSampler(seed=seed),  # never asked: every grid trial is enqueued with its params
}
"""Samplers by name (seeded per worker); add entries to extend."""

PRUNERS: dict[str, Callable[[], BasePruner]] = {
    "none": NopPruner,
    "median": lambda: MedianPruner(n_startup_trials=2, n_warmup_steps=0),
}
"""Pruners by name; they see the FID curve step by step (single-objective studies only)."""


# --- the sweep's configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep (and each of its worker processes) needs; plain values, picklable."""

    space: SearchSpace
    study_name: str
    storage: str = DEFAULT_STORAGE
    tracking_uri: str = DEFAULT_TRACKING_URI
    objective: str = "fid"
    sampler: str | None = None  # None: tpe, or nsga2 for several objectives
    pruner: str = "none"
    n_trials: int | None = None  # the study's target of finished trials (grid: every point)
    timeout: float | None = None  # seconds after which no new trial starts
    workers: int = 1
    data: str | None = None  # None: the embedded benchmark
    limit: int | None = None  # None: DEFAULT_LIMIT on the embedded benchmark, else every image
    checkpoint: str = DEFAULT_CHECKPOINT
    seed: int = 0  # of the samplers (worker i uses seed + i)
    seeds: int = 1  # K: each trial decodes the test set with K seeds (its curve is their mean)
    device: str = "auto"
    batch_size: int | None = None  # None: default_batch_size(device)
    compiled: bool = False  # torch.compile the transformer and the VQGAN decoder
    protocol: str = DEFAULT_PROTOCOL
    cache: bool = True
    progress: bool = True

    @property
    def objective_spec(self) -> Objective:
        return OBJECTIVES[self.objective]

    @property
    def sampler_name(self) -> str:
        """The sampler given, else nsga2 for several objectives, grid when the space has no more points
        than the trials asked for (each point once, instead of TPE drawing some twice), else tpe."""
        if self.sampler:
            return self.sampler
        if len(OBJECTIVES[self.objective].names) > 1:
            return "nsga2"
        return GRID if self.space.grid_has_at_most(self.n_trials or DEFAULT_N_TRIALS) else "tpe"


def build_sweep_config(settings: Mapping[str, str | list[str] | None], study_file: Path | None = None,
                       **options) -> SweepConfig:
    """Options given (not None) over the study file's over the defaults.

    `settings`: command-line text per setting (see bench.search_space); `options`: SweepConfig
    fields, the study file's [study] table (name -> study_name) filling those not given.
    """
    file = load_study_file(study_file) if study_file else None
    space = build_space(file.dims if file else None, dimensions_from_options(settings))
    from_file = dict(file.options) if file else {}
    if "name" in from_file:
        from_file["study_name"] = from_file.pop("name")
    chosen = {**from_file, **{key: value for key, value in options.items() if value is not None}}
    chosen.setdefault("study_name", file.path.stem if file else default_study_name(space))
    return SweepConfig(space=space, **chosen)


def check_config(config: SweepConfig) -> None:
    """Option errors that need no file, model or storage."""
    _require_known("--objective", config.objective, OBJECTIVES)
    _require_known("--sampler", config.sampler_name, SAMPLERS)  # the default depends on the objective
    _require_known("--pruner", config.pruner, PRUNERS)
    several = len(OBJECTIVES[config.objective].names) > 1
    if several and config.pruner != "none":
        raise BenchError(f"--pruner {config.pruner}: Optuna prunes single-objective studies only "
                         f"(--objective {config.objective} has {len(OBJECTIVES[config.objective].names)})")
    if config.sampler_name == "cmaes":
        if several:
            raise BenchError("--sampler cmaes: single-objective only; use nsga2 for --objective " + config.objective)
        import importlib.util

        if importlib.util.find_spec("cmaes") is None:
            raise BenchError("--sampler cmaes needs the cmaes package (pip install cmaes)")
    for option, value, least in (("--n-trials", config.n_trials, 1), ("--workers", config.workers, 1),
                                 ("--seeds", config.seeds, 1),
                                 ("--batch-size", config.batch_size, 1), ("--limit", config.limit, 2)):
        if value is not None and value < least:
            raise BenchError(f"{option} must be at least {least} (got {value})")
    if config.timeout is not None and config.timeout <= 0:
        raise BenchError(f"--timeout must be > 0 seconds (got {config.timeout})")
    if not config.study_name.strip():
        raise BenchError("--study-name must not be empty")


def _require_known(option: str, name: str, registry: Mapping) -> None:
    if name not in registry:
        raise BenchError(f"{option} {name!r}: unknown, expected one of {', '.join(registry)}")


def default_study_name(space: SearchSpace) -> str:
    """sweep-<schedules>, e.g. sweep-cosine; sweep-all when every schedule is searched."""
    names = space.dims["schedule"].values
    return "sweep-all" if list(names) == schedule_names() else "sweep-" + "+".join(map(str, names))
