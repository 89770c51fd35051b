"""Calibration on real decoding: replicates of one configuration (the shipped toyfaces model, 32 new
toy faces, real Inception features) differ only by their seeds, so the expected difference of their
FIDs is 0 and the paired 95% interval of each difference should contain 0 in about 95% of pairs.

Measured with the toyfaces model retrained on toyfaces-v3 (6 seeds, all 15 pairs, steps 2 and 4 of
cosine T = 4, hard paste; FIDs 115-135 at N = 32): 28 of 30 intervals contain 0 (0.933); the median
of |difference| / half-width is 0.30 (a calibrated normal interval gives 0.34). The pairs share
seeds, so the 30 checks are not independent; the test asserts coverage >= 0.80 (independent checks
at 0.95 would fall below that with probability 3e-4) and, so that an interval too wide to mean
anything cannot pass, a median ratio >= 0.15 (an interval 2.3x too wide gives 0.15). About 45 s on
one CPU core (384 Inception passes).
"""

from __future__ import annotations

import itertools

import numpy as np

from bench.session import open_evaluator
from bench.stats import paired_difference
from bench.toyfaces import generate_toyfaces
from bench.trial import TrialSettings
from conftest import write_test_folder
from maskgit.decoding import DecodeConfig
from maskgit.holes import stroke_mask

IMAGES, SEEDS = 32, 6
LEAST_COVERAGE, LEAST_MEDIAN_RATIO = 0.80, 0.15


def test_replicates_of_one_configuration_differ_within_the_paired_interval(tmp_path, bench_home, one_torch_thread):
    faces = generate_toyfaces(IMAGES, seed=7)  # not the model's training faces (seed 0)
    rng = np.random.default_rng(7)
    folder = write_test_folder(tmp_path / "test", faces, np.stack([stroke_mask(rng) for _ in faces]))
    evaluator = open_evaluator("toyfaces", str(folder), None, "cpu", batch_size=IMAGES, cache=False, progress=False)
    settings = TrialSettings(DecodeConfig(schedule="cosine", steps=4), sweet_spot=2, composite="hard")
    result = evaluator.evaluate(settings, seeds=list(range(SEEDS)))
    covered, ratios = [], []
    for a, b in itertools.combinations(result.seed_results, 2):
        for step in settings.steps_needed():
            difference = paired_difference(a.curve[step].fid, a.replicates[step], b.curve[step].fid, b.replicates[step])
            covered.append(difference.lo <= 0 <= difference.hi)
            ratios.append(abs(difference.estimate) / ((difference.hi - difference.lo) / 2))
    assert len(covered) == 30
    coverage, median_ratio = float(np.mean(covered)), float(np.median(ratios))
    print(f"coverage {coverage:.3f} of {len(covered)}, median |difference| / half-width {median_ratio:.2f}")
    assert coverage >= LEAST_COVERAGE
    assert median_ratio >= LEAST_MEDIAN_RATIO
