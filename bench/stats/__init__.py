"""Statistics of FID: Gram-space FID, the paired bootstrap, FID-infinity and KID (no I/O, no tracking).

- gram: FID from N x N Gram matrices (exact, min(N, M)-sized eigenproblem), weighted for resamples.
- bootstrap: shared resample indices per test set, the calibrated interval, paired verdicts, seeds.
- small_n: FID-infinity (extrapolated along N^-1/2, measured to be the law below D) and KID's spread.
- summary: what a trial records per step (`summarize`).
- calibration: the Gaussian model with a closed-form FD that the intervals were calibrated on.

Cost per decoding step (CPU seconds of one thread, B = 200; a CPU trial is ~22 s at N = 64,
T = 8 and ~389 s at N = 747, T = 12): N = 64: 0.03 s (0.1 ms per replicate), about 1% of a
trial; N = 256: 0.28 s (1.1 ms per replicate), about 2.5%; N = 747: 3.1 s (Grams 0.07, replicates
2.5 at 12.5 ms each, FID-infinity 0.13, KID 0.41), 37 s per trial = 9.5%, less the 0.26 s per
step the Gram point FID saves over bench.fid's (0.03 against 0.29 s): 8.6%. Collapsing each
resample to its distinct images (63%) makes a replicate 2.4x cheaper (30 ms uncollapsed at 747);
float32 would save another 30% at ~1% of the replicates' spread in error, so float64 stays.
"""

from bench.stats.bootstrap import (DEFAULT_LEVEL, DEFAULT_REPLICATES, Difference, basic_interval,
                                   bootstrap_indices, interval, paired_difference, percentile_interval, seed_mean,
                                   shifted_interval)
from bench.stats.gram import (PairedGrams, ReferenceGram, fid_from_features, fid_replicates, kid_unbiased,
                              trace_sqrt_product, weighted_fid)
from bench.stats.summary import FidSummary, summarize
from bench.stats.small_n import FidInfinity, fid_infinity, fid_infinity_sizes, kid_subset_size, kid_with_std

__all__ = [
    "DEFAULT_LEVEL", "DEFAULT_REPLICATES", "Difference", "FidInfinity", "FidSummary", "PairedGrams",
    "ReferenceGram", "basic_interval", "bootstrap_indices", "fid_from_features", "fid_infinity",
    "fid_infinity_sizes", "fid_replicates", "interval", "kid_subset_size", "kid_unbiased", "kid_with_std",
    "paired_difference", "percentile_interval", "seed_mean", "shifted_interval", "summarize", "trace_sqrt_product",
    "weighted_fid",
]
