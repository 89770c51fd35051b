"""One trial: a decoding configuration evaluated over a whole test set (docs/architecture.md#one-trial).

The test set is decoded once per seed, in batches, keeping every step's tokens; FID is then
computed at each step the objective needs, so the sweet spot comes out of the curve instead of
costing one decode per candidate. Each FID comes with its bootstrap interval over test images,
FID-infinity and KID, all from the step's one Inception pass (bench.stats); with several seeds
the curve is their mean, with an interval over seeds and images. Nothing here knows about Optuna or
MLflow: callers watch the curve through `on_step` (to report or prune) and get a `TrialResult` back.

What stays the same across trials lives in an `Evaluator`: the model, the test set, the tokens of
the masked images (computed once per model and data, cached in memory and on disk) and the FID
reference (cached by bench.fid) with its Gram matrix. Results are cached on disk per seed by settings,
model, data, protocol and device (bench.trial_results), so a seed already evaluated is never decoded
again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from bench.baselines import BASELINES
from bench.data import TestSet
from bench.defaults import BASELINES_FILE
from bench.devices import default_batch_size
from bench.errors import BenchError
from bench.fid import FIDReference, InceptionFeatures, fid_with_interval
from bench.files import atomic_write, cache_home
from bench.stats import FidSummary, ReferenceGram, summarize
from bench.trial_results import METRICS, SeedResult, StepScore, TrialCache, TrialResult, mean_over_seeds
from maskgit.decoding import (COMPOSITES as DECODED_COMPOSITES, DecodeConfig, DecodeResult, composite,
                              dilate_tokens, image_generators, inpaint_tokens, pixel_holes_to_token_unknown)
from maskgit.model import MaskGIT, bf16_autocast
from maskgit.pixels import image_grid
from maskgit.training import encode_dataset

AUTO = "auto"  # the sweet spot as a setting: the best step of the FID curve
COMPOSITES = ("off", *DECODED_COMPOSITES)
FIGURE_ROWS = 4  # test images shown in the progression and latent-mask figures
BASELINES_FORMAT = 2  # bump when cached baseline scores stop meaning the same thing (2: with replicates)


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialSettings:
    """Everything that decides a trial's images: the decoder's config plus what happens around it."""

    decode: DecodeConfig = DecodeConfig()
    sweet_spot: int | None = None  # None: auto, the best step of the curve; else the output step s
    composite: str = "off"  # off | hard | feather | seamless: ground-truth pixels outside the holes
    feather: int = 2  # pixels of the blend ramp when composite = feather
    seed: int = 0  # of the per-image random streams

    def __post_init__(self):
        if self.composite not in COMPOSITES:
            raise ValueError(f"composite '{self.composite}' is unknown; known: {', '.join(COMPOSITES)}")
        if not isinstance(self.feather, int) or self.feather < 1:
            raise ValueError(f"feather must be an integer >= 1, got {self.feather}")
        if self.sweet_spot is not None and not 1 <= self.sweet_spot <= self.decode.steps:
            raise ValueError(f"sweet spot must be auto or in [1, T = {self.decode.steps}], got {self.sweet_spot}")

    @property
    def steps(self) -> int:
        return self.decode.steps

    def steps_needed(self) -> list[int]:
        """Auto: every step 1..T. A chosen sweet spot s: s, and T for the final FID."""
        if self.sweet_spot is None:
            return list(range(1, self.steps + 1))
        return sorted({self.sweet_spot, self.steps})

    def params(self) -> dict[str, object]:
        """Flat {setting: value}: the names Optuna and MLflow record (sweet_spot 'auto' or a step)."""
        flat = {**dataclasses.asdict(self.decode), **{f.name: getattr(self, f.name) for f in _own_fields()}}
        flat["sweet_spot"] = AUTO if self.sweet_spot is None else self.sweet_spot
        return flat

    @classmethod
    def from_params(cls, params: Mapping[str, object]) -> TrialSettings:
        """Settings from a flat dict; values may be strings (as MLflow stores them), missing ones default."""
        unknown = sorted(set(params) - set(SETTING_TYPES))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTING_TYPES)}")
        values = {name: _coerce(name, value) for name, value in params.items()}
        decode_names = {f.name for f in dataclasses.fields(DecodeConfig)}
        decode = DecodeConfig(**{k: v for k, v in values.items() if k in decode_names})
        return cls(decode, **{k: v for k, v in values.items() if k not in decode_names})


def _own_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrialSettings) if f.name != "decode"]


_TYPE_NAMES = {"int": int, "float": float, "str": str, "bool": bool}
SETTING_TYPES: dict[str, type] = {
    **{f.name: _TYPE_NAMES[f.type] for f in dataclasses.fields(DecodeConfig)},
    **{f.name: int if f.name == "sweet_spot" else _TYPE_NAMES[f.type] for f in _own_fields()},
}
"""Every setting of a trial and its value type (sweet_spot also takes 'auto')."""

_BOOLEANS = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}


def _coerce(name: str, value: object) -> object:
    """Text parsed, integers for float settings made floats: equal settings compare (and hash) equal."""
    if isinstance(value, str):
        return parse_setting(name, value)
    if SETTING_TYPES[name] is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_setting(name: str, text: str) -> object:
    """A setting's value from text ('on'/'off' for booleans, 'auto' -> None for the sweet spot)."""
    kind = SETTING_TYPES[name]
    text = text.strip()
    if name == "sweet_spot" and text == AUTO:
        return None
    if kind is bool:
        if text.lower() not in _BOOLEANS:
            raise ValueError(f"{name}: expected on or off, got '{text}'")
        return _BOOLEANS[text.lower()]
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name}: expected {'an integer' if kind is int else 'a number'}, got '{text}'") from None


