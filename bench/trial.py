"""One trial: a decoding configuration evaluated over a whole test set (docs/architecture.md#one-trial).

The test set is decoded once, in batches, keeping every step's tokens; FID (and KID) is then
computed at each step the objective needs, so the sweet spot comes out of the curve instead of
costing one decode per candidate. Nothing here knows about Optuna or MLflow: callers watch the
curve through `on_step` (to report or prune) and get a `TrialResult` back.

What stays the same across trials lives in an `Evaluator`: the model, the test set, the tokens of
the masked images (computed once per model and data, cached in memory and on disk) and the FID
reference (cached by bench.fid). Results are cached on disk by settings, model, data, protocol and
device, so settings already evaluated are never decoded again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from bench.baselines import BASELINES
from bench.data import TestSet
from bench.devices import default_batch_size
from bench.errors import BenchError
from bench.fid import FIDReference, InceptionFeatures, fid_score
from bench.files import atomic_write, cache_home
from maskgit.decoding import (COMPOSITES as DECODED_COMPOSITES, DecodeConfig, DecodeResult, composite,
                              dilate_tokens, image_generators, inpaint_tokens, pixel_holes_to_token_unknown)
from maskgit.model import MaskGIT, bf16_autocast
from maskgit.pixels import image_grid
from maskgit.training import encode_dataset

AUTO = "auto"  # the sweet spot as a setting: the best step of the FID curve
COMPOSITES = ("off", *DECODED_COMPOSITES)
FIGURE_ROWS = 4  # test images shown in the progression and latent-mask figures
FIGURES = ("progression.png", "latent_mask.png")
RESULT_FORMAT = 2  # bump when cached results stop meaning the same thing


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


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepScore:
    step: int
    fid: float
    kid: float | None
    kid_std: float | None


@dataclass
class TrialResult:
    """A trial's curve, timings and figures, with what they were computed from."""

    settings: TrialSettings
    curve: dict[int, StepScore]  # step s -> scores of the output at s (the steps needed)
    seconds: dict[str, float]  # decode, pixels, fid, total
    n_images: int
    provenance: dict[str, str]  # checkpoint_sha, data_hash, protocol, inception_weights, device
    progression: Tensor  # uint8 [3, H, W]: masked input, every step, ground truth
    latent_mask: Tensor  # uint8 [3, H, W]: the token mask before decoding and after each step
    cached: bool = False

    @property
    def best_step(self) -> int:
        """The sweet spot the objective uses: the chosen one, or the step of lowest FID."""
        if self.settings.sweet_spot is not None:
            return self.settings.sweet_spot
        return min(self.curve.values(), key=lambda score: score.fid).step

    @property
    def best_fid(self) -> float:
        return self.curve[self.best_step].fid

    @property
    def final_fid(self) -> float:
        return self.curve[self.settings.steps].fid

    @property
    def kid(self) -> float | None:
        return self.curve[self.best_step].kid

    @property
    def decode_seconds_per_image(self) -> float:
        """Decoding time per image up to the sweet spot (the decoder could stop there)."""
        return self.seconds["decode"] / self.n_images * self.best_step / self.settings.steps

    def curve_csv(self) -> str:
        scores = [self.curve[step] for step in sorted(self.curve)]
        lines = ["step,fid,kid,kid_std"] + [f"{s.step},{s.fid!r},{_csv(s.kid)},{_csv(s.kid_std)}" for s in scores]
        return "\n".join(lines) + "\n"

    @property
    def figures(self) -> dict[str, Tensor]:
        """File name -> image, for caches and run artifacts."""
        return dict(zip(FIGURES, (self.progression, self.latent_mask)))


def save_png(image: Tensor, file: Path | BinaryIO) -> None:
    """uint8 [3, H, W] -> PNG file."""
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(file, "PNG")


