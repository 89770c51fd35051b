"""Iterative MaskGIT inpainting decoder (docs/architecture.md#decoding).

Pixel holes become unknown tokens, then each step predicts every masked token, commits the most
confident ones and re-masks the rest, as the schedule says. One step is a pure function of a
`DecodeState`; `inpaint_tokens` runs T of them and keeps every step's output, so the sweet spot
s (1 <= s <= T) is `filled[s-1]` without decoding again.

Random numbers come only from the caller's generators: uniforms for categorical sampling
(inverse CDF, one per token) and for the Gumbel choice noise (one per token). With one generator
per image (`image_generators`) an image's tokens do not depend on the batch it is decoded in,
and with CPU generators (the default) the noise does not depend on the device either. Tokens are
then identical across batchings as long as the transformer's logits are (exactly so on CPU; GPU
kernels may round differently per batch shape, which can flip rare near-ties).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from maskgit.pixels import harmonic_interpolate
from maskgit.schedules import get_schedule, masked_counts

ANNEALS: dict[str, Callable[[float], float]] = {
    "linear": lambda r: 1.0 - r,  # MaskGIT's code: the choice noise fades out as decoding ends
    "none": lambda r: 1.0,
    "cosine": lambda r: math.cos(math.pi * r / 2),
}
"""Choice-temperature anneal factor as a function of r = (t + 1) / T; add entries to extend."""

CONFIDENCES: dict[str, Callable[[Tensor], Tensor]] = {
    "log": lambda log_prob: log_prob,  # MaskGIT
    "prob": torch.exp,  # the seed report's variant: p(sample) plus the same Gumbel noise
}
"""Confidence of a sampled token as a function of its log-probability; add entries to extend."""


@dataclass(frozen=True)
class DecodeConfig:
    """One decoding configuration; invalid settings are rejected at construction."""

    schedule: str = "cosine"
    steps: int = 8
    choice_temperature: float = 4.5
    anneal: str = "linear"
    sampling_temperature: float = 1.0
    sampling: bool = True  # False: argmax instead of categorical sampling
    confidence: str = "log"
    dilation: int = 0  # widen the unknown region by this many whole tokens

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.choice_temperature >= 0:
            raise ValueError(f"choice_temperature must be >= 0, got {self.choice_temperature}")
        if not self.sampling_temperature > 0:
            raise ValueError(f"sampling_temperature must be > 0, got {self.sampling_temperature}")
        if not isinstance(self.dilation, int) or self.dilation < 0:
            raise ValueError(f"dilation must be an integer >= 0, got {self.dilation}")
        get_schedule(self.schedule)
        _check_known("anneal", self.anneal, ANNEALS)
        _check_known("confidence", self.confidence, CONFIDENCES)

    @property
    def needs_generator(self) -> bool:
        return self.sampling or self.choice_temperature > 0

    def choice_noise_scale(self, step: int) -> float:
        """tau_t = choice_temperature * anneal(r), r = (t + 1) / T."""
        return self.choice_temperature * ANNEALS[self.anneal]((step + 1) / self.steps)


def _check_known(setting: str, name: str, registry: dict) -> None:
    if name not in registry:
        raise ValueError(f"{setting} '{name}' is unknown; known: {', '.join(registry)}")


# ---------------------------------------------------------------- pixels -> tokens


def pixel_holes_to_token_unknown(holes: Tensor, token_size: int = 4) -> Tensor:
    """Hole mask bool [N, H, W] (True = hole) -> unknown tokens bool [N, (H/ts)*(W/ts)].

    A token is unknown when any of its pixels is a hole: its code depends on all of them.
    Tokens are flattened row-major, as the VQGAN's codebook indices are.
    """
    if holes.dim() != 3 or holes.dtype != torch.bool:
        raise ValueError(f"holes must be a bool tensor [N, H, W], got {holes.dtype} {tuple(holes.shape)}")
    n, h, w = holes.shape
    if h % token_size or w % token_size:
        raise ValueError(f"token_size {token_size} must divide the hole mask size {h}x{w}")
    blocks = holes.reshape(n, h // token_size, token_size, w // token_size, token_size)
    return blocks.any(dim=4).any(dim=2).flatten(1)


def dilate_tokens(unknown: Tensor, radius: int, grid: int = 16) -> Tensor:
    """Widen the unknown region by `radius` whole tokens (square neighbourhood, Chebyshev)."""
    if not isinstance(radius, int) or radius < 0:
        raise ValueError(f"dilation radius must be an integer >= 0, got {radius}")
    if unknown.dim() != 2 or unknown.shape[1] != grid * grid:
        shape = tuple(unknown.shape)
        raise ValueError(f"unknown must be [N, {grid * grid}] for a {grid}x{grid} token grid, got {shape}")
    if radius == 0:
        return unknown.clone()
    maps = unknown.reshape(-1, 1, grid, grid).float()
    widened = F.max_pool2d(maps, kernel_size=2 * radius + 1, stride=1, padding=radius)
    return widened.reshape(unknown.shape) > 0


# ---------------------------------------------------------------- random streams


def image_generators(
    seed: int, images: int | Iterable[int], device: str | torch.device = "cpu"
) -> list[torch.Generator]:
    """One generator per image, seeded from (seed, image index) so that an image's random numbers
    depend on its index in the dataset, not on the batch it lands in.

    `images` is a count (indices 0..n-1) or the dataset indices of the batch. CPU generators
    (default) give the same noise on every device; CUDA ones avoid a host-to-device copy.
    """
    indices = range(images) if isinstance(images, int) else images
    return [torch.Generator(device=device).manual_seed(_image_seed(seed, i)) for i in indices]


def _image_seed(seed: int, index: int) -> int:
    """The index-th output of SplitMix64 started at `seed`: distinct, well-mixed 64-bit seeds."""
    mask = (1 << 64) - 1
    z = (seed + (index + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


Generators = torch.Generator | Sequence[torch.Generator] | None


def _uniforms(generator: Generators, fields: int, batch: int, num_tokens: int, device: torch.device) -> Tensor:
    """`fields` uniform [0, 1) float64 tensors [B, N], stacked [fields, B, N].

    A single generator draws for the whole batch at once (results then depend on the batch);
    a sequence draws each image's numbers from its own generator, in a fixed per-image order.
    """
    if isinstance(generator, torch.Generator):
        u = torch.rand(batch, fields, num_tokens, generator=generator, device=generator.device, dtype=torch.float64)
    else:
        per_image = [torch.rand(fields, num_tokens, generator=g, device=g.device, dtype=torch.float64) for g in generator]
        u = torch.stack(per_image)
    return u.to(device).transpose(0, 1)


# ---------------------------------------------------------------- one step


@dataclass(frozen=True)
class DecodeState:
    """Where decoding stands before step `step`: masked positions hold the mask token."""

    tokens: Tensor  # [B, N] long
    masked: Tensor  # [B, N] bool: unknown and not yet committed
    step: int = 0


@dataclass(frozen=True)
class StepNoise:
    """This step's uniforms [B, N]; None where the config draws none (argmax, no choice noise)."""

    sampling: Tensor | None
    choice: Tensor | None


