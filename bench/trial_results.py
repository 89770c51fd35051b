"""What a trial leaves: per-step scores with their uncertainty, per-seed curves, the seed mean, and the
on-disk cache of finished seeds (docs/architecture.md#one-trial).

A trial decodes the test set with K seeds. Each seed's curve (`SeedResult`) is what the cache keeps,
one folder per (settings with that seed, provenance), so a seed decoded once is never decoded again
whichever trial asks for it. The trial's curve (`TrialResult`) is the mean over its seeds, with an
interval over seeds and test images (bench.stats.seed_mean); every FID keeps its bootstrap
replicates, drawn on the test set's shared indices, so any two recorded FIDs on one test set pair up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from bench.files import atomic_write
from bench.stats import FidSummary, interval, seed_mean

if TYPE_CHECKING:
    from bench.trial import TrialSettings

FIGURES = ("progression.png", "latent_mask.png")
RESULT_FORMAT = 3  # bump when cached results stop meaning the same thing (3: per seed, with replicates)


@dataclass(frozen=True)
class StepScore:
    """One step's FID with its interval over test images (covering E[FID_N]), FID-infinity and KID;
    for a trial of several seeds, their mean with an interval over seeds and images."""

    step: int
    fid: float
    fid_ci_low: float
    fid_ci_high: float
    fid_infinity: float | None  # None below 8 images (bench.stats gives NaN; None compares equal)
    kid: float
    kid_std: float

    @classmethod
    def of(cls, step: int, summary: FidSummary) -> StepScore:
        infinity = summary.fid_infinity if math.isfinite(summary.fid_infinity) else None
        return cls(step, summary.fid, summary.lo, summary.hi, infinity, summary.kid, summary.kid_std)

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics of the step (logged at step = s); FID-infinity only where defined."""
        values = {name: getattr(self, name) for name in METRICS}
        return {name: value for name, value in values.items() if value is not None}


METRICS = ("fid", "fid_ci_low", "fid_ci_high", "fid_infinity", "kid", "kid_std")


@dataclass
class SeedResult:
    """One seed's curve over the scored steps, with each step's bootstrap replicates [B]: what the cache keeps."""

    settings: TrialSettings  # with this seed
    curve: dict[int, StepScore]
    replicates: dict[int, np.ndarray]
    seconds: dict[str, float]
    n_images: int
    provenance: dict[str, str]
    progression: Tensor  # uint8 [3, H, W]: masked input, every step, ground truth
    latent_mask: Tensor  # uint8 [3, H, W]: the token mask before decoding and after each step
    cached: bool = False

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def figures(self) -> dict[str, Tensor]:
        return dict(zip(FIGURES, (self.progression, self.latent_mask)))


def mean_over_seeds(seeds: Sequence[SeedResult], steps: Sequence[int], key: str
                    ) -> tuple[dict[int, StepScore], dict[int, np.ndarray]]:
    """The seed-mean curve and its replicates per step; one seed gives its own curve back, unchanged.

    KID's spread is that of all subsets of all seeds (within-seed variance plus the variance of the
    seeds' means); FID-infinity and KID are plain means.
    """
    if len(seeds) == 1:
        return {step: seeds[0].curve[step] for step in steps}, {step: seeds[0].replicates[step] for step in steps}
    curve, replicates = {}, {}
    for step in steps:
        scores = [seed.curve[step] for seed in seeds]
        estimate, draws = seed_mean(np.array([s.fid for s in scores]),
                                    np.stack([seed.replicates[step] for seed in seeds]), key)
        kids = np.array([s.kid for s in scores])
        kid_std = math.sqrt(np.mean([s.kid_std ** 2 for s in scores]) + kids.var())
        infinities = [s.fid_infinity for s in scores]
        infinity = None if None in infinities else float(np.mean(infinities))
        curve[step] = StepScore(step, estimate, *interval(estimate, draws), infinity, float(kids.mean()), kid_std)
        replicates[step] = draws
    return curve, replicates


