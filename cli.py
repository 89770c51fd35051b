"""The `bench` command line: parses options and calls functions in `bench/`. Nothing else."""

from __future__ import annotations

from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from bench.errors import BenchError


class UserError(click.ClickException):
    """A BenchError shown as one red line on stderr, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        typer.secho(f"error: {self.message}", fg=typer.colors.RED, err=True)


class _Group(TyperGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            raise UserError(str(exc)) from None


app = typer.Typer(
    cls=_Group,
    help="maskgit-bench: tune MaskGIT inpainting decoding settings with Optuna, FID per step, MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Build and validate lab-layout datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train the two MaskGIT stages.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")


# --- data commands -------------------------------------------------------------------------


@data_app.command("build")
def data_build(
    source: Path = typer.Option(..., help="Folder of raw 64x64 RGB images (.png/.jpg). Required."),
    out: Path = typer.Option(..., help="Folder to write the benchmark into. Required."),
    seed: int = typer.Option(0, help="Seed of the split and the masks. Default: 0."),
    n_test: int = typer.Option(747, help="Test images (masked image, mask, ground truth). Default: 747."),
    n_val: int = typer.Option(1000, help="Validation images. Default: 1000."),
    n_train: int | None = typer.Option(None, help="Training images. Default: all the rest."),
    limit: int | None = typer.Option(None, help="Use only the first N source images (natural order). "
                                                 "Default: all."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it holds a benchmark. Default: off."),
):
    """Build a lab-layout benchmark: duplicates removed, split, free-form masks, test_gt.csv."""
    from bench.data import build_benchmark

    built = build_benchmark(source, out, seed=seed, n_test=n_test, n_val=n_val, n_train=n_train,
                            limit=limit, overwrite=overwrite)
    typer.echo(f"wrote {built}")


@data_app.command("toyfaces")
def data_toyfaces(
    out: Path = typer.Option(..., help="Folder to write the benchmark into. Required."),
    seed: int = typer.Option(0, help="Seed of the faces, the split and the masks. Default: 0."),
    n_train: int = typer.Option(10_000, help="Training images. Default: 10000."),
    n_val: int = typer.Option(1_000, help="Validation images. Default: 1000."),
    n_test: int = typer.Option(256, help="Test images. Default: 256."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it holds a benchmark. Default: off."),
):
    """Build a benchmark of synthetic toy faces (the embedded default's kind of data)."""
    from bench.toyfaces import build_toyfaces_benchmark

    built = build_toyfaces_benchmark(out, seed=seed, n_train=n_train, n_val=n_val, n_test=n_test,
                                     overwrite=overwrite)
    typer.echo(f"wrote {built}")


@data_app.command("check")
def data_check(
    path: Path = typer.Argument(..., help="Benchmark root or test-only folder (masked_image/, mask64/)."),
):
    """Validate a dataset folder and print its sizes, hole coverage and content hash."""
    from bench.data import check_dataset, format_summary

    for line in format_summary(check_dataset(path)):
        typer.echo(line)

# --- fid command ---------------------------------------------------------------------------

# --- train commands ------------------------------------------------------------------------


def _train_config(epochs, batch_size, lr, seed, device, progress=True, **extra):
    from maskgit.training import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                       progress=progress, **extra)


@train_app.command("vqgan")
def train_vqgan(
    data: Path = typer.Option(..., help="Benchmark folder with train/ and val/ (from `bench data build`)."),
    out: Path = typer.Option(..., help="Output folder: one checkpoint per epoch, LATEST names the newest."),
    preset: str = typer.Option("small", help="Model size: small (2 CPU cores), lab (the lab's), tiny (tests)."),
    epochs: int = typer.Option(20, min=1, help="Total epochs (also the target when resuming)."),
    batch_size: int = typer.Option(32, min=1, help="Images per step."),
    lr: float = typer.Option(2e-4, min=0.0, help="Adam learning rate."),
    disc_start: int = typer.Option(2000, min=0, help="Steps before the PatchGAN loss starts."),
    seed: int = typer.Option(0, help="Seed of data order, augmentation and code restarts."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ..."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    tracking_uri: str = typer.Option("sqlite:///mlflow.db", help="MLflow store (experiment train-vqgan)."),
):
    """Stage 1: train the VQGAN tokenizer (L1 + codebook + PatchGAN losses; dead codes restarted).

    Example: bench train vqgan --data data/catfaces --out runs/catfaces-vqgan --epochs 20
    """
    from bench.train import train_vqgan_command

    cfg = _train_config(epochs, batch_size, lr, seed, device, disc_start=disc_start)
    last = train_vqgan_command(data, out, preset, cfg, resume, tracking_uri)
    typer.echo(f"checkpoint: {last}")


@train_app.command("transformer")
def train_transformer(
    data: Path = typer.Option(..., help="Benchmark folder with train/ and val/."),
    vqgan: Path = typer.Option(..., help="Stage-1 checkpoint (a `bench train vqgan` output folder)."),
    out: Path = typer.Option(..., help="Output folder: one checkpoint per epoch, LATEST names the newest."),
    preset: str = typer.Option("small", help="Transformer size: small, lab, tiny."),
    epochs: int = typer.Option(20, min=1, help="Total epochs (also the target when resuming)."),
    batch_size: int = typer.Option(64, min=1, help="Token sequences per step."),
    lr: float = typer.Option(1e-3, min=0.0, help="AdamW peak learning rate (warm-up, then cosine decay)."),
    warmup_steps: int = typer.Option(500, min=0, help="Linear warm-up steps."),
    seed: int = typer.Option(0, help="Seed of data order and masks."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, ..."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    tracking_uri: str = typer.Option("sqlite:///mlflow.db", help="MLflow store (experiment train-transformer)."),
):
    """Stage 2: masked visual token modelling on tokens of the frozen VQGAN (cached once).

    Example: bench train transformer --data data/catfaces --vqgan runs/catfaces-vqgan --out runs/catfaces-tr
    """
    from bench.train import train_transformer_command

    cfg = _train_config(epochs, batch_size, lr, seed, device, warmup_steps=warmup_steps)
    last = train_transformer_command(data, vqgan, out, preset, cfg, resume, tracking_uri)
    typer.echo(f"checkpoint: {last}")

# --- sweep / inpaint / ui ------------------------------------------------------------------


if __name__ == "__main__":
    app()