def draw_step_noise(
    generator: Generators, cfg: DecodeConfig, batch: int, num_tokens: int, device: torch.device
) -> StepNoise:
    """One step's uniforms: for sampling (unless argmax), then for the choice noise (unless tau = 0)."""
    wanted = (cfg.sampling, cfg.choice_temperature > 0)
    if not any(wanted):
        return StepNoise(None, None)
    fields = iter(_uniforms(generator, sum(wanted), batch, num_tokens, device))
    return StepNoise(*(next(fields) if w else None for w in wanted))


def sample_tokens(log_probs: Tensor, uniform: Tensor | None) -> Tensor:
    """Categorical sample by inverse CDF with one uniform per token; argmax when uniform is None."""
    if uniform is None:
        return log_probs.argmax(dim=-1)
    cdf = log_probs.double().exp().cumsum(dim=-1)
    total = cdf[..., -1]
    # The first cdf entry above a target in [0, total) always follows a positive-probability step,
    # so zero-probability tokens (the mask token) are never drawn; nextafter keeps u * total < total.
    target = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target[..., None], right=True).squeeze(-1)


def gumbel(uniform: Tensor) -> Tensor:
    """Gumbel(0, 1) from uniforms in [0, 1)."""
    return -torch.log(-torch.log(uniform.clamp(min=torch.finfo(uniform.dtype).tiny)))


