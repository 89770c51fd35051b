"""FID and KID between image sets, offline and reproducible (docs/architecture.md#fid).

Every number maskgit-bench reports is an FID, so this module pins down what produced it: the
InceptionV3 weights (resolved without a network, hashed), the resize protocol, and the sample
counts. The ground-truth side is computed once per (pixels, protocol, weights) and cached on disk,
so a per-decoding-step curve only pays for the predictions.

Protocols (how uint8 images reach the network):

- ``tf``: the uint8 images go straight into torch-fidelity's ``FeatureExtractorInceptionV3``,
  which resizes them to 299 with its TF1-compatible bilinear resize and scales by (x - 128) / 128,
  as the TensorFlow graph behind every standard FID does.
- ``lab``: the course grader's pytorch-fid preprocessing: x / 255, torch
  ``F.interpolate(size=(299, 299), mode="bilinear", align_corners=False)``, then 2x - 1. The
  float result is handed to the same network's first convolution by a forward pre-hook; the
  extractor's own resize and scaling run on the uint8 batch but their output is discarded.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch_fidelity import feature_extractor_inceptionv3 as fidelity_inception
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from tqdm import tqdm

from bench.data import load_image_folder, read_gt_csv
from bench.devices import default_batch_size, resolve_device
from bench.errors import BenchError
from bench.files import atomic_write, cache_home
from bench.inception_weights import NETWORK_SIZE, fidelity_network, resolve_inception_weights, weights_sha
from bench.stats import DEFAULT_LEVEL, FidSummary, ReferenceGram, summarize

KID_SEED = 2020  # torch-fidelity's default rng_seed, so its calculate_metrics draws the same subsets
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


# --- features --------------------------------------------------------------------------------


def _tf_features(network: FeatureExtractorInceptionV3, images: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's own path: TF1 bilinear resize of the uint8 images, (x - 128) / 128."""
    return network(images)[0]


@contextmanager
def _stem_input(network: FeatureExtractorInceptionV3, pixels: torch.Tensor) -> Iterator[None]:
    """Make the network's first convolution read ``pixels`` instead of its own preprocessed input."""

    def replace(module, inputs):
        if inputs[0].shape != pixels.shape:
            raise RuntimeError(f"stem input {tuple(inputs[0].shape)} != replacement {tuple(pixels.shape)}")
        return (pixels,)

    handle = network.Conv2d_1a_3x3.register_forward_pre_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def _lab_features(network: FeatureExtractorInceptionV3, images: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's path (the lab grader): torch bilinear resize of x / 255, then 2x - 1."""
    scaled = images.to(network.feature_extractor_internal_dtype) / 255
    resized = F.interpolate(scaled, size=(NETWORK_SIZE, NETWORK_SIZE), mode="bilinear", align_corners=False)
    with _stem_input(network, resized * 2 - 1):
        return network(images)[0]


PROTOCOLS: dict[str, Callable[[FeatureExtractorInceptionV3, torch.Tensor], torch.Tensor]] = {
    "tf": _tf_features,
    "lab": _lab_features,
}


def check_protocol(protocol: str) -> str:
    """The protocol name, or a BenchError naming --protocol."""
    if protocol not in PROTOCOLS:
        raise BenchError(f"--protocol {protocol!r}: unknown, expected one of {', '.join(PROTOCOLS)}")
    return protocol


def check_images(images: torch.Tensor, name: str) -> torch.Tensor:
    """Images in this project are uint8 [N, 3, H, W] with N >= 1."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError(f"{name}: expected uint8 [N>0, 3, H, W], got {images.dtype} {tuple(images.shape)}")
    return images


def fold_batchnorm(network: FeatureExtractorInceptionV3) -> FeatureExtractorInceptionV3:
    """Fold every block's inference batch norm into its convolution, in place: the same function (to
    float rounding) with one pass over each layer's activations fewer."""
    for block in network.modules():
        if isinstance(block, fidelity_inception.BasicConv2d) and isinstance(block.bn, torch.nn.BatchNorm2d):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = torch.nn.Identity()
    return network


@functools.lru_cache(maxsize=2)
def _inception(weights: Path, device: str, stock: bool) -> FeatureExtractorInceptionV3:
    """Load the network once per (weights, device, variant): reference and predictions share it."""
    network = fidelity_network(weights).to(device)
    if stock:
        return network
    fold_batchnorm(network)
    return network.to(memory_format=torch.channels_last) if device.startswith("cpu") else network