# --- seeds --------------------------------------------------------------------------------


def fresh_seeds(base: int, count: int, used: Collection[int] = ()) -> tuple[int, ...]:
    """`count` seeds from `base` upwards that are not in `used`: a configuration evaluated again
    becomes a new replicate (seeds of its earlier trials in `used`), never an identical re-run."""
    if count < 1:
        raise ValueError(f"a trial needs at least one seed, got {count}")
    used, seeds, seed = set(used), [], base
    while len(seeds) < count:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return tuple(seeds)


StepCallback = Callable[[StepScore], None]


# --- the evaluator --------------------------------------------------------------------------


class Evaluator:
    """Evaluates trials of one model on one test set; what does not change between trials is made once.

    `compiled`: run the transformer and the VQGAN decoder through `torch.compile` (for CUDA, where
    they are the hot path; the first batches pay the compilation). Compiled kernels round floats
    differently, so trials may draw other tokens: their results are cached apart.
    """

    def __init__(self, model: MaskGIT, checkpoint_sha: str, test: TestSet, *, device: str = "cpu",
                 batch_size: int | None = None, protocol: str = "tf", cache: bool = True, progress: bool = True,
                 compiled: bool = False):
        batch_size = default_batch_size(device) if batch_size is None else batch_size
        if batch_size < 1:
            raise BenchError(f"--batch-size must be at least 1 (got {batch_size})")
        self.model = model.to(device).eval()
        self.compiled = compiled
        self.transformer = torch.compile(self.model.transformer) if compiled else self.model.transformer
        self.detokenize = torch.compile(self.model.detokenize) if compiled else self.model.detokenize
        self.checkpoint_sha, self.test, self.device = checkpoint_sha, test, device
        self.batch_size, self.protocol, self.progress = batch_size, protocol, progress
        self.extractor = InceptionFeatures(protocol, device=device, progress=progress)
        self.cache = TrialCache(cache_home() / "trials") if cache else None

    @cached_property
    def data_hash(self) -> str:
        return self.test.content_hash()

    @cached_property
    def tokens(self) -> Tensor:
        """Token ids [N, 256] of the masked images (values under the holes are ignored)."""
        return masked_image_tokens(self.model, self.checkpoint_sha, self.test, self.device, self.batch_size)

    @cached_property
    def reference(self) -> FIDReference:
        """The ground truth's FID statistics (cached on disk by bench.fid)."""
        test = self.test
        if test.gt is None:
            raise BenchError(f"{test.root}: no ground truth (gt/ or test_gt.csv); FID needs it")
        if len(test) < 2:
            raise BenchError(f"{test.root}: FID needs at least 2 test images, got {len(test)} (--limit)")
        return FIDReference.load_or_compute(test.gt, self.protocol, extractor=self.extractor)

    @cached_property
    def reference_gram(self) -> ReferenceGram:
        """The ground truth's Gram side of every FID here (bench.stats), made once per Evaluator."""
        return ReferenceGram.of(self.reference.features)

    @property
    def baselines_file(self) -> Path:
        """Where `baseline_summaries` are cached (written by its first use), once per (data, protocol,
        extractor): the very file a sweep logs as its parent run's `baselines.npz` (`baselines_npz`)."""
        extractor = hashlib.sha256(self.extractor.cache_key.encode()).hexdigest()[:16]
        return (cache_home() / "baselines" / f"{self.data_hash}-{self.protocol}-{extractor}-v{BASELINES_FORMAT}"
                / BASELINES_FILE)

    @cached_property
    def baseline_summaries(self) -> dict[str, FidSummary]:
        """The fills that learn nothing (bench.baselines), scored with their replicates: the reference
        rows of sweeps and reports; computed once and cached in `baselines_file`."""
        path = self.baselines_file
        try:
            with np.load(path) as stored:
                summaries = {name: _stored_summary(stored, name) for name in BASELINES}
        except (OSError, ValueError, KeyError):
            test = self.test
            summaries = {name: fid_with_interval(self.reference, fill(test.masked, test.holes), self.data_hash,
                                                 extractor=self.extractor, reference_gram=self.reference_gram
                                                 ).uncertainty
                         for name, fill in BASELINES.items()}
            atomic_write(path, lambda f: f.write(baselines_npz(summaries, self.data_hash)))
        return summaries

    @property
    def baselines(self) -> dict[str, dict[str, float]]:
        """{name: {fid, fid_ci_low, fid_ci_high, fid_infinity, kid, kid_std}} of the reference fills."""
        return {name: {metric: value for metric, value in summary.metrics().items() if math.isfinite(value)}
                for name, summary in self.baseline_summaries.items()}

    def provenance(self) -> dict[str, str]:
        return {"checkpoint_sha": self.checkpoint_sha, "data_hash": self.data_hash, "protocol": self.protocol,
                "inception_weights": self.extractor.weights_sha, "device": torch.device(self.device).type,
                **({"compiled": "torch.compile"} if self.compiled else {})}

    def prepare(self) -> None:
        """Compute (or load) the tokens and the FID reference now, e.g. before starting workers."""
        _ = self.tokens, self.reference

    def decode(self, settings: TrialSettings) -> DecodeResult:
        """Every step's tokens and latent mask [T, N, 256] (CPU), decoded in batches.

        Each image draws from its own random stream (`image_generators(seed, dataset index)`), so
        the result does not depend on the batch size.
        """
        cfg = settings.decode
        unknown = pixel_holes_to_token_unknown(self.test.holes)
        parts = []
        starts = range(0, len(self.test), self.batch_size)
        for start in tqdm(starts, desc="decoding", unit="batch", leave=False, disable=None if self.progress else True):
            batch = range(start, min(start + self.batch_size, len(self.test)))
            generators = image_generators(settings.seed, batch) if cfg.needs_generator else None
            with bf16_autocast(self.device):  # the FID features stay fp32
                result = inpaint_tokens(self.transformer, self.tokens[start:batch.stop].to(self.device),
                                        unknown[start:batch.stop], cfg, generators)
            parts.append(result)
        return DecodeResult(torch.cat([p.filled.cpu() for p in parts], dim=1),
                            torch.cat([p.still_masked.cpu() for p in parts], dim=1))

    def images(self, tokens: Tensor, settings: TrialSettings, index: slice | Tensor = slice(None)) -> Tensor:
        """uint8 pixels [n, 3, 64, 64] of tokens [n, 256] of test images `index`, composited if asked."""
        with bf16_autocast(self.device):  # the FID features stay fp32
            decoded = torch.cat([self.detokenize(part.to(self.device)).cpu()
                                 for part in tokens.split(self.batch_size)])
        if settings.composite == "off":
            return decoded
        masked, holes = self.test.masked[index], self.test.holes[index]
        return composite(decoded, masked, holes, settings.composite, settings.feather)

    def evaluate(self, settings: TrialSettings, on_step: StepCallback | None = None,
                 seeds: Sequence[int] | None = None) -> TrialResult:
        """The trial's result over `seeds` (default: the settings' own seed), each seed from the cache
        when it was evaluated on this model and data before.

        `on_step` sees each step's seed-mean scores as they come (cached ones too), in step order; an
        exception it raises (e.g. Optuna's TrialPruned) stops the trial, and nothing is cached.
        """
        needed = settings.steps_needed()
        runs = [dataclasses.replace(settings, seed=seed) for seed in (seeds or (settings.seed,))]
        if len({run.seed for run in runs}) < len(runs):
            raise ValueError(f"seeds must differ, got {[run.seed for run in runs]}")
        results = {run.seed: self.cache.load(run, self.provenance(), needed) if self.cache else None for run in runs}
        pending = [self._decode_seed(run) for run in runs if results[run.seed] is None]
        results.update({seed.result.seed: seed.result for seed in pending})
        seed_results = [results[run.seed] for run in runs]
        curve, replicates = {}, {}
        for step in needed:
            for seed in pending:
                self._score_step(seed, step)
            step_curve, step_replicates = mean_over_seeds(seed_results, [step], self.data_hash)
            curve.update(step_curve)
            replicates.update(step_replicates)
            if on_step:
                on_step(curve[step])
        for seed in pending:
            with timed(seed.result.seconds, "total"):
                seed.result.progression, seed.result.latent_mask = self._figures(seed.decoded, seed.result.settings,
                                                                                 seed.shown)
            if self.cache:
                self.cache.store(seed.result)
        return TrialResult(settings, curve, replicates, seed_results, self.data_hash)

    def _decode_seed(self, settings: TrialSettings) -> _SeedInProgress:
        seconds = dict.fromkeys(("decode", "pixels", "fid", "uncertainty", "uncertainty_cpu", "total"), 0.0)
        with timed(seconds, "total"), timed(seconds, "decode"):
            decoded = self.decode(settings)
        result = SeedResult(settings, {}, {}, seconds, len(self.test), self.provenance(), None, None)
        return _SeedInProgress(result, decoded, {})

    def _score_step(self, seed: _SeedInProgress, step: int) -> None:
        """One seed's scores at one step, into its result; wall seconds of the phases: pixels, fid (the
        Inception pass), uncertainty (FID, its interval, FID-infinity and KID from the features; also
        as this process's CPU seconds, which a busy shared core does not inflate)."""
        result, seconds = seed.result, seed.result.seconds
        with timed(seconds, "total"):
            with timed(seconds, "pixels"):
                images = self.images(seed.decoded.filled[step - 1], result.settings)
            seed.shown[step] = images[:FIGURE_ROWS]
            with timed(seconds, "fid"):
                features = self.extractor.features(images).numpy()
            with timed(seconds, "uncertainty"), cpu_timed(seconds, "uncertainty_cpu"):
                summary = summarize(self.reference_gram, features, self.data_hash)
        result.curve[step], result.replicates[step] = StepScore.of(step, summary), summary.replicates

    def _figures(self, decoded: DecodeResult, settings: TrialSettings,
                 shown: dict[int, Tensor]) -> tuple[Tensor, Tensor]:
        """For the first few test images: (masked input, output at each step, ground truth) and
        (token mask before decoding, after each step); `shown` has the outputs of the scored steps."""
        rows = slice(0, min(FIGURE_ROWS, len(self.test)))
        count = rows.stop
        missing = [step for step in range(1, settings.steps + 1) if step not in shown]
        if missing:  # one decoder call for all: each call has a fixed cost
            tokens = decoded.filled[[step - 1 for step in missing], rows].reshape(len(missing) * count, -1)
            images = self.images(tokens, settings, torch.arange(count).repeat(len(missing)))
            shown = {**shown, **dict(zip(missing, images.split(count)))}
        outputs = [shown[step] for step in range(1, settings.steps + 1)]
        progression = torch.stack([self.test.masked[rows], *outputs, self.test.gt[rows]], dim=1)
        unknown = pixel_holes_to_token_unknown(self.test.holes[rows])
        if settings.decode.dilation:
            unknown = dilate_tokens(unknown, settings.decode.dilation)
        masks = [unknown, *decoded.still_masked[:, rows]]
        latent = torch.stack([latent_mask_image(unknown, masked) for masked in masks], dim=1)
        return image_grid(list(progression)), image_grid(list(latent))


