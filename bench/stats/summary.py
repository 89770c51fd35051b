"""Everything recorded about one FID, from one step's features: the entry point for trials and commands."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.stats.bootstrap import DEFAULT_LEVEL, DEFAULT_REPLICATES, bootstrap_indices, interval
from bench.stats.gram import ReferenceGram, fid_replicates, weighted_fid
from bench.stats.small_n import fid_infinity, kid_with_std

MIN_IMAGES_FOR_INFINITY = 8  # below this the subsets of n/4..n are 2..n images: FID-infinity is NaN


@dataclass(frozen=True)
class FidSummary:
    """FID with its interval over test images (covering E[FID_N]), FID-infinity and KID with a real spread.

    `replicates` are kept (B floats) so that any later comparison on the same test set pairs them
    with another summary's by subtraction (`paired_difference`).
    """

    fid: float
    lo: float
    hi: float
    replicates: np.ndarray
    fid_infinity: float
    kid: float
    kid_std: float

    def metrics(self) -> dict[str, float]:
        """Flat names for trackers and tables."""
        return {"fid": self.fid, "fid_ci_low": self.lo, "fid_ci_high": self.hi, "fid_infinity": self.fid_infinity,
                "kid": self.kid, "kid_std": self.kid_std}


def summarize(reference: ReferenceGram, features: np.ndarray, key: str,
              replicates: int = DEFAULT_REPLICATES, level: float = DEFAULT_LEVEL) -> FidSummary:
    """The summary of generated `features` [N, D], row k pairing with the reference's image k.

    `key` names the test set (its content hash): it fixes the bootstrap indices and the
    FID-infinity and KID subsets, so summaries on one test set are paired with each other.
    """
    grams = reference.paired(features)
    estimate = weighted_fid(grams, np.ones(grams.n))
    draws = fid_replicates(grams, bootstrap_indices(key, grams.n, replicates))
    kid, kid_std = kid_with_std(grams, key)
    infinity = fid_infinity(grams, key).estimate if grams.n >= MIN_IMAGES_FOR_INFINITY else math.nan
    return FidSummary(estimate, *interval(estimate, draws, level), draws, infinity, kid, kid_std)