def lowest_k_mask(scores: Tensor, k: Tensor) -> Tensor:
    """bool [B, N]: the k[b] lowest scores of each row (ties broken by position)."""
    order = scores.argsort(dim=-1, stable=True)
    positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(scores)
    return torch.zeros_like(scores, dtype=torch.bool).scatter(-1, order, positions < k[:, None])


def decode_step(
    state: DecodeState, logits: Tensor, n_masked: Tensor, noise: StepNoise, cfg: DecodeConfig, mask_token_id: int
) -> tuple[DecodeState, Tensor]:
    """One MaskGIT step (docs/architecture.md#decoding, steps 1-6) -> (next state, filled [B, N]).

    `logits` [B, N, V] are the transformer's for `state.tokens`; `n_masked` [B] is n_t. The mask
    token itself is never sampled; p(sample) is taken from the distribution sampled from (after
    sampling_temperature). Only positions still masked compete for staying masked.
    """
    logits = logits.float() / cfg.sampling_temperature
    logits[..., mask_token_id] = -math.inf
    log_probs = torch.log_softmax(logits, dim=-1)
    sampled = sample_tokens(log_probs, noise.sampling)
    filled = torch.where(state.masked, sampled, state.tokens)

    sampled_log_prob = log_probs.gather(-1, sampled[..., None]).squeeze(-1)
    confidence = CONFIDENCES[cfg.confidence](sampled_log_prob)
    if noise.choice is not None:
        confidence = confidence + cfg.choice_noise_scale(state.step) * gumbel(noise.choice).float()
    confidence = confidence.masked_fill(~state.masked, math.inf)

    masked = lowest_k_mask(confidence, n_masked)
    tokens = filled.masked_fill(masked, mask_token_id)
    return DecodeState(tokens, masked, state.step + 1), filled


# ---------------------------------------------------------------- the loop


@dataclass(frozen=True)
class DecodeResult:
    filled: Tensor  # [T, B, N] long: filled[t] = design's filled[t]
    still_masked: Tensor  # [T, B, N] bool: the latent mask after each step

    def at_sweet_spot(self, s: int) -> Tensor:
        """Tokens [B, N] output at sweet spot s (1 <= s <= T): filled[s-1]; s = T is fully decoded."""
        steps = self.filled.shape[0]
        if not 1 <= s <= steps:
            raise ValueError(f"sweet spot must be in [1, {steps}], got {s}")
        return self.filled[s - 1]


@torch.inference_mode()
def inpaint_tokens(
    transformer: nn.Module, tokens: Tensor, unknown: Tensor, cfg: DecodeConfig, generator: Generators = None,
    stop_after: int | None = None,
) -> DecodeResult:
    """Fill the unknown tokens of each image in T steps; every step's output is kept.

    `tokens` [B, N] long (values at unknown positions are ignored), `unknown` [B, N] bool; the
    decoder runs on `tokens.device`. `generator`: one per image (`image_generators`) for results
    that do not depend on batching, a single one for a batch-wide stream, or None when the config
    draws nothing (sampling=False and choice_temperature=0). `stop_after`: run only the first s of
    the T steps (a decoder that outputs at sweet spot s needs no more); they equal a full run's.
    """
    if transformer.training:
        raise ValueError("transformer is in training mode; call .eval() so dropout draws no random numbers")
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be a long tensor [B, N], got {tokens.dtype} {tuple(tokens.shape)}")
    if unknown.shape != tokens.shape or unknown.dtype != torch.bool:
        raise ValueError(f"unknown must be a bool tensor shaped like tokens {tuple(tokens.shape)}")
    batch, num_tokens = tokens.shape
    if cfg.needs_generator and generator is None:
        raise ValueError("sampling=True or choice_temperature > 0 needs a generator (see image_generators)")
    if generator is not None and not isinstance(generator, torch.Generator) and len(generator) != batch:
        raise ValueError(f"got {len(generator)} generators for a batch of {batch} images")
    if stop_after is not None and not 1 <= stop_after <= cfg.steps:
        raise ValueError(f"stop_after must be in 1..{cfg.steps}, got {stop_after}")

    unknown = unknown.to(tokens.device)
    if cfg.dilation:
        unknown = dilate_tokens(unknown, cfg.dilation, grid=math.isqrt(num_tokens))
    counts = masked_counts(cfg.schedule, cfg.steps, unknown.sum(dim=1))
    mask_token_id = transformer.mask_token_id
    state = DecodeState(tokens.masked_fill(unknown, mask_token_id), unknown)
    filled, still_masked = [], []
    for t in range(stop_after or cfg.steps):
        noise = draw_step_noise(generator, cfg, batch, num_tokens, tokens.device)
        state, step_filled = decode_step(state, transformer(state.tokens), counts[t], noise, cfg, mask_token_id)
        filled.append(step_filled)
        still_masked.append(state.masked)
    return DecodeResult(torch.stack(filled), torch.stack(still_masked))


