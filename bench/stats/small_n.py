"""Small-N honesty: FID-infinity and a KID whose standard deviation means something.

Chong and Forsyth ("Effectively Unbiased FID and Inception Score and where to find them", CVPR
2020) fit FID_N = FID_inf + c / N over subsets of several sizes and report the intercept. They
measured that law at N >= 5,000 > D = 2048. Below D, where every test set here lives, the bias
decays like N^-1/2 instead, measured twice:

- real Inception features (1,400 cat faces, two disjoint halves, so the true FD is 0): mean FID_N
  is 65.4, 48.3, 38.2, 25.7, 16.5 at N = 44, 88, 175, 350, 700, i.e. sqrt(N) * FID_N stays at
  430..510 while N * FID_N grows fourfold. Extrapolating from subsets of n/4..n gives, at n = 256:
  FID_N 30.2, the 1/N fit 25.4, the N^-1/2 fit 6.5; at n = 700: 16.7, 12.6, -2.3 (truth 0).
- the Gaussian model of bench.stats.calibration (D = 2048, true FD 17.07): mean error of FID_N,
  the 1/N fit and the N^-1/2 fit is 4.3, 3.7, 1.2 at n = 128; 2.1, 1.5, -0.6 at n = 256;
  1.0, 0.9, -0.4 at n = 500 (6 draws each; over 100 draws at n = 500 the N^-1/2 fit averaged
  16.59, mean |error| 0.78 against FID_N's 1.67). Fitting the exponent as well was unstable (sd 3-4).

So FID-infinity here is the intercept of FID against N^-1/2. The subsets are paired (image k on
both sides), so the bias of both sides' statistics is extrapolated away, and each subset FID comes
from the step's Gram matrices (no feature pass). It is noisier than FID_N (sd over draws 1.9
against 1.25 at n = 256 on the cat faces) and has no interval of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.stats.bootstrap import key_rng
from bench.stats.gram import PairedGrams, kid_unbiased, weighted_fid

BIAS_EXPONENT = 0.5  # FID_N - FID_inf ~ N^-1/2 below D (measured, see above)
FID_INFINITY_SIZES = 8  # subset sizes from n / 4 to n (the paper fits 15 sizes over a 10x range)
FID_INFINITY_SUBSETS = 2  # random subsets per size below n
KID_SUBSETS = 100
KID_MAX_SUBSET = 1000


@dataclass(frozen=True)
class FidInfinity:
    """The extrapolated FID, the fitted slope c of c * N^-1/2, and the points it was fitted to."""

    estimate: float
    slope: float
    sizes: np.ndarray
    fids: np.ndarray

    def at(self, n: int) -> float:
        """The fitted line's FID at n images."""
        return self.estimate + self.slope * n ** -BIAS_EXPONENT


def fid_infinity_sizes(n: int, count: int = FID_INFINITY_SIZES) -> np.ndarray:
    """Subset sizes spaced evenly in N^-1/2 from n / 4 to n (at least 2 images each)."""
    scaled = np.linspace(max(n // 4, 2) ** -BIAS_EXPONENT, n ** -BIAS_EXPONENT, count)
    return np.unique(np.round(scaled ** (-1 / BIAS_EXPONENT)).astype(int))


def fid_infinity(grams: PairedGrams, key: str, sizes: np.ndarray | None = None,
                 subsets: int = FID_INFINITY_SUBSETS) -> FidInfinity:
    """FID-infinity of one step: least squares of FID against N^-1/2 over paired random subsets.

    Subsets are drawn without replacement from a stream seeded by (key, n), so every step and trial
    on a test set uses the same subsets and their FID-infinities are paired as the bootstrap is.
    """
    n = grams.n
    sizes = fid_infinity_sizes(n) if sizes is None else np.asarray(sizes)
    if len(np.unique(sizes)) < 2 or sizes.min() < 2 or sizes.max() > n:
        raise ValueError(f"FID-infinity needs at least 2 distinct subset sizes in [2, {n}], got {sizes}")
    rng = key_rng("fid-infinity", key, n)
    points, fids = [], []
    for size in sizes:
        for _ in range(1 if size == n else subsets):
            weights = np.zeros(n)
            weights[rng.choice(n, size, replace=False)] = 1
            points.append(size)
            fids.append(weighted_fid(grams, weights))
    points, fids = np.array(points), np.array(fids)
    slope, intercept = np.polyfit(points ** -BIAS_EXPONENT, fids, 1)
    return FidInfinity(float(intercept), float(slope), points, fids)


def kid_subset_size(n: int) -> int:
    """min(1000, n // 2): subsets smaller than the set, so that they differ and their spread is real."""
    return max(2, min(KID_MAX_SUBSET, n // 2))


def kid_with_std(grams: PairedGrams, key: str, subsets: int = KID_SUBSETS,
                 subset_size: int | None = None) -> tuple[float, float]:
    """KID's mean and standard deviation over `subsets` random subsets (torch-fidelity's definition).

    When the subset size equals N every subset is the whole set permuted and the std is 0 (what
    `bench inpaint` printed); half-size subsets give a spread. Generated and reference subsets are
    drawn independently, as torch-fidelity does.
    """
    size = kid_subset_size(grams.n) if subset_size is None else subset_size
    if not 2 <= size <= grams.n:
        raise ValueError(f"KID subset size must be in [2, {grams.n}], got {size}")
    rng = key_rng("kid", key, grams.n, size)
    values = [kid_unbiased(grams, rng.choice(grams.n, size, replace=False), rng.choice(grams.n, size, replace=False))
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))
