"""Paired bootstrap over test images: shared resample indices, intervals, differences, seeds.

Every FID recorded on one test set is resampled with the SAME image indices (a deterministic
function of the test set's identity), so the replicate vectors of any two FIDs (two steps of a
trial, two trials, two seeds) are paired: subtracting them gives the replicates of the difference,
in which the image-to-image variation cancels.

Which interval: resampling with replacement repeats images, and FID grows as distinct images
shrink, so the replicates sit above their own estimate. Below D = 2048 features the small-N bias
is also far larger than the spread (real Inception features of cat faces: FID_700 between two
halves of one distribution is 16.5, not 0; bench.stats.small_n), and the bootstrap sees only part
of it (replicates 7.6 above the estimate there), so no interval from N images covers the
population FID: percentile and basic (2 * estimate - quantiles) both fail it. What N images can
pin down is E[FID_N], the FID this test-set size gives on average, and the shifted percentile
(the replicates moved so that their mean is the estimate) covers it. Calibration with
bench.stats.calibration's Gaussian model (D = 2048, power-law spectrum 1.5, true FD 17.07,
B = 200), coverage of E[FID_N] by the nominal 95% interval:

    n     draws  percentile  basic  shifted  | paired difference (shifted), of E[diff] / of the true diff
    100   200    0.860       0.720  0.925    | 0.920 / 0.895
    256   200    0.755       0.680  0.955    | 0.930 / 0.920
    500   200    0.695       0.650  0.945    | 0.950 / 0.925

Coverage of the true FD by any of them was 0.00-0.63. In a harsher model (spectrum 1.0, n = 256,
bias 37 against a spread of 0.78, 100 draws) shifted covered E[FID_N] in 0.99 of the draws and
the others in none. The two settings' biases differed there (E[diff] -9.5 against a true -4.5;
the paired interval covered the first in 0.95 of the draws, the second never), so a paired
difference is a statement about FIDs at this N: its sign, not its size, carries to the population.
On real Inception features (two disjoint random halves of 1,400 cat faces as the two sets, n = 128,
100-200 draws) the shifted interval was conservative: replicate sd 1.4-1.6x the FID's sd across
draws, coverage 0.98-1.00 (percentile: 0.00). Regressing out each resample's count of distinct
images, or half-sampling without replacement instead, changed that little (0.99, 0.98).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

DEFAULT_REPLICATES = 200
DEFAULT_LEVEL = 0.95


def key_rng(*parts: object) -> np.random.Generator:
    """A generator seeded by the sha256 of `parts`: the same stream on every machine and run."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def bootstrap_indices(key: str, n: int, replicates: int = DEFAULT_REPLICATES, seed: int = 0) -> np.ndarray:
    """Resampled image indices int64 [replicates, n], a function of (key, n, seed) only.

    `key` names the test set (e.g. its content hash), so all steps and trials on it share indices.
    Rows are drawn one after another from one stream, so the first B rows are the same whatever
    `replicates` is: a longer run extends a shorter one instead of replacing it.
    """
    if n < 2 or replicates < 1:
        raise ValueError(f"bootstrap needs n >= 2 images and >= 1 replicate, got n={n}, replicates={replicates}")
    rng = key_rng("bootstrap", key, n, seed)
    return np.stack([rng.integers(0, n, size=n) for _ in range(replicates)])


