"""Train both stages of a cat-face model on a lent CUDA GPU in a few minutes (scripts/gpu_train.sh).

Each stage gets a time budget: a short timed probe on a few batches says how long an epoch takes,
and the stage trains as many whole epochs as fit (the cosine schedules span the run that is
actually trained). bf16 autocast, large batches, the issue-17 recipe: VQGAN with cosine decay to a
floor and the adaptive adversarial weight, best epoch by reconstruction FID when the Inception
weights are there (else the newest); transformer with hole-shaped masks. No MLflow on the lent
machine: progress goes to OUT/train-log.jsonl. The model ends as OUT/model, as scripts/export_model.py
writes it (fp16, the config meta the cards read).

    python -m benchmarks.gpu_train --data data/catfaces --out runs/gpu [--preset medium]
        [--vqgan-minutes 4] [--transformer-minutes 3] [--fid-images 500] [--name NAME] [--about TEXT] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from bench.data import load_image_folder
from bench.files import portable_name
from bench.model_card import shipped_meta
from bench.train import ReconstructionFID, stage1_record, training_data
from maskgit.checkpoints import load_checkpoint, save_checkpoint
from maskgit.model import MaskGIT
from maskgit.presets import preset
from maskgit.training import BEST_DIR, TrainCallback, TrainConfig, train_transformer, train_vqgan

PROBE_BATCHES = 12  # steps of the throwaway run that times a stage; the first two (CUDA's warm-up) not counted
EPOCH_OVERHEAD_S = 5.0  # an estimate of an epoch's validation (with FID) and checkpoint on the GPU


class JsonLinesLog(TrainCallback):
    """Every `every`-th step and every epoch as one JSON line (and epochs on stdout); stage 1's
    reconstruction FID through `recon_fid` when given."""

    def __init__(self, path: Path, stage: str, every: int = 20, recon_fid: ReconstructionFID | None = None):
        self.path, self.stage, self.every, self.recon_fid = path, stage, every, recon_fid

    def _write(self, record: dict) -> None:
        with self.path.open("a") as log:
            log.write(json.dumps({"stage": self.stage, "time": time.time(), **record}) + "\n")

    def on_step(self, step, metrics):
        if step % self.every == 0:
            self._write({"step": step, **metrics})

    def on_epoch(self, epoch, metrics, figure, checkpoint):
        self._write({"epoch": epoch, **metrics})
        print(self.stage, "epoch", epoch, {k: round(v, 4) for k, v in metrics.items()}, flush=True)

    def validation_metrics(self, images, reconstructions):
        return self.recon_fid(images, reconstructions) if self.recon_fid else {}


class StepClock(TrainCallback):
    """When each step ended (every step reads its loss, which waits for the GPU)."""

    def __init__(self):
        self.times: list[float] = []

    def on_step(self, step, metrics):
        self.times.append(time.perf_counter())


def epochs_in_budget(budget_s: float, step_s: float, steps_per_epoch: int) -> int:
    """Whole epochs that fit `budget_s` at `step_s` a step plus EPOCH_OVERHEAD_S an epoch (at least one)."""
    return max(1, math.floor(budget_s / (step_s * steps_per_epoch + EPOCH_OVERHEAD_S)))


def seconds_per_step(train, model: MaskGIT, images: torch.Tensor, val: torch.Tensor, cfg: TrainConfig) -> float:
    """Median time between steps of a throwaway run of PROBE_BATCHES steps on `model` (a copy):
    adversarial from the start (the dearer steps), a small hole-mask pool (drawing is not stepping)."""
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        train(model, images[:PROBE_BATCHES * cfg.batch_size], val[:cfg.batch_size], tmp,
              replace(cfg, epochs=1, keep_best=None, disc_start=0, hole_mask_pool=16), clock)
    return statistics.median(b - a for a, b in zip(clock.times[2:], clock.times[3:]))


def stage_config(args, stage: str) -> TrainConfig:
    """The recipe of one stage at GPU scale (bf16, large batches)."""
    common = {"device": args.device, "autocast": True, "progress": False, "seed": args.seed}
    if stage == "vqgan":
        return TrainConfig(batch_size=args.vqgan_batch_size, lr=args.vqgan_lr, lr_floor=args.vqgan_lr / 10,
                           disc_weight=args.disc_weight, adaptive_disc_weight=True,
                           keep_best="val_recon_fid" if args.fid_images else None, **common)
    return TrainConfig(batch_size=args.transformer_batch_size, lr=args.transformer_lr,
                       hole_masks=args.hole_masks, keep_best="val_masked_accuracy", **common)


def train_stage(args, stage: str, model: MaskGIT, train_images, val_images, out: Path, log: Path, meta: dict,
                recon_fid: ReconstructionFID | None = None) -> Path:
    """Probe, size the epochs to the stage's budget, train; returns the stage's output folder."""
    train = train_vqgan if stage == "vqgan" else train_transformer
    cfg = stage_config(args, stage)
    minutes = args.vqgan_minutes if stage == "vqgan" else args.transformer_minutes
    rows = len(train_images) * (2 if stage == "transformer" and cfg.hflip_tokens else 1)
    steps_per_epoch = rows // cfg.batch_size
    probe = MaskGIT(model.vqgan.cfg, model.transformer.cfg if model.transformer is not None else None)
    probe.load_state_dict(model.state_dict())
    step_s = seconds_per_step(train, probe, train_images, val_images, cfg)
    cfg.epochs = epochs_in_budget(60 * minutes, step_s, steps_per_epoch)
    steps = cfg.epochs * steps_per_epoch
    if stage == "vqgan":
        cfg.disc_start = int(steps * args.disc_start_fraction)
    else:
        cfg.warmup_steps = max(1, steps // 20)
    print(f"{stage}: {step_s:.3f} s a step; {cfg.epochs} epochs of {steps_per_epoch} steps in {minutes} min",
          flush=True)
    folder = out / stage
    train(model, train_images, val_images, folder, cfg, JsonLinesLog(log, stage, recon_fid=recon_fid), meta=meta)
    return folder


def checkpoint_meta(args, train_images, val_images) -> dict:
    """What both stages' checkpoints record: their data as `bench train` records it (the benchmark
    folder's name and the content hash of its train and val images: model cards read them, and the
    model ships, so no machine path), the preset and the options."""
    return {**training_data(args.data, train_images, val_images), "preset": args.preset, "gpu_train": vars_json(args)}


def vars_json(args) -> dict:
    """The options as JSON, folders by their portable name."""
    return {k: portable_name(v.absolute()) if isinstance(v, Path) else v for k, v in vars(args).items()}


def trained_on(meta: dict, n_train: int, n_val: int) -> str:
    """OUT/model's data sentence (meta.data) when --about gives none: the benchmark, its content hash
    and the splits' sizes."""
    return (f"the benchmark {meta['data']} (content hash {meta['data_hash']}): train split ({n_train:,} images; "
            f"val {n_val:,} for the validation metrics)")