# ---------------------------------------------------------------- pixels


Composite = Callable[[Tensor, Tensor, Tensor, int], Tensor]
COMPOSITES: dict[str, Composite] = {}


def register_composite(name: str):
    """Add a way of pasting decoded pixels into the holes: fn(decoded, reference, holes [N, 1, H, W], feather)
    -> float or uint8 [N, 3, H, W]; pixels outside the holes are reset to the reference afterwards."""
    def add(fn: Composite) -> Composite:
        COMPOSITES[name] = fn
        return fn
    return add


def composite(decoded: Tensor, reference: Tensor, holes: Tensor, mode: str = "hard", feather: int = 2) -> Tensor:
    """Reference pixels outside the holes, decoded ones inside (blended as `mode` says); uint8 [N, 3, H, W].

    The reference can be the masked input: its pixels outside the holes are the ground truth.
    """
    if mode not in COMPOSITES:
        raise ValueError(f"composite '{mode}' is unknown; known: {', '.join(COMPOSITES)}")
    if decoded.dtype != torch.uint8 or reference.dtype != torch.uint8 or decoded.shape != reference.shape:
        raise ValueError("decoded and reference must be uint8 tensors of the same shape [N, 3, H, W]")
    if holes.dtype != torch.bool or holes.shape != (decoded.shape[0], *decoded.shape[2:]):
        raise ValueError(f"holes must be a bool tensor [N, H, W] matching the images, got {tuple(holes.shape)}")
    if not isinstance(feather, int) or feather < 1:
        raise ValueError(f"feather must be an integer >= 1, got {feather}")
    holes = holes.to(decoded.device)[:, None]
    pasted = COMPOSITES[mode](decoded, reference, holes, feather)
    return torch.where(holes, pasted.round().clamp(0, 255).to(torch.uint8), reference)


@register_composite("hard")
def hard_composite(decoded: Tensor, reference: Tensor, holes: Tensor, feather: int) -> Tensor:
    return decoded


@register_composite("feather")
def feathered_composite(decoded: Tensor, reference: Tensor, holes: Tensor, feather: int) -> Tensor:
    """The blend ramps inside each hole over `feather` pixels (decoded weight k / (feather + 1) at
    Chebyshev distance k from the nearest known pixel), so seams soften without leaking into known pixels."""
    weight = _hole_depth(holes.float(), feather) / (feather + 1)
    return weight * decoded.float() + (1 - weight) * reference.float()


@register_composite("seamless")
def seamless_composite(decoded: Tensor, reference: Tensor, holes: Tensor, feather: int) -> Tensor:
    """Poisson cloning: inside the holes the decoded pixels keep their gradients (the detail the
    model made) while a harmonic correction, interpolated from the differences on the known pixels,
    takes away the colour seam at the hole border (membrane interpolation, Farbman et al. 2009)."""
    known = ~holes
    difference = reference.float() - decoded.float()
    return decoded.float() + harmonic_interpolate(torch.where(known, difference, 0.0), known)


def _hole_depth(holes: Tensor, limit: int) -> Tensor:
    """For each hole pixel, 1 + its Chebyshev distance to the nearest known pixel, capped at limit + 1.

    Outside the image counts as hole, so holes touching the border are not faded there.
    """
    depth, eroded = holes.clone(), holes
    for _ in range(limit):
        eroded = -F.max_pool2d(-eroded, kernel_size=3, stride=1, padding=1)
        depth += eroded
    return depth
