"""`bench perf`: what one trial costs, against the workflow it replaces and against its own compute.

Three measurements in one process, on the same model, images and settings:

- the reference workflow (the seed report's): for every sweet spot s = 1..T, decode each image
  alone (batch 1) up to step s, then compute the FID of those outputs as a two-folder FID tool
  does: ground-truth features recomputed by torch-fidelity's network as it ships (in the
  harness's pass size, the fastest here), and the standard arithmetic (torch-fidelity's
  `fid_statistics_to_metric`, eigenvalues of a 2048 x 2048 product of covariances);
- the harness trial: `Evaluator.evaluate`, as `bench sweep` runs it (tokens of the masked images
  and ground-truth statistics already cached for this model and data, no trial cache);
- the harness's pure compute, each phase alone: the transformer's T steps over the test set, the
  VQGAN decodes of every step, the Inception passes over every step's images.

Both workflows use the same per-image random streams, so their tokens must be identical; their
FIDs agree to the float rounding of the two Inception variants and FID arithmetics (checked and
printed: within 1e-6). With `--compile` the harness's kernels round differently from the
reference's eager ones, so its tokens may differ (printed too).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from tqdm import tqdm

from bench.data import TestSet
from bench.errors import BenchError
from bench.fid import InceptionFeatures
from bench.session import LoadedModel, load_model, open_evaluator
from bench.trial import Evaluator, TrialSettings, cpu_timed, timed
from maskgit.decoding import DecodeConfig, image_generators, inpaint_tokens, pixel_holes_to_token_unknown
from maskgit.model import MaskGIT

TARGET_SPEEDUP = 3.0
TARGET_OVERHEAD = 1.15
TARGET_PEAK_GB = 4.0
TARGET_UNCERTAINTY_SHARE = 0.10  # bootstrap, FID-infinity and KID: at most 10% of a trial (issue 16)


@dataclass
class PerfResult:
    n_images: int
    steps: int
    device: str
    seconds: dict[str, float] = field(default_factory=dict)  # reference (and its parts), harness, each pure phase
    peak_rss_gb: float = 0.0  # after the harness trial (the reference runs after it)
    fid_harness: list[float] = field(default_factory=list)
    fid_reference: list[float] = field(default_factory=list)
    tokens_equal: bool | None = None
    compiled: bool = False  # the harness's transformer and VQGAN decoder ran through torch.compile
    trial_seconds: dict[str, float] = field(default_factory=dict)  # the harness trial's own phases
    fewer_than_asked: str = ""  # the test set when it holds fewer images than --limit asked for (all were used)

    @property
    def uncertainty_share(self) -> float:
        """What the interval, FID-infinity and KID add, as a share of the trial (wall seconds)."""
        return self.trial_seconds["uncertainty"] / self.seconds["harness"]

    @property
    def uncertainty_cpu_share(self) -> float:
        """The same in this process's CPU seconds (steadier on a shared core)."""
        return self.trial_seconds["uncertainty_cpu"] / self.seconds["harness_cpu"]

    @property
    def phases(self) -> float:
        return sum(self.seconds[k] for k in ("transformer", "vqgan_decode", "inception"))

    @property
    def speedup(self) -> float | None:
        return self.seconds["reference"] / self.seconds["harness"] if "reference" in self.seconds else None

    @property
    def overhead(self) -> float | None:
        return self.seconds["harness"] / self.phases if "inception" in self.seconds else None

    @property
    def max_fid_difference(self) -> float | None:
        if not self.fid_reference:
            return None
        return max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(self.fid_reference, self.fid_harness))

    @property
    def image_steps_per_second(self) -> float:
        return self.n_images * self.steps / self.seconds["harness"]


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def standard_fid(features: np.ndarray, reference: np.ndarray) -> float:
    """FID as two-folder tools compute it: torch-fidelity's arithmetic on both sets' statistics."""
    mu_sigma = [{"mu": f.mean(axis=0), "sigma": np.cov(f, rowvar=False)} for f in (features, reference)]
    return fid_statistics_to_metric(*mu_sigma, verbose=False)[KEY_METRIC_FID]