@dataclass
class _SeedInProgress:
    """A seed being scored: its result so far, its decoded steps, and the first images of the scored
    steps (the figures reuse them)."""

    result: SeedResult
    decoded: DecodeResult
    shown: dict[int, Tensor]


LATENT_COLOURS = torch.tensor([[40, 40, 40], [150, 150, 150], [255, 255, 255]], dtype=torch.uint8)
"""Latent mask figure: known token (never masked), token committed by the decoder, token still masked."""


def latent_mask_image(unknown: Tensor, masked: Tensor, token_size: int = 4) -> Tensor:
    """bool [B, 256] masks -> uint8 [B, 3, 64, 64]: dark = known, grey = committed, white = masked."""
    grid = math.isqrt(unknown.shape[1])
    level = unknown.long() + masked.long()  # masked implies unknown
    pixels = LATENT_COLOURS[level].reshape(-1, grid, grid, 3).permute(0, 3, 1, 2)
    return pixels.repeat_interleave(token_size, dim=2).repeat_interleave(token_size, dim=3)


@contextmanager
def timed(seconds: dict[str, float], phase: str):
    """Add the wall time of the block to seconds[phase] (waiting for queued GPU work)."""
    start = time.perf_counter()
    yield
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start


def baselines_npz(summaries: Mapping[str, FidSummary], key: str) -> bytes:
    """Scores of reference fills as one npz (docs/architecture.md#fid): <name>_<metric> f64 scalars,
    <name>_replicates f64 [B], and the bootstrap key."""
    values = {f"{name}_{metric}": np.float64(value) for name, summary in summaries.items()
              for metric, value in summary.metrics().items()}
    buffer = io.BytesIO()
    np.savez(buffer, key=np.array(key), **values,
             **{f"{name}_replicates": summary.replicates for name, summary in summaries.items()})
    return buffer.getvalue()


