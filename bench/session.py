"""Opening what every command that decodes needs: a model (checkpoint spec), a test set (the
embedded benchmark by default), a checked device, and the Evaluator built on them. `bench sweep`,
`inpaint`, `perf`, `evaluate` and benchmarks/batch_speed.py all open them here."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from bench import toyfaces
from bench.data import MANIFEST, TestSet, load_test_set
from bench.defaults import DEFAULT_CHECKPOINT, DEFAULT_LIMIT
from bench.devices import checked_device
from bench.errors import BenchError
from bench.files import cache_home
from bench.trial import Evaluator
from maskgit.checkpoints import CheckpointError, load_checkpoint
from maskgit.model import MaskGIT


class LoadedModel(NamedTuple):
    """A model and its checkpoint's config (weights_sha256; meta, with the model card's settings)."""

    model: MaskGIT
    config: dict

    @property
    def sha(self) -> str:
        return self.config["weights_sha256"]


def load_model(spec: str) -> LoadedModel:
    """The checkpoint's model and config; a missing or broken one is a one-line error."""
    try:
        return LoadedModel(*load_checkpoint(spec))
    except CheckpointError as exc:
        hint = " (the shipped model is not installed yet: pass --checkpoint PATH)" if spec == DEFAULT_CHECKPOINT else ""
        raise BenchError(f"--checkpoint {exc}{hint}") from None


def load_data(data: str | None, limit: int | None) -> TestSet:
    """The test set (the embedded benchmark by default, then its first DEFAULT_LIMIT images)."""
    if data is None:
        test = load_test_set(default_benchmark_dir())
        limit = limit or DEFAULT_LIMIT
    else:
        test = load_test_set(data)
    return test.subset(limit) if limit and limit < len(test) else test


def default_benchmark_dir() -> Path:
    """The embedded default benchmark (synthetic toy faces), built into the cache on first use."""
    target = cache_home() / toyfaces.BENCHMARK_NAME
    if not (target / MANIFEST).is_file():
        try:
            toyfaces.build_toyfaces_benchmark(target)
        except BenchError:
            if not (target / MANIFEST).is_file():  # not a concurrent build that won the race
                raise
    return target


def open_evaluator(model: str | LoadedModel, data: str | None, limit: int | None, device: str,
                   **options) -> Evaluator:
    """An Evaluator of the model (a checkpoint spec, or one loaded already) on the test set, on the
    checked device; `options` are the Evaluator's (batch_size, protocol, cache, progress, compiled)."""
    loaded = load_model(model) if isinstance(model, str) else model
    return Evaluator(loaded.model, loaded.sha, load_data(data, limit), device=checked_device(device), **options)