def chosen(folder: Path) -> Path:
    """The stage's best epoch when one was kept, else its newest."""
    return folder / BEST_DIR if (folder / BEST_DIR).is_dir() else folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark folder with train/ and val/")
    parser.add_argument("--out", type=Path, required=True, help="output folder (training state, model, log)")
    parser.add_argument("--preset", default="medium", help="model size (default: medium)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vqgan-minutes", type=float, default=4.0)
    parser.add_argument("--transformer-minutes", type=float, default=3.0)
    parser.add_argument("--vqgan-batch-size", type=int, default=128)
    parser.add_argument("--vqgan-lr", type=float, default=4e-4, help="decays to a tenth of itself")
    parser.add_argument("--disc-weight", type=float, default=0.5, help="times the adaptive weight")
    parser.add_argument("--disc-start-fraction", type=float, default=0.3, help="of stage 1's steps before the GAN")
    parser.add_argument("--transformer-batch-size", type=int, default=256)
    parser.add_argument("--transformer-lr", type=float, default=5e-4)
    parser.add_argument("--hole-masks", type=float, default=0.5)
    parser.add_argument("--fid-images", type=int, default=0,
                        help="val images for stage 1's reconstruction FID (needs the Inception weights); 0: off")
    parser.add_argument("--name", help="OUT/model's shipped name (meta.name; default: DATA's name-PRESET)")
    parser.add_argument("--about", help="OUT/model's sentence saying what it was trained on (meta.data; default: "
                                        "the benchmark's name, content hash and split sizes)")
    parser.add_argument("--dry-run", action="store_true", help="print the two stages' configs and stop")
    args = parser.parse_args(argv)
    if args.dry_run:
        print(json.dumps({stage: asdict(stage_config(args, stage)) for stage in ("vqgan", "transformer")}, indent=2))
        return
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "train-log.jsonl"
    train_images, val_images = load_image_folder(args.data / "train"), load_image_folder(args.data / "val")
    vq_cfg, tr_cfg = preset(args.preset)
    torch.manual_seed(args.seed)
    recon_fid = ReconstructionFID(args.fid_images, args.device) if args.fid_images else None
    meta = checkpoint_meta(args, train_images, val_images)
    stage1 = train_stage(args, "vqgan", MaskGIT(vq_cfg, None), train_images, val_images, args.out, log, meta,
                         recon_fid)
    tokenizer, tokenizer_config = load_checkpoint(chosen(stage1), require_transformer=False)
    tr_cfg.num_codebook_vectors = vq_cfg.num_codebook_vectors
    model = MaskGIT(vq_cfg, tr_cfg)
    model.vqgan.load_state_dict(tokenizer.vqgan.state_dict())
    stage2 = train_stage(args, "transformer", model, train_images, val_images, args.out, log,
                         {**meta, **stage1_record(chosen(stage1), tokenizer_config)})
    final, config = load_checkpoint(chosen(stage2))
    about = args.about or trained_on(meta, len(train_images), len(val_images))
    name = args.name or f"{meta['data']}-{args.preset}"
    shipped = shipped_meta(name, about, tokenizer_config["meta"], config["meta"])
    save_checkpoint(args.out / "model", final, shipped, dtype=torch.float16)
    print(f"model: {args.out / 'model'}", flush=True)


if __name__ == "__main__":
    main()