def _stored_summary(stored: Mapping[str, np.ndarray], name: str) -> FidSummary:
    value = {metric: float(stored[f"{name}_{metric}"]) for metric in METRICS}
    return FidSummary(value["fid"], value["fid_ci_low"], value["fid_ci_high"], stored[f"{name}_replicates"],
                      value["fid_infinity"], value["kid"], value["kid_std"])


@contextmanager
def cpu_timed(seconds: dict[str, float], phase: str):
    """Add the CPU seconds of this process (all its threads) during the block to seconds[phase]."""
    start = time.process_time()
    yield
    seconds[phase] = seconds.get(phase, 0.0) + time.process_time() - start


# --- caches ---------------------------------------------------------------------------------

_TOKENS: dict[str, Tensor] = {}


def masked_image_tokens(model: MaskGIT, checkpoint_sha: str, test: TestSet, device: str, batch_size: int) -> Tensor:
    """Token ids [N, 256] of a test set's masked images, once per (model, data, device type).

    Kept in memory for this process and on disk (cache_home()/tokens) for the next ones.
    """
    key = f"{checkpoint_sha}-{test.content_hash()}-{torch.device(device).type}"
    if key in _TOKENS:
        return _TOKENS[key]
    path = cache_home() / "tokens" / f"{key}.pt"
    if path.is_file():
        tokens = torch.load(path, weights_only=True)
    else:
        tokens = encode_dataset(model, test.masked, batch_size)
        atomic_write(path, lambda f: torch.save(tokens, f))
    _TOKENS[key] = tokens
    return tokens
