"""Export a trained model in the shipped form: fp16 safetensors (loaded back as fp32) and a config.json
whose meta the model cards read (bench.model_card.shipped_meta), from the stage-2 checkpoint to ship
(a training output folder, i.e. its newest epoch, or its best/) and the stage-1 checkpoint it was
trained on. For maintainers shipping a model into maskgit/pretrained/NAME. The default decoding settings
(meta.decoding, which `bench inpaint` starts from) are the model card's choice, not training's: an
existing --out/config.json's are kept.

    python scripts/export_model.py --transformer runs/catfaces-tr/best --vqgan runs/catfaces-vqgan \\
        --name catfaces --data 'the real cat-face benchmark ...' --out maskgit/pretrained/catfaces
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench.model_card import shipped_meta
from maskgit.checkpoints import (CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_checkpoint, read_config,
                                 save_checkpoint)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transformer", required=True, help="the stage-2 checkpoint to ship")
    parser.add_argument("--vqgan", required=True, help="the stage-1 checkpoint it was trained on")
    parser.add_argument("--name", required=True, help="the shipped name (meta.name)")
    parser.add_argument("--data", required=True, help="the sentence saying what it was trained on (meta.data)")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.safetensors and config.json "
                                                                  "(its config.json's meta.decoding is kept)")
    args = parser.parse_args(argv)
    try:
        model, config = load_checkpoint(args.transformer)
        _, vqgan_config = load_checkpoint(args.vqgan, require_transformer=False)
        shipped = read_config(args.out).get("meta", {}) if (args.out / CONFIG_FILE).exists() else {}
    except CheckpointError as exc:
        print(f"export_model: {exc}", file=sys.stderr)
        return 2
    trained_on = config["meta"].get("vqgan_sha256")
    if trained_on is None:
        print(f"export_model: --transformer {args.transformer} records no VQGAN hash (vqgan_sha256), so --vqgan "
              f"{args.vqgan} cannot be checked to be its tokenizer", file=sys.stderr)
        return 2
    if trained_on != vqgan_config["weights_sha256"]:
        print(f"export_model: --transformer {args.transformer} was trained on the VQGAN {trained_on}, not "
              f"--vqgan {args.vqgan} ({vqgan_config['weights_sha256']})", file=sys.stderr)
        return 2
    try:
        meta = shipped_meta(args.name, args.data, vqgan_config["meta"], config["meta"])
    except ValueError as exc:
        print(f"export_model: --transformer {args.transformer}, --vqgan {args.vqgan}: {exc}", file=sys.stderr)
        return 2
    if "decoding" in shipped:
        meta["decoding"] = shipped["decoding"]
    sha = save_checkpoint(args.out, model, meta, dtype=torch.float16)
    size = (args.out / WEIGHTS_FILE).stat().st_size / 1e6
    kept = f"; kept meta.decoding from the {args.out / CONFIG_FILE} replaced" if "decoding" in shipped else ""
    print(f"{args.out}: fp16 weights, sha256 prefix {sha}, {size:.1f} MB (from {config['path']}){kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
