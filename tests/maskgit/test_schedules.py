import math

import pytest
import torch

from maskgit import schedules
from maskgit.schedules import (
    MIN_MASKED_FRACTION,
    get_schedule,
    masked_counts,
    masked_fractions,
    register_schedule,
    schedule_names,
)

RATIOS = [0.05, 0.125, 1 / 3, 0.5, 0.7, 0.9, 1.0]
N0 = 200

# The table of docs/architecture.md#schedules, written out with the math module.
FORMULAS = {
    "linear": lambda r, n0: 1 - r,
    "cosine": lambda r, n0: math.cos(math.pi * r / 2),
    "lab-cosine": lambda r, n0: (1 + math.cos(math.pi * r)) / 2,
    "square": lambda r, n0: 1 - r**2,
    "cubic": lambda r, n0: 1 - r**3,
    "pow2.5": lambda r, n0: 1 - r**2.5,
    "pow0.5": lambda r, n0: 1 - r**0.5,
    "sqrt": lambda r, n0: 1 - math.sqrt(r),
    "log": lambda r, n0: -math.log2(r) / math.log2(n0),
    "exp": lambda r, n0: 1 - 2 ** (-math.log2(n0) * (1 - r)),
    "arccos": lambda r, n0: math.acos(r) / (math.pi / 2),
}


def clip(x):
    return min(max(x, MIN_MASKED_FRACTION), 1.0)


def test_registry_holds_every_schedule_of_the_design():
    assert set(schedule_names()) == {n for n in FORMULAS if not n.startswith("pow")}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_schedule_matches_its_formula(name):
    got = get_schedule(name)(torch.tensor(RATIOS, dtype=torch.float64), torch.tensor(float(N0)))
    expected = [clip(FORMULAS[name](r, N0)) for r in RATIOS]
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_schedule_is_non_increasing_and_clipped(name):
    r = torch.linspace(1e-4, 1, 2001, dtype=torch.float64)
    gamma = get_schedule(name)(r, torch.tensor(256.0))
    assert gamma.min() >= MIN_MASKED_FRACTION and gamma.max() <= 1.0
    assert (gamma[1:] <= gamma[:-1]).all()
    assert gamma[-1] == MIN_MASKED_FRACTION  # every formula reaches 0 at r = 1, clipped up


def test_log_schedule_is_clipped_to_one_for_small_ratios():
    assert get_schedule("log")(torch.tensor([1e-9], dtype=torch.float64), torch.tensor(16.0)).item() == 1.0


def test_n0_dependent_schedules_broadcast_per_image():
    n0 = torch.tensor([16.0, 256.0])
    gamma = get_schedule("exp")(torch.tensor([[0.5]], dtype=torch.float64), n0[None, :])
    assert gamma.shape == (1, 2)
    assert gamma[0].tolist() == pytest.approx([1 - 16**-0.5, 1 - 256**-0.5])


@pytest.mark.parametrize("name", ["pow", "pow0", "pow-1", "powx", "pownan", "powinf"])
def test_bad_power_is_rejected(name):
    with pytest.raises(ValueError, match=f"schedule '{name}'"):
        get_schedule(name)


def test_unknown_schedule_error_lists_known_names():
    with pytest.raises(ValueError, match=r"schedule 'foo' is unknown; known: linear, cosine, .*pow<p>"):
        get_schedule("foo")


def test_user_registration(monkeypatch):
    monkeypatch.setattr(schedules, "_SCHEDULES", dict(schedules._SCHEDULES))

    @register_schedule("half-then-linear")
    def half(r, n0):
        return 0.5 * (1 - r) + 2.0  # deliberately > 1: lookups clip it

    assert "half-then-linear" in schedule_names()
    assert get_schedule("half-then-linear")(torch.tensor([0.5]), torch.tensor(4.0)).item() == 1.0
    with pytest.raises(ValueError, match="already registered"):
        register_schedule("cosine")(half)


def reference_counts(name, steps, n0):
    """docs/architecture.md#schedules token counts in plain Python (progress first when unknown_now <= 1)."""
    counts, unknown_now = [], n0
    for t in range(steps):
        r = (t + 1) / steps
        if t == steps - 1:
            n = 0
        else:
            n = max(0, min(unknown_now - 1, max(1, math.floor(n0 * clip(FORMULAS[name](r, max(n0, 2)))))))
        counts.append(n)
        unknown_now = n
    return counts


@pytest.mark.parametrize("name", ["linear", "cosine", "lab-cosine", "pow2.5", "log", "exp", "arccos"])
@pytest.mark.parametrize("steps", [1, 2, 7, 12])
def test_masked_counts_follow_step_5(name, steps):
    n0 = [256, 99, 37, 5, 2, 1, 0]
    got = masked_counts(name, steps, torch.tensor(n0))
    assert got.dtype == torch.long and got.shape == (steps, len(n0))
    assert got.T.tolist() == [reference_counts(name, steps, n) for n in n0]


def test_masked_counts_linear_by_hand():
    # floor(10 * (1 - r)) for r = 1/4, 2/4, 3/4, then 0.
    assert masked_counts("linear", 4, [10]).T.tolist() == [[7, 5, 2, 0]]
    # the clamp to [1, unknown_now - 1]: 3 tokens over 6 steps commit one per step, then stay done.
    assert masked_counts("cosine", 6, [3]).T.tolist() == [[2, 1, 0, 0, 0, 0]]
    # floor(2 * arccos(1/3) / (pi/2)) = 1 keeps one masked; then the last one is committed.
    assert masked_counts("arccos", 3, [2]).T.tolist() == [[1, 0, 0]]


def test_masked_counts_invariants():
    n0 = torch.tensor([256, 150, 40, 9, 3, 1, 0])
    for name in schedule_names() + ["pow1.7"]:
        for steps in (1, 3, 8, 16):
            counts = masked_counts(name, steps, n0)
            assert (counts[-1] == 0).all()
            before = torch.cat([n0[None], counts[:-1]])
            commits = before - counts
            # at least one token committed per step while any are left, one kept masked where possible
            assert ((commits >= 1) | (before == 0)).all()
            keep = torch.arange(steps)[:, None] < steps - 1
            assert ((counts >= 1) | ~keep | (before <= 1)).all()
            assert (counts >= 0).all()


def test_edge_images_with_no_or_one_unknown_token():
    counts = masked_counts("cosine", 5, [0, 1])
    assert counts.T.tolist() == [[0] * 5, [0] * 5]


def test_masked_counts_rejects_bad_settings():
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        masked_counts("cosine", 0, [10])
    with pytest.raises(ValueError, match="n0 must be >= 0"):
        masked_counts("cosine", 4, [-1])
    with pytest.raises(ValueError, match="unknown"):
        masked_counts("nope", 4, [10])


def test_masked_fractions_report_formula_and_applied():
    fractions = masked_fractions("linear", 4, [10, 0])
    assert fractions.ratio.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert fractions.formula[:, 0].tolist() == pytest.approx([0.75, 0.5, 0.25, MIN_MASKED_FRACTION])
    assert fractions.applied[:, 0].tolist() == pytest.approx([0.7, 0.5, 0.2, 0.0])
    assert fractions.applied[:, 1].tolist() == [0.0] * 4