def _csv(value: float | None) -> str:
    return "" if value is None else repr(value)


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
    def baselines(self) -> dict[str, dict[str, float]]:
        """{name: {fid, kid}} of the fills that learn nothing (bench.baselines): the reference rows of
        sweeps and reports; computed once per (data, protocol) and cached on disk."""
        extractor = hashlib.sha256(self.extractor.cache_key.encode()).hexdigest()[:16]
        path = cache_home() / "baselines" / f"{self.data_hash}-{self.protocol}-{extractor}.json"
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
        if set(stored) != set(BASELINES):
            test = self.test
            for name, fill in BASELINES.items():
                result = fid_score(self.reference, fill(test.masked, test.holes), extractor=self.extractor)
                stored[name] = {"fid": result.fid, "kid": result.kid_mean}
            atomic_write(path, lambda f: f.write(json.dumps(stored, indent=1).encode()))
        return stored

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

    def evaluate(self, settings: TrialSettings, on_step: StepCallback | None = None) -> TrialResult:
        """The trial's result; from the cache when these settings were evaluated on this model and data.

        `on_step` sees each step's scores as they come (cached ones too), in step order; an
        exception it raises (e.g. Optuna's TrialPruned) stops the trial, and nothing is cached.
        """
        needed = settings.steps_needed()
        result = self.cache.load(settings, self.provenance(), needed) if self.cache else None
        if result is not None:
            for step in needed if on_step else ():
                on_step(result.curve[step])
            return result
        result = self._compute(settings, needed, on_step)
        if self.cache:
            self.cache.store(result)
        return result

    def _compute(self, settings: TrialSettings, needed: list[int], on_step: StepCallback | None) -> TrialResult:
        seconds = dict.fromkeys(("decode", "pixels", "fid"), 0.0)
        started = time.perf_counter()
        with timed(seconds, "decode"):
            decoded = self.decode(settings)
        curve, shown = {}, {}  # shown: each scored step's first images, which the figures reuse
        for step in needed:
            with timed(seconds, "pixels"):
                images = self.images(decoded.filled[step - 1], settings)
            shown[step] = images[:FIGURE_ROWS]
            with timed(seconds, "fid"):
                result = fid_score(self.reference, images, extractor=self.extractor)
            curve[step] = StepScore(step, result.fid, result.kid_mean, result.kid_std)
            if on_step:
                on_step(curve[step])
        progression, latent_mask = self._figures(decoded, settings, shown)
        seconds["total"] = time.perf_counter() - started
        return TrialResult(settings, curve, seconds, len(self.test), self.provenance(), progression, latent_mask)

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


class TrialCache:
    """Finished trials on disk, one folder per (settings but the sweet spot, provenance).

    The sweet spot only decides which steps get an FID, so results of the same decode share a
    folder and their curves merge: an auto trial (every step) answers any chosen sweet spot.
    """

    def __init__(self, root: Path):
        self.root = root

    def folder(self, settings: TrialSettings, provenance: Mapping[str, str]) -> Path:
        params = dict(settings.params(), sweet_spot=None)
        key = json.dumps({"format": RESULT_FORMAT, "settings": params, **provenance}, sort_keys=True)
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:24]

    def load(self, settings: TrialSettings, provenance: Mapping[str, str], needed: list[int]) -> TrialResult | None:
        folder = self.folder(settings, provenance)
        stored = self._read(folder)
        if stored is None or not set(needed) <= set(stored["curve"]):
            return None
        curve = {step: stored["curve"][step] for step in needed}
        figures = [torch.from_numpy(np.array(Image.open(folder / name))).permute(2, 0, 1).contiguous()
                   for name in FIGURES]
        return TrialResult(settings, curve, stored["seconds"], stored["n_images"], dict(provenance), *figures,
                           cached=True)

    def store(self, result: TrialResult) -> None:
        folder = self.folder(result.settings, result.provenance)
        stored = self._read(folder)
        curve = {**(stored["curve"] if stored else {}), **result.curve}
        record = {"settings": result.settings.params(), "provenance": result.provenance, "n_images": result.n_images,
                  "seconds": result.seconds, "curve": [dataclasses.asdict(score) for score in curve.values()]}
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in result.figures.items():
            atomic_write(folder / name, lambda file, image=image: save_png(image, file))
        atomic_write(folder / "result.json", lambda f: f.write(json.dumps(record, indent=1).encode()))

    @staticmethod
    def _read(folder: Path) -> dict | None:
        """The stored record, its curve as {step: StepScore}; None if absent or unreadable."""
        try:
            record = json.loads((folder / "result.json").read_text())
            record["curve"] = {score["step"]: StepScore(**score) for score in record["curve"]}
            return record
        except (OSError, ValueError, KeyError, TypeError):
            return None
