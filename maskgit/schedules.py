"""Mask schedules: how many of the initially unknown tokens stay masked after each step.

A schedule is a function `gamma(r, n0)` of the ratio r = (t + 1) / T in (0, 1] (a float tensor)
and the per-image initial unknown count n0 (only `log` and `exp` use it); it returns the
fraction of the n0 tokens still masked, broadcast over r and n0. Every schedule is clipped to
[1e-6, 1] when looked up, so user schedules get the same guarantee. See docs/architecture.md#schedules.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

Schedule = Callable[[Tensor, Tensor], Tensor]

MIN_MASKED_FRACTION = 1e-6

_SCHEDULES: dict[str, Schedule] = {}
_POWER_NAME = re.compile(r"pow(.+)")


def register_schedule(name: str) -> Callable[[Schedule], Schedule]:
    """Decorator adding `gamma(r, n0)` to the registry under `name` (names are never shadowed)."""

    def register(fn: Schedule) -> Schedule:
        if name in _SCHEDULES:
            raise ValueError(f"schedule '{name}' is already registered")
        _SCHEDULES[name] = fn
        return fn

    return register


def schedule_names() -> list[str]:
    """Registered names in registration order; `pow<p>` (any p > 0) is accepted on top of these."""
    return list(_SCHEDULES)


def get_schedule(name: str) -> Schedule:
    """The clipped schedule for `name`: a registered name or `pow<p>` with p a positive float."""
    fn = _SCHEDULES.get(name)
    if fn is None:
        fn = _power_from_name(name)
    return _clipped(fn)


def _clipped(fn: Schedule) -> Schedule:
    @functools.wraps(fn)
    def schedule(r: Tensor, n0: Tensor) -> Tensor:
        return fn(r, n0).clamp(MIN_MASKED_FRACTION, 1.0)

    return schedule


def _power_from_name(name: str) -> Schedule:
    match = _POWER_NAME.fullmatch(name)
    if match is None:
        known = ", ".join(_SCHEDULES)
        raise ValueError(f"schedule '{name}' is unknown; known: {known}, pow<p> (any p > 0)")
    try:
        p = float(match.group(1))
    except ValueError:
        p = math.nan
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"schedule '{name}': the power in pow<p> must be a positive number")
    return _power(p)


def _power(p: float) -> Schedule:
    """1 - r^p: MaskGIT's pow schedules (square = 2, cubic = 3)."""

    def power(r: Tensor, n0: Tensor) -> Tensor:
        return 1 - r**p

    return power


def _log2_n0(n0: Tensor) -> Tensor:
    # log2(N0) is 0 or -inf for N0 <= 1, which would make log/exp undefined; such images have
    # their counts fixed by masked_counts' clamping anyway, so N0 < 2 is treated as 2.
    return torch.log2(torch.as_tensor(n0, dtype=torch.float64).clamp(min=2))


register_schedule("linear")(lambda r, n0: 1 - r)
register_schedule("cosine")(lambda r, n0: torch.cos(math.pi / 2 * r))
register_schedule("lab-cosine")(lambda r, n0: (1 + torch.cos(math.pi * r)) / 2)
register_schedule("square")(_power(2.0))
register_schedule("cubic")(_power(3.0))
register_schedule("sqrt")(lambda r, n0: 1 - torch.sqrt(r))
register_schedule("log")(lambda r, n0: -torch.log2(r) / _log2_n0(n0))
register_schedule("exp")(lambda r, n0: 1 - torch.exp2(-_log2_n0(n0) * (1 - r)))
register_schedule("arccos")(lambda r, n0: torch.arccos(r) / (math.pi / 2))


def _as_counts(n0: Tensor | Sequence[int]) -> Tensor:
    n0 = torch.as_tensor(n0)
    if n0.dim() != 1 or n0.dtype.is_floating_point or n0.dtype == torch.bool:
        raise ValueError(f"n0 must be a 1-D integer tensor of per-image counts, got {n0.dtype} {tuple(n0.shape)}")
    if (n0 < 0).any():
        raise ValueError("n0 must be >= 0 for every image")
    return n0.long()


def _ratios(steps: int, device: torch.device) -> Tensor:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.arange(1, steps + 1, dtype=torch.float64, device=device) / steps


def masked_counts(schedule: str | Schedule, steps: int, n0: Tensor | Sequence[int]) -> Tensor:
    """n_t, the tokens still masked after step t: LongTensor [T, B] (docs/architecture.md#schedules).

    unknown_now is the count still masked entering step t (N0 at t = 0, then n_{t-1}).
    While t < T-1, n_t = floor(N0 * gamma(r)) clamped to [1, unknown_now - 1]; at t = T-1 it is 0.
    When the two bounds conflict (unknown_now <= 1) progress wins: the last token is committed
    and the image stays done (n = 0) from then on. So an image with N0 = 0 is 0 at every step,
    one with N0 = 1 commits its token at step 0, and one with N0 < T finishes before step T-1.
    Evaluated in float64 so floor() lands on the exact integer for exact products.
    """
    gamma = get_schedule(schedule) if isinstance(schedule, str) else _clipped(schedule)
    n0 = _as_counts(n0)
    ratios = _ratios(steps, n0.device)
    targets = torch.floor(n0.double() * gamma(ratios[:, None], n0.double()[None, :])).long()
    targets = targets.expand(steps, n0.numel())
    counts = torch.zeros_like(targets)
    unknown_now = n0
    for t in range(steps - 1):
        unknown_now = targets[t].clamp(min=1).minimum(unknown_now - 1).clamp(min=0)
        counts[t] = unknown_now
    return counts


class MaskedFractions(NamedTuple):
    """The schedule's formula next to what masked_counts actually applies, per step and image."""

    ratio: Tensor  # [T] r = (t + 1) / T
    formula: Tensor  # [T, B] gamma(r), clipped
    applied: Tensor  # [T, B] n_t / N0 (0 for images with N0 = 0)


def masked_fractions(schedule: str | Schedule, steps: int, n0: Tensor | Sequence[int]) -> MaskedFractions:
    """Formula vs applied masked fraction, for plots that show what flooring and clamping do."""
    gamma = get_schedule(schedule) if isinstance(schedule, str) else _clipped(schedule)
    n0 = _as_counts(n0)
    ratios = _ratios(steps, n0.device)
    formula = gamma(ratios[:, None], n0.double()[None, :]).expand(steps, n0.numel())
    applied = masked_counts(schedule, steps, n0).double() / n0.clamp(min=1).double()
    return MaskedFractions(ratios, formula, applied)