@torch.inference_mode()
def reference_workflow(test: TestSet, settings: TrialSettings, evaluator: Evaluator, extractor: InceptionFeatures,
                       seconds: dict[str, float], progress: bool = True) -> tuple[list[float], torch.Tensor]:
    """The seed report's loop; returns the FID per sweet spot and the tokens at each s [T, N, 256],
    and adds the seconds of its parts to `seconds` (decoding, Inception, FID arithmetic).

    Tokens to pixels go through the same function as the harness (a pure function of the tokens,
    whose batching would only change float rounding), so the two curves must agree; what differs
    is the work: batch-1 decoding redone up to every s, torch-fidelity's network as it ships, the
    ground-truth features recomputed for every FID, and the standard FID arithmetic.
    """
    cfg, device, model = settings.decode, evaluator.device, evaluator.model
    unknown = pixel_holes_to_token_unknown(test.holes)
    tokens = evaluator.tokens
    fids, per_step = [], []
    for s in tqdm(range(1, cfg.steps + 1), desc="reference workflow", unit="sweet spot", disable=not progress):
        with timed(seconds, "reference_decoding"):
            outputs = torch.cat([
                inpaint_tokens(model.transformer, tokens[i:i + 1].to(device), unknown[i:i + 1].to(device), cfg,
                               image_generators(settings.seed, [i]), stop_after=s).filled[-1].cpu()
                for i in range(len(test))])
            images = evaluator.images(outputs, settings)
        with timed(seconds, "reference_inception"):
            features = extractor.features(images).numpy()
            reference = extractor.features(test.gt).numpy()  # recomputed, as each run did
        with timed(seconds, "reference_fid"):
            fids.append(standard_fid(features, reference))
        per_step.append(outputs)
    return fids, torch.stack(per_step)


def stock_extractor(evaluator: Evaluator) -> InceptionFeatures:
    """The reference's features: torch-fidelity's network as it ships, in the harness's passes."""
    harness = evaluator.extractor
    return InceptionFeatures(harness.protocol, device=harness.device, batch_size=harness.batch_size,
                             weights=harness.weights_path, progress=False, stock=True)


def warm_up(evaluator: Evaluator, settings: TrialSettings) -> None:
    """One batch through each network before any timing: a process's first calls pay one-off costs
    (oneDNN kernel selection, allocator growth, thread start-up) that a sweep pays once, not per trial.
    Compiled networks run one whole trial instead, so that every batch shape is compiled."""
    if evaluator.compiled:
        evaluator.evaluate(settings)
        return
    tokens = evaluator.tokens[:evaluator.batch_size]
    with torch.inference_mode():
        evaluator.transformer(tokens.to(evaluator.device))
        images = evaluator.images(tokens, settings, slice(0, len(tokens)))
    evaluator.extractor.features(images)


def pure_phases(evaluator: Evaluator, settings: TrialSettings) -> dict[str, float]:
    """Seconds of each compute phase of a trial alone: transformer steps, VQGAN decodes, Inception passes."""
    seconds: dict[str, float] = {}
    with timed(seconds, "transformer"):
        steps = evaluator.decode(settings).filled  # [T, N, 256]
    with torch.inference_mode(), timed(seconds, "vqgan_decode"):
        images = evaluator.images(steps.reshape(-1, steps.shape[-1]), settings,
                                  torch.arange(steps.shape[1]).repeat(steps.shape[0]))
    with timed(seconds, "inception"):
        evaluator.extractor.features(images)
    return seconds


def run_perf(evaluator: Evaluator, settings: TrialSettings, *, reference: bool = True, phases: bool = True,
             progress: bool = True) -> PerfResult:
    """All the measurements, harness first (so the peak memory is the harness's). The evaluator must
    have no trial cache (`cache=False`): a cached trial would time nothing."""
    test, device, compiled = evaluator.test, evaluator.device, evaluator.compiled
    evaluator.prepare()  # cached per (model, data) in a sweep: not part of a trial's cost
    warm_up(evaluator, settings)
    result = PerfResult(len(test), settings.decode.steps, device, compiled=compiled)
    with timed(result.seconds, "harness"), cpu_timed(result.seconds, "harness_cpu"):
        trial = evaluator.evaluate(settings)
    result.trial_seconds = trial.seconds
    result.peak_rss_gb = peak_rss_gb()
    result.fid_harness = [trial.curve[s].fid for s in sorted(trial.curve)]
    if phases:
        result.seconds.update(pure_phases(evaluator, settings))
    if reference:
        stock = stock_extractor(evaluator)
        stock.features(test.gt[:stock.batch_size])  # its warm-up, as the harness's networks had theirs
        with timed(result.seconds, "reference"):
            fids, tokens = reference_workflow(test, settings, evaluator, stock, result.seconds, progress)
        result.fid_reference = fids
        result.tokens_equal = bool(torch.equal(tokens, evaluator.decode(settings).filled))
    return result


def default_settings(steps: int, schedule: str = "cosine") -> TrialSettings:
    return TrialSettings(decode=DecodeConfig(schedule=schedule, steps=steps), sweet_spot=None)


