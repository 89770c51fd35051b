"""Which batch size decodes fastest on this machine? (the CPU default of `default_batch_size`)

Prints milliseconds per image of one transformer forward pass and one VQGAN decode of real
cat-face tokens for a range of batch sizes, with the `catfaces` model, at the current number of
threads (set OMP_NUM_THREADS to compare). On these CPUs batches beyond ~8 images leave the
caches and get slower per image, unlike on a GPU.

    python -m benchmarks.batch_speed [--images 128] [--sizes 1,2,4,8,16,32,64,128] [--data DIR]
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.session import load_data, load_model
from maskgit.training import encode_dataset


def per_image_ms(fn, tokens: torch.Tensor, batch_size: int, repeats: int = 2) -> float:
    """Best of `repeats` passes over all tokens in batches of `batch_size`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for part in tokens.split(batch_size):
            fn(part)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--sizes", default="1,2,4,8,16,32,64,128")
    parser.add_argument("--data", default=None, help="a benchmark folder (bench data build); default: toyfaces")
    args = parser.parse_args()
    model, _ = load_model("catfaces")
    test = load_data(args.data, args.images)
    with torch.inference_mode():
        tokens = encode_dataset(model.eval(), test.gt, 8)
        model.detokenize(tokens[:8])  # first-call costs out of the way
        print(f"{len(tokens)} images, {torch.get_num_threads()} threads: ms per image")
        print(f"{'batch':>6} {'transformer':>12} {'VQGAN decode':>13}")
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"{size:>6} {per_image_ms(model.transformer, tokens, size):>12.2f} "
                  f"{per_image_ms(model.detokenize, tokens, size):>13.2f}", flush=True)


if __name__ == "__main__":
    main()
