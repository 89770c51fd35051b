"""`bench train vqgan` and `bench train transformer`: the `train` sub-app of cli.py, in a private
sibling of it (docs/architecture.md#layers)."""

from __future__ import annotations

from pathlib import Path

import typer

from _cli_options import PRESETS_HELP, tracking_uri_option
from bench.defaults import DEFAULT_PRESET

train_app = typer.Typer(help="Train the two MaskGIT stages: the VQGAN tokenizer, then the transformer.\n\n"
                             "Example: bench train vqgan --data data/catfaces --out runs/catfaces-vqgan",
                        no_args_is_help=True)


_BF16_HELP = ("bf16 autocast: --bf16 also on CPUs with native bf16 (avx512_bf16/AMX: about 1.5x faster "
              "here), --fp32 never. Default: on for CUDA only.")


def _train_config(epochs, batch_size, lr, seed, device, bf16=None, progress=True, **extra):
    from maskgit.training import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, autocast=bf16,
                       progress=progress, **extra)


@train_app.command("vqgan")
def train_vqgan(
    data: Path = typer.Option(..., help="Benchmark folder with train/ and val/ (from `bench data build`)."),
    out: Path = typer.Option(..., help="Output folder: one checkpoint per epoch, LATEST names the newest."),
    preset: str | None = typer.Option(None, help=f"Model size: {PRESETS_HELP}. Default: {DEFAULT_PRESET}; with "
                                                 "--resume, the checkpoint's."),
    epochs: int = typer.Option(20, min=1, help="Total epochs (also the target when resuming). Default: 20."),
    batch_size: int = typer.Option(32, min=1, help="Images per step. Default: 32."),
    lr: float = typer.Option(2e-4, min=0.0, help="Adam learning rate. Default: 2e-4."),
    disc_start: int = typer.Option(2000, min=0, help="Steps before the PatchGAN loss starts. Default: 2000."),
    disc_weight: float = typer.Option(0.1, min=0.0, help="Weight of the PatchGAN generator loss. Default: 0.1."),
    adaptive_disc_weight: bool = typer.Option(
        False, "--adaptive-disc-weight/--fixed-disc-weight",
        help="Scale --disc-weight by the VQGAN paper's ratio of the reconstruction and GAN losses' "
             "gradient norms at the decoder's last layer (clamped to [0, 1e4]). Default: fixed."),
    lr_floor: float | None = typer.Option(None, min=0.0, help="Cosine-decay both Adam learning rates from --lr "
                                                              "to this over the run's --epochs. Default: none "
                                                              "(constant --lr)."),
    keep_best: str | None = typer.Option(None, metavar="NAME", help="Also copy the best epoch by this validation "
                                                                    "metric to --out/best: val_psnr, val_l1 or "
                                                                    "val_recon_fid (needs --fid-images). "
                                                                    "Default: none (newest only)."),
    fid_images: int = typer.Option(0, min=0, help="Report val_recon_fid, the reconstruction FID (tf) of this "
                                                  "many validation images, every epoch. Default: 0 (off)."),
    codebook_size: int | None = typer.Option(None, min=2, help="Codebook entries instead of the preset's (fewer "
                                                               "codes: tokens a small transformer predicts more "
                                                               "often right; stage 2 takes it from the "
                                                               "checkpoint). Default: the preset's; with "
                                                               "--resume, the checkpoint's."),
    seed: int = typer.Option(0, help="Seed of data order, augmentation and code restarts. Default: 0."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ... Default: auto."),
    bf16: bool | None = typer.Option(None, "--bf16/--fp32", help=_BF16_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out. "
                                                        "Default: off (start afresh)."),
    tracking_uri: str = tracking_uri_option("MLflow store (experiment train-vqgan)"),
):
    """Stage 1: train the VQGAN tokenizer (L1 + codebook + PatchGAN losses; dead codes restarted).

    Example: bench train vqgan --data data/catfaces --out runs/catfaces-vqgan --epochs 20
    """
    from bench.train import train_vqgan_command

    cfg = _train_config(epochs, batch_size, lr, seed, device, bf16, disc_start=disc_start, disc_weight=disc_weight,
                        adaptive_disc_weight=adaptive_disc_weight, lr_floor=lr_floor, keep_best=keep_best)
    last = train_vqgan_command(data, out, preset, cfg, resume, tracking_uri, fid_images, codebook_size)
    typer.echo(f"checkpoint: {last}")


@train_app.command("transformer")
def train_transformer(
    data: Path = typer.Option(..., help="Benchmark folder with train/ and val/."),
    vqgan: Path = typer.Option(..., help="Stage-1 checkpoint (a `bench train vqgan` output folder; with "
                                         "--resume, the one the checkpoint was trained on)."),
    out: Path = typer.Option(..., help="Output folder: one checkpoint per epoch, LATEST names the newest."),
    preset: str | None = typer.Option(None, help=f"Transformer size: {PRESETS_HELP}. Default: {DEFAULT_PRESET}; "
                                                 "with --resume, the checkpoint's."),
    epochs: int = typer.Option(20, min=1, help="Total epochs (also the target when resuming). Default: 20."),
    batch_size: int = typer.Option(64, min=1, help="Token sequences per step. Default: 64."),
    lr: float = typer.Option(1e-3, min=0.0, help="AdamW peak learning rate (warm-up, then cosine decay). "
                                                 "Default: 1e-3."),
    warmup_steps: int = typer.Option(500, min=0, help="Linear warm-up steps. Default: 500."),
    hole_masks: float = typer.Option(0.0, min=0.0, max=1.0, help="Fraction of samples masked by brush strokes "
                                                                 "shaped like the test holes instead of random "
                                                                 "tokens. Default: 0."),
    keep_best: str | None = typer.Option(None, metavar="NAME", help="Also copy the best epoch by this validation "
                                                                    "metric to --out/best: val_loss or "
                                                                    "val_masked_accuracy. Default: none."),
    seed: int = typer.Option(0, help="Seed of data order and masks. Default: 0."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, ... Default: auto."),
    bf16: bool | None = typer.Option(None, "--bf16/--fp32", help=_BF16_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out. "
                                                        "Default: off (start afresh)."),
    tracking_uri: str = tracking_uri_option("MLflow store (experiment train-transformer)"),
):
    """Stage 2: masked visual token modelling on tokens of the frozen VQGAN (cached once).

    Example: bench train transformer --data data/catfaces --vqgan runs/catfaces-vqgan --out runs/catfaces-tr
    """
    from bench.train import train_transformer_command

    cfg = _train_config(epochs, batch_size, lr, seed, device, bf16, warmup_steps=warmup_steps, hole_masks=hole_masks,
                        keep_best=keep_best)
    last = train_transformer_command(data, vqgan, out, preset, cfg, resume, tracking_uri)
    typer.echo(f"checkpoint: {last}")