@contextmanager
def _exact_fp32(device: torch.device) -> Iterator[None]:
    """Keep CUDA convolutions in IEEE fp32 (cuDNN defaults to TF32), so GPU features match CPU ones."""
    if device.type != "cuda":
        yield
        return
    conv = torch.backends.cudnn.conv
    saved = conv.fp32_precision
    conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision = saved


class InceptionFeatures:
    """InceptionV3 pool3 features (2048-d) of uint8 images under one protocol.

    CUDA runs big batches; the CPU runs fp32 with channels_last. Both run the network with its
    batch norms folded into the convolutions (`fold_batchnorm`); on these CPUs the two changes
    together make it 2x faster than `stock=True`, torch-fidelity's network exactly as it ships
    (`bench perf`'s reference workflow). The two give the same features to float rounding
    (benchmarks/fid_speed.py: 3.5e-6 of the largest feature on real faces). Every pass has the full
    batch shape (the last one padded), so an image's features are the same bits whichever images
    share its pass. The network loads on first use, so a cached reference never loads it.
    """

    def __init__(
        self,
        protocol: str = "tf",
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        weights: str | Path | None = None,
        progress: bool = True,
        stock: bool = False,
    ) -> None:
        self.protocol = check_protocol(protocol)
        self.device = torch.device(resolve_device(device))
        self.batch_size = batch_size or default_batch_size(self.device)
        self.stock = stock
        self.weights_path = resolve_inception_weights(weights)
        self.weights_sha = weights_sha(self.weights_path)
        self.progress = progress

    @property
    def cache_key(self) -> str:
        """What features depend on besides the pixels and the protocol, for caches of anything computed
        from them: the weights, the pass shape and device (features are exact per pass shape), and the
        network variant."""
        variant = "stock" if self.stock else "folded"
        return f"{self.weights_sha}-b{self.batch_size}-{self.device.type}-{variant}"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Features as float64 [N, 2048] on the CPU (the network computes in fp32)."""
        check_images(images, "images")
        network = _inception(self.weights_path, str(self.device), self.stock)
        forward = PROTOCOLS[self.protocol]
        chunks = []
        bar = tqdm(
            total=len(images), unit="img", desc=f"InceptionV3 {self.protocol}", leave=False,
            disable=None if self.progress else True,  # None: a bar on terminals only
        )
        with bar, torch.inference_mode(), _exact_fp32(self.device):
            for batch in images.split(self.batch_size):
                count = len(batch)
                if count < self.batch_size:  # every pass has one shape, so an image's features never
                    padding = batch[-1:].expand(self.batch_size - count, *batch.shape[1:])  # depend on its batch
                    batch = torch.cat([batch, padding])
                chunks.append(forward(network, batch.to(self.device))[:count].to("cpu", torch.float64))
                bar.update(count)
        return torch.cat(chunks)


# --- statistics and scores -------------------------------------------------------------------


def pixels_sha(images: torch.Tensor) -> str:
    """sha256 of the pixels and their shape: the identity of an image set."""
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class FIDReference:
    """The real side of an FID: ground-truth features, their mean and covariance, and provenance."""

    features: np.ndarray  # float64 [N, 2048]
    mu: np.ndarray
    sigma: np.ndarray
    protocol: str
    weights_sha: str

    @classmethod
    def from_features(cls, features: np.ndarray, protocol: str, weights_sha: str) -> FIDReference:
        return cls(features, features.mean(axis=0), np.cov(features, rowvar=False), protocol, weights_sha)

    @classmethod
    def load_or_compute(
        cls,
        gt: torch.Tensor,
        protocol: str = "tf",
        *,
        extractor: InceptionFeatures | None = None,
        cache_dir: Path | None = None,
    ) -> FIDReference:
        """The reference for ``gt`` images, from the disk cache when the same pixels were seen before.

        The cache key is the pixels' hash + protocol + the extractor's cache key; only the features
        are stored (float32, as the network computes them), since mean and covariance take a fraction
        of a second to rederive and the covariance alone would be 32 MB.
        """
        check_images(gt, "ground truth")
        extractor = _matching_extractor(protocol, extractor)
        key = f"{pixels_sha(gt)}-{protocol}-{extractor.cache_key}"
        name = f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
        path = (cache_dir or cache_home() / "fid-reference") / name
        if path.is_file():
            with np.load(path) as stored:
                features = stored["features"].astype(np.float64)
        else:  # rounded as stored, so a first run's FIDs equal every later run's
            features = extractor.features(gt).numpy().astype(np.float32).astype(np.float64)
            atomic_write(path, lambda file: np.savez(file, features=features.astype(np.float32)))
        return cls.from_features(features, protocol, extractor.weights_sha)

    @property
    def n(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class FIDResult:
    """One FID (and KID, None when not asked for) with what it depends on: protocol, weights, counts;
    `uncertainty` (from `fid_with_interval`): its interval over images, FID-infinity, replicates."""

    fid: float
    kid_mean: float | None
    kid_std: float | None
    protocol: str
    weights_sha: str
    n_pred: int
    n_ref: int
    uncertainty: FidSummary | None = None

    def summary(self) -> str:
        kid = "" if self.kid_mean is None else f"  KID {self.kid_mean:.6f} ± {self.kid_std:.6f}"
        interval = "" if self.uncertainty is None else f" [{self.uncertainty.lo:.2f}, {self.uncertainty.hi:.2f}]"
        infinity = ("" if self.uncertainty is None or not math.isfinite(self.uncertainty.fid_infinity)
                    else f"  FID-infinity {self.uncertainty.fid_infinity:.2f}")
        lines = [f"FID {self.fid:.4f}{interval}{infinity}{kid}  (protocol {self.protocol}, N pred {self.n_pred}, "
                 f"N ref {self.n_ref}, weights {self.weights_sha})"]
        if self.uncertainty is not None:
            lines.append(f"  [low, high]: {DEFAULT_LEVEL:.0%} bootstrap interval over the test images of the FID "
                         f"that {self.n_pred} images give on average; FID-infinity: extrapolated to infinitely "
                         "many images (docs/architecture.md#fid)")
        return "\n".join(lines)


def _matching_extractor(protocol: str, extractor: InceptionFeatures | None) -> InceptionFeatures:
    if extractor is None:
        return InceptionFeatures(protocol)
    if extractor.protocol != protocol:
        raise ValueError(f"extractor protocol {extractor.protocol!r} != reference protocol {protocol!r}")
    return extractor


def frechet_distance(features: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """FID between features [N, D] and the reference statistics (mu, sigma).

    |mu1 - mu|^2 + tr S1 + tr S - 2 tr sqrt(S1 S), the quantity of torch-fidelity's
    fid_statistics_to_metric, which takes tr sqrt(S1 S) from the general eigenvalues of the D x D
    product: 45 s per FID measured on these (shared) CPUs, many minutes for a per-step curve. Here,
    with F^T F = S1, the nonzero eigenvalues of S1 S are those of the symmetric PSD matrix F S F^T:
    F is the centred features / sqrt(N - 1) (N x D) when N <= D, else the symmetric square root of
    S1, so the eigenproblem is symmetric and min(N, D) large: under a second for N = 747. Negative
    round-off eigenvalues count as 0, as the real part of torch-fidelity's complex sqrt does.
    """
    n, d = features.shape
    if n < 2:
        raise ValueError(f"FID needs at least 2 feature rows, got {n}")
    mu1 = features.mean(axis=0)
    if n <= d:
        factor = (features - mu1) / math.sqrt(n - 1)
    else:
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(features, rowvar=False))
        factor = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(factor @ sigma @ factor.T), 0, None)).sum()
    diff = mu1 - mu
    return float(diff @ diff + np.sum(factor * factor) + np.trace(sigma) - 2 * trace_sqrt)


def _score(
    ref: FIDReference, features: np.ndarray, kid: bool, kid_subsets: int, kid_subset_size: int | None
) -> FIDResult:
    """FID (and KID, with torch-fidelity's own function) of prediction features against the reference.

    KID's argument order is (predictions, reference), as ``calculate_metrics(input1=pred, input2=gt)``.
    When one KID subset covers both whole sets every subset is the same set permuted, whose
    unbiased MMD is identical, so a single subset gives torch-fidelity's mean (and std 0).
    """
    fid = frechet_distance(features, ref.mu, ref.sigma)
    kid_mean = kid_std = None
    if kid:
        size = min(kid_subset_size or KID_SUBSET_SIZE, len(features), ref.n)
        subsets = 1 if size == len(features) == ref.n else kid_subsets
        out = kid_features_to_metric(
            torch.from_numpy(features),
            torch.from_numpy(ref.features),
            kid_subsets=subsets,
            kid_subset_size=size,
            rng_seed=KID_SEED,
            verbose=False,
        )
        kid_mean, kid_std = out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]
    return FIDResult(fid, kid_mean, kid_std, ref.protocol, ref.weights_sha, len(features), ref.n)


def _checked_extractor(ref: FIDReference, extractor: InceptionFeatures | None) -> InceptionFeatures:
    extractor = _matching_extractor(ref.protocol, extractor)
    if extractor.weights_sha != ref.weights_sha:
        raise ValueError(f"extractor weights {extractor.weights_sha} != reference weights {ref.weights_sha}")
    return extractor


def fid_score(
    ref: FIDReference,
    pred: torch.Tensor,
    kid: bool = True,
    *,
    extractor: InceptionFeatures | None = None,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int | None = None,
) -> FIDResult:
    """FID (and KID) of uint8 predictions against a reference; ``kid_subset_size`` defaults to min(1000, N)."""
    features = _checked_extractor(ref, extractor).features(check_images(pred, "predictions"))
    return _score(ref, features.numpy(), kid, kid_subsets, kid_subset_size)


def fid_curve(
    ref: FIDReference,
    pred_sets: Sequence[torch.Tensor],
    kid: bool = True,
    *,
    extractor: InceptionFeatures | None = None,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int | None = None,
) -> list[FIDResult]:
    """One result per prediction set (e.g. per decoding step), from one batched feature pass."""
    sizes = [len(check_images(images, f"predictions[{i}]")) for i, images in enumerate(pred_sets)]
    features = _checked_extractor(ref, extractor).features(torch.cat(list(pred_sets)))
    return [_score(ref, part.numpy(), kid, kid_subsets, kid_subset_size) for part in features.split(sizes)]


def fid_with_interval(
    ref: FIDReference,
    pred: torch.Tensor,
    key: str,
    *,
    extractor: InceptionFeatures | None = None,
    reference_gram: ReferenceGram | None = None,
) -> FIDResult:
    """FID of uint8 predictions (image k paired with reference image k) with its bootstrap interval,
    FID-infinity and KID with a real spread (bench.stats), all from one Inception pass.

    `key` fixes the resampled indices (the test set's content hash in the harness), so every FID
    with the same key pairs with this one; `reference_gram` saves rebuilding the reference's Grams.
    """
    features = _checked_extractor(ref, extractor).features(check_images(pred, "predictions")).numpy()
    found = summarize(reference_gram or ReferenceGram.of(ref.features), features, key)
    return FIDResult(found.fid, found.kid, found.kid_std, ref.protocol, ref.weights_sha, len(features), ref.n, found)


# --- image sets from disk (the `bench fid` command) ------------------------------------------


def load_fid_inputs(pred_dir: Path, gt: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions (an image folder) and ground truth (an image folder or a lab test_gt.csv), equal in number.

    The readers of bench.data reject unreadable files and anything but 64x64 RGB.
    """
    pred = load_image_folder(pred_dir)
    truth = read_gt_csv(gt) if gt.suffix.lower() == ".csv" else load_image_folder(gt)
    if len(pred) != len(truth):
        raise BenchError(
            f"PRED {pred_dir} has {len(pred)} images but GT {gt} has {len(truth)}: FID needs equal sets"
        )
    if len(pred) < 2:
        raise BenchError(f"PRED {pred_dir}: 1 image; FID needs at least 2 per set (a covariance)")
    return pred, truth


def fid_between(
    pred_dir: Path,
    gt: Path,
    protocol: str = "tf",
    kid: bool = True,
    *,
    batch_size: int | None = None,
    device: str | None = None,
    weights: Path | None = None,
) -> FIDResult:
    """`bench fid`: FID with its interval (and KID) of a folder of predictions against ground truth, file
    k paired with file k; reference cached. The bootstrap key is the ground truth's (`ground_truth_key`)."""
    check_protocol(protocol)
    pred, truth = load_fid_inputs(pred_dir, gt)
    extractor = InceptionFeatures(protocol, device=device, batch_size=batch_size, weights=weights)
    ref = FIDReference.load_or_compute(truth, protocol, extractor=extractor)
    result = fid_with_interval(ref, pred, ground_truth_key(truth), extractor=extractor)
    return result if kid else replace(result, kid_mean=None, kid_std=None)


def ground_truth_key(truth: torch.Tensor) -> str:
    """The bootstrap key of `bench fid`: 16 hex digits of the ground truth's pixel hash (its images in order).

    Keyed on the ground truth alone, as a sweep keys on its test set, so two prediction folders
    scored against one ground truth are resampled on the same images and their replicates pair
    (docs/architecture.md#uncertainty).
    """
    return pixels_sha(truth)[:16]
