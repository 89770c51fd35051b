"""How fast is the FID feature pass here, and what does the cached per-step API save?

Prints images/second of InceptionV3 on the CPU in fp32, torch-fidelity's network as it ships vs
the harness's (batch norms folded into the convolutions, channels_last), and how far apart their
features are; then times a 4-step FID curve two ways: recomputing the reference for every step
(what calling a two-folder FID per step amounts to) and `FIDReference` + `fid_curve` (reference
features once, all steps in one batched pass). Uses real cat faces, from the folder --faces names;
the reference cache goes to a temporary folder.

    python -m benchmarks.fid_speed --faces '<folder of the Cats faces 64x64 images>' [--images 64] [--steps 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.data import image_files, read_image
from bench.fid import FIDReference, InceptionFeatures, fid_curve, fid_score

def load_faces(folder: Path, count: int) -> torch.Tensor:
    paths = image_files(folder)[:count]
    return torch.stack([torch.tensor(read_image(path, "RGB")).permute(2, 0, 1) for path in paths])


class Timer:
    """Wall and CPU seconds of this process: the machine is shared, so CPU time is the fairer figure."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def feature_rate(extractor: InceptionFeatures, images: torch.Tensor) -> str:
    extractor.features(images[: extractor.batch_size])  # warm-up: kernel selection, allocations
    with Timer() as timer:
        extractor.features(images)
    return f"{len(images) / timer.wall:.2f} images/s ({len(images) / timer.cpu:.2f} per CPU-second)"


def noisy_steps(gt: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Stand-ins for per-step predictions: the ground truth with noise shrinking step by step."""
    generator = torch.Generator().manual_seed(0)
    noise = [torch.randn(gt.shape, generator=generator) * 40 * (steps - s) / steps for s in range(steps)]
    return [(gt.float() + n).clamp(0, 255).to(torch.uint8) for n in noise]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--faces", type=Path, required=True,
                        help="folder of the Cats faces 64x64 images (what `bench data build --source` reads)")
    args = parser.parse_args(argv)
    cache = Path(tempfile.mkdtemp(prefix="fid-speed-"))

    gt = load_faces(args.faces, args.images)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images 64x64")
    features = {}
    for label, stock in (("torch-fidelity's network as it ships", True), ("harness network (folded)", False)):
        extractor = InceptionFeatures("tf", device="cpu", stock=stock, progress=False)
        print(f"feature pass, fp32, {label}: {feature_rate(extractor, gt)}")
        features[stock] = extractor.features(gt)
    difference = (features[True] - features[False]).abs().max() / features[True].abs().max()
    print(f"  largest feature difference between the two: {difference:.1e} (relative to the largest feature)")

    extractor = InceptionFeatures("tf", progress=False)
    steps = noisy_steps(gt, args.steps)
    with Timer() as naive:
        recomputed = []
        for pred in steps:
            ref = FIDReference.from_features(extractor.features(gt).numpy(), "tf", extractor.weights_sha)
            recomputed.append(fid_score(ref, pred, kid=False, extractor=extractor))
    with Timer() as cold:
        ref = FIDReference.load_or_compute(gt, "tf", extractor=extractor, cache_dir=cache)
        fid_curve(ref, steps, kid=False, extractor=extractor)
    with Timer() as warm:
        ref = FIDReference.load_or_compute(gt, "tf", extractor=extractor, cache_dir=cache)
        curve = fid_curve(ref, steps, kid=False, extractor=extractor)

    assert all(abs(a.fid - b.fid) <= 1e-6 * abs(b.fid) for a, b in zip(curve, recomputed))
    print(f"{args.steps}-step FID curve: {', '.join(f'{r.fid:.2f}' for r in curve)}")
    print(f"  reference recomputed per step: {naive}")
    for label, timer in (("reference computed once", cold), ("reference from the disk cache", warm)):
        print(f"  cached API, {label}: {timer} (speedup {naive.wall / timer.wall:.2f}x wall, "
              f"{naive.cpu / timer.cpu:.2f}x CPU)")


if __name__ == "__main__":
    main()