def perf_lines(result: PerfResult) -> list[str]:
    s = result.seconds

    def verdict(ok: bool) -> str:
        return "meets target" if ok else "MISSES target"

    def part(label: str, seconds: float) -> str:
        """An indented row: the seconds of one part of the line above."""
        return f"    {label:<24}{seconds:9.2f} s"

    compiled = ", transformer and VQGAN compiled" if result.compiled else ""
    lines = [f"bench perf: {result.n_images} images, T = {result.steps}, device {result.device}{compiled}",
             *([f"  (--limit asked for more: {result.fewer_than_asked} holds {result.n_images} test images, all "
                "used)"] if result.fewer_than_asked else []),
             f"  harness trial             {s['harness']:9.2f} s   "
             f"({result.image_steps_per_second:.1f} images*steps/s; {s['harness_cpu']:.2f} s of CPU)",
             f"    {'interval, FID-inf, KID':<24}{result.trial_seconds['uncertainty']:9.2f} s   "
             f"({result.uncertainty_share:.1%} of the trial; CPU {result.trial_seconds['uncertainty_cpu']:.2f} s = "
             f"{result.uncertainty_cpu_share:.1%}; {verdict(result.uncertainty_cpu_share <= TARGET_UNCERTAINTY_SHARE)} "
             f"<= {TARGET_UNCERTAINTY_SHARE:.0%})"]
    if result.overhead is not None:
        lines += [part("transformer steps alone", s["transformer"]), part("VQGAN decodes alone", s["vqgan_decode"]),
                  part("Inception passes alone", s["inception"]), part("sum of pure phases", result.phases),
                  f"  overhead harness / phases {result.overhead:9.3f} x   "
                  f"({verdict(result.overhead <= TARGET_OVERHEAD)} <= {TARGET_OVERHEAD})"]
    lines.append(f"  peak resident memory      {result.peak_rss_gb:9.2f} GB  "
                 f"({verdict(result.peak_rss_gb < TARGET_PEAK_GB)} < {TARGET_PEAK_GB:g} GB)")
    if result.speedup is not None:
        lines += [f"  reference workflow        {s['reference']:9.2f} s",
                  part("batch-1 decoding", s["reference_decoding"]),
                  part("Inception passes (stock)", s["reference_inception"]),
                  part("FID arithmetic", s["reference_fid"]),
                  f"  speedup reference/harness {result.speedup:9.2f} x   "
                  f"({verdict(result.speedup >= TARGET_SPEEDUP)} >= {TARGET_SPEEDUP:g})",
                  f"  same tokens: {'yes' if result.tokens_equal else 'NO'}; largest FID difference "
                  f"{result.max_fid_difference:.2e} (relative; {verdict(result.max_fid_difference <= 1e-6)} <= 1e-6)",
                  "  FID per step, harness:   " + " ".join(f"{v:.3f}" for v in result.fid_harness),
                  "  FID per step, reference: " + " ".join(f"{v:.3f}" for v in result.fid_reference)]
    return lines


def load_perf_model(checkpoint: str, preset_name: str | None) -> LoadedModel:
    """A shipped/trained checkpoint, or random weights of a preset (timing only: `lab` at full size)."""
    if preset_name is None:
        return load_model(checkpoint)
    from maskgit.presets import PRESETS, preset

    if preset_name not in PRESETS:
        raise BenchError(f"--preset {preset_name}: unknown, expected one of {', '.join(PRESETS)}")
    torch.manual_seed(0)
    return LoadedModel(MaskGIT(*preset(preset_name)), {"weights_sha256": f"random-{preset_name}-seed0"})


def perf_command(data: str | None, limit: int, steps: int, checkpoint: str, preset_name: str | None, device: str,
                 batch_size: int | None, schedule: str, reference: bool, phases: bool = True,
                 compiled: bool = False) -> PerfResult:
    if steps < 1 or limit < 2:
        raise BenchError(f"--steps must be >= 1 and --limit >= 2 (got {steps}, {limit})")
    try:
        settings = default_settings(steps, schedule)
    except ValueError as exc:
        raise BenchError(f"--schedule {schedule}: {exc}") from None
    evaluator = open_evaluator(load_perf_model(checkpoint, preset_name), data, limit, device, batch_size=batch_size,
                               cache=False, progress=False, compiled=compiled)
    result = run_perf(evaluator, settings, reference=reference, phases=phases)
    return replace(result, fewer_than_asked=str(evaluator.test.root)) if len(evaluator.test) < limit else result