def _tails(level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return (1 - level) / 2, (1 + level) / 2


def percentile_interval(estimate: float, replicates: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The replicates' own quantiles: inherits their upward bias (the trap; kept to show it fails)."""
    lo, hi = np.quantile(replicates, _tails(level))
    return float(lo), float(hi)


def basic_interval(estimate: float, replicates: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The reverse percentile 2 * estimate - quantiles: subtracts the bias the bootstrap sees, aiming at
    the population FID; below D the bootstrap sees only part of it, so this covers neither target."""
    lo, hi = np.quantile(replicates, _tails(level))
    return float(2 * estimate - hi), float(2 * estimate - lo)


def shifted_interval(estimate: float, replicates: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The replicates' quantiles moved so that their mean is the estimate: covers E[FID_N]."""
    centred = replicates - replicates.mean() + estimate
    lo, hi = np.quantile(centred, _tails(level))
    return float(lo), float(hi)


interval = shifted_interval
"""The interval of one recorded FID (the calibrated method)."""


@dataclass(frozen=True)
class Difference:
    """FID(A) - FID(B) with its paired interval; lower FID is better."""

    estimate: float
    lo: float
    hi: float

    @property
    def detectable(self) -> bool:
        """The interval excludes 0."""
        return self.hi < 0 or self.lo > 0

    def verdict(self, a: str = "A", b: str = "B") -> str:
        """'A is better than B by 1.9 [0.8, 3.1]' or 'no detectable difference (-0.4 [-1.5, 0.7])'."""
        if not self.detectable:
            return f"no detectable difference ({self._text(self.estimate, self.lo, self.hi)})"
        better, worse, sign = (a, b, -1) if self.hi < 0 else (b, a, 1)
        ends = sorted((sign * self.lo, sign * self.hi))
        return f"{better} is better than {worse} by {self._text(sign * self.estimate, *ends)}"

    def _text(self, value: float, lo: float, hi: float) -> str:
        """Numbers to two significant digits of the interval's width (at most 4 decimals): '1.9 [0.8, 3.1]'."""
        width = max(hi - lo, 1e-3)
        decimals = max(0, 1 - int(np.floor(np.log10(width))))
        return f"{_fixed(value, decimals)} [{_fixed(lo, decimals)}, {_fixed(hi, decimals)}]"


def _fixed(value: float, decimals: int) -> str:
    """`value` to `decimals` places, without the minus sign of a number that rounds to zero ('-0')."""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def paired_difference(
    estimate_a: float, replicates_a: np.ndarray, estimate_b: float, replicates_b: np.ndarray,
    level: float = DEFAULT_LEVEL,
) -> Difference:
    """FID(A) - FID(B) from replicates on the same indices (an error if their counts differ).

    The shifted interval, as for one FID: it covered E[FID_N(A) - FID_N(B)] in 0.92-0.96 of the
    calibration draws (percentile 0.83-0.93, basic 0.79-0.96; the table above).
    """
    replicates_a, replicates_b = np.asarray(replicates_a), np.asarray(replicates_b)
    if replicates_a.shape != replicates_b.shape:
        raise ValueError(f"paired replicates must match, got {replicates_a.shape} and {replicates_b.shape}")
    estimate = estimate_a - estimate_b
    return Difference(estimate, *shifted_interval(estimate, replicates_a - replicates_b, level))


def seed_mean(estimates: np.ndarray, replicates: np.ndarray, key: str) -> tuple[float, np.ndarray]:
    """Mean over K seeds of one FID, with replicates over seeds and images (two-level bootstrap).

    `replicates` [K, B] share image indices; replicate b averages column b over K seeds drawn with
    replacement (deterministically from `key`), so the interval also covers which seeds were run.
    Its result pairs with any other `seed_mean` on the same indices and the same K.

    Seeds are crossed with images (every seed decodes every image), so resampling images already
    carries each image's decoding noise and resampling seeds counts it again: slightly
    conservative. Measured (Gaussian model, n = 100, K = 3, a fifth of the noise per seed, 200
    draws, B = 100): coverage 0.955 (width 4.47) against 0.935 (width 4.08) for images alone.
    """
    estimates, replicates = np.asarray(estimates, dtype=np.float64), np.asarray(replicates, dtype=np.float64)
    if replicates.ndim != 2 or len(estimates) != len(replicates) or len(estimates) < 1:
        raise ValueError(f"need K >= 1 estimates and replicates [K, B], got {estimates.shape}, {replicates.shape}")
    seeds, count = replicates.shape
    drawn = key_rng("seeds", key, seeds, count).integers(0, seeds, size=(count, seeds))
    return float(estimates.mean()), replicates[drawn, np.arange(count)[:, None]].mean(axis=1)