@dataclass
class TrialResult:
    """A trial's curve (the mean over its seeds), timings and figures, with what they were computed from."""

    settings: TrialSettings  # with the base seed; `seed_results` hold each seed's
    curve: dict[int, StepScore]  # step s -> scores of the output at s (the steps needed), mean over seeds
    replicates: dict[int, np.ndarray]  # step s -> bootstrap replicates [B] of the seed mean
    seed_results: list[SeedResult]
    key: str  # the bootstrap key: the test set's content hash

    @property
    def seeds(self) -> list[int]:
        return [seed.seed for seed in self.seed_results]

    @property
    def seconds(self) -> dict[str, float]:
        """decode, pixels, fid, uncertainty, total: summed over the seeds (a cached seed's as recorded)."""
        names = dict.fromkeys(name for seed in self.seed_results for name in seed.seconds)
        return {name: sum(seed.seconds.get(name, 0.0) for seed in self.seed_results) for name in names}

    @property
    def n_images(self) -> int:
        return self.seed_results[0].n_images

    @property
    def provenance(self) -> dict[str, str]:
        return self.seed_results[0].provenance

    @property
    def progression(self) -> Tensor:
        return self.seed_results[0].progression

    @property
    def latent_mask(self) -> Tensor:
        return self.seed_results[0].latent_mask

    @property
    def figures(self) -> dict[str, Tensor]:
        """File name -> image (of the first seed), for run artifacts."""
        return self.seed_results[0].figures

    @property
    def cached(self) -> bool:
        return all(seed.cached for seed in self.seed_results)

    @property
    def best_step(self) -> int:
        """The sweet spot the objective uses: the chosen one, or the step of lowest (mean) FID."""
        if self.settings.sweet_spot is not None:
            return self.settings.sweet_spot
        return min(self.curve.values(), key=lambda score: score.fid).step

    @property
    def best(self) -> StepScore:
        return self.curve[self.best_step]

    @property
    def best_fid(self) -> float:
        return self.best.fid

    @property
    def final_fid(self) -> float:
        return self.curve[self.settings.steps].fid

    @property
    def kid(self) -> float:
        return self.best.kid

    @property
    def decode_seconds_per_image(self) -> float:
        """Decoding time per image and seed up to the sweet spot (the decoder could stop there)."""
        decode = self.seconds["decode"] / len(self.seed_results)
        return decode / self.n_images * self.best_step / self.settings.steps

    def curve_csv(self) -> str:
        scores = [self.curve[step] for step in sorted(self.curve)]
        lines = [",".join(("step", *METRICS))] + [",".join("" if value is None else repr(value)
                                                           for value in dataclasses.astuple(s)) for s in scores]
        return "\n".join(lines) + "\n"

    def uncertainty_npz(self) -> bytes:
        """The `uncertainty.npz` artifact (layout: docs/architecture.md#one-trial): per step the seed
        mean and its replicates, and every seed's FIDs and replicates."""
        steps = sorted(self.curve)
        buffer = io.BytesIO()
        np.savez(buffer, steps=np.array(steps, dtype=np.int64),
                 fid=np.array([self.curve[s].fid for s in steps]),
                 replicates=np.stack([self.replicates[s] for s in steps]),
                 seeds=np.array(self.seeds, dtype=np.int64),
                 seed_fid=np.array([[seed.curve[s].fid for s in steps] for seed in self.seed_results]),
                 seed_replicates=np.stack([np.stack([seed.replicates[s] for s in steps])
                                           for seed in self.seed_results]),
                 key=np.array(self.key))
        return buffer.getvalue()


def save_png(image: Tensor, file: Path | BinaryIO) -> None:
    """uint8 [3, H, W] -> PNG file."""
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(file, "PNG")


class TrialCache:
    """Finished seeds on disk, one folder per (settings with the seed but not the sweet spot, provenance).

    The sweet spot only decides which steps get an FID, so results of the same decode share a
    folder and their curves merge: an auto trial (every step) answers any chosen sweet spot.
    `result.json` holds the scores, `replicates.npz` each step's bootstrap replicates.
    """

    def __init__(self, root: Path):
        self.root = root

    def folder(self, settings: TrialSettings, provenance: Mapping[str, str]) -> Path:
        params = dict(settings.params(), sweet_spot=None)
        key = json.dumps({"format": RESULT_FORMAT, "settings": params, **provenance}, sort_keys=True)
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:24]

    def load(self, settings: TrialSettings, provenance: Mapping[str, str], needed: list[int]) -> SeedResult | None:
        folder = self.folder(settings, provenance)
        stored = self._read(folder)
        if stored is None or not set(needed) <= set(stored["curve"]):
            return None
        figures = [torch.from_numpy(np.array(Image.open(folder / name))).permute(2, 0, 1).contiguous()
                   for name in FIGURES]
        return SeedResult(settings, {step: stored["curve"][step] for step in needed},
                          {step: stored["replicates"][step] for step in needed}, stored["seconds"],
                          stored["n_images"], dict(provenance), *figures, cached=True)

    def store(self, result: SeedResult) -> None:
        folder = self.folder(result.settings, result.provenance)
        stored = self._read(folder)
        curve = {**(stored["curve"] if stored else {}), **result.curve}
        replicates = {**(stored["replicates"] if stored else {}), **result.replicates}
        record = {"settings": result.settings.params(), "provenance": result.provenance, "n_images": result.n_images,
                  "seconds": result.seconds, "curve": [dataclasses.asdict(score) for score in curve.values()]}
        steps = sorted(replicates)
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in result.figures.items():
            atomic_write(folder / name, lambda file, image=image: save_png(image, file))
        atomic_write(folder / "replicates.npz", lambda f: np.savez(
            f, steps=np.array(steps, dtype=np.int64), replicates=np.stack([replicates[s] for s in steps])))
        atomic_write(folder / "result.json", lambda f: f.write(json.dumps(record, indent=1).encode()))

    @staticmethod
    def _read(folder: Path) -> dict | None:
        """The stored record, its curve as {step: StepScore} and replicates as {step: [B]}; None if absent
        or unreadable (or its two files disagree on the steps)."""
        try:
            record = json.loads((folder / "result.json").read_text())
            record["curve"] = {score["step"]: StepScore(**score) for score in record["curve"]}
            with np.load(folder / "replicates.npz") as stored:
                record["replicates"] = dict(zip(stored["steps"].tolist(), stored["replicates"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if set(record["curve"]) <= set(record["replicates"]) else None
