"""Training loops for both stages, plain PyTorch.

Progress goes to a callback (the harness logs it to MLflow). Every epoch writes a complete
checkpoint directory (weights + config + optimiser/RNG state) under a temporary name and then
renames it, so an interrupt never leaves a half-written checkpoint; `resume=True` continues from
the newest one and reproduces the uninterrupted run exactly on the same device.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .checkpoints import LATEST_FILE, load_state, save_checkpoint
from .holes import draw_from_pool, stroke_token_masks
from .model import MaskGIT, bf16_autocast
from .pixels import image_grid, to_model
from .schedules import get_schedule
from .vqgan import PatchDiscriminator

STATE_FILE = "training_state.pt"
BEST_DIR = "best"  # --keep-best's copy of the best epoch (weights and config, no training state)
# per stage, the validation metrics an epoch can be selected by: +1 where higher is better, -1 where lower is
SELECTION_METRICS = {"vqgan": {"val_psnr": 1, "val_l1": -1, "val_recon_fid": -1},
                     "transformer": {"val_loss": -1, "val_masked_accuracy": 1}}
ADAPTIVE_WEIGHT_MAX = 1e4  # the VQGAN paper's clamp of its adaptive adversarial weight


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-4
    seed: int = 0
    device: str = "cpu"
    autocast: bool | None = None  # bf16 autocast (model.bf16_autocast); None = on for CUDA only
    progress: bool = True
    keep_best: str | None = None  # also keep the best epoch by this validation metric (SELECTION_METRICS of its stage)
    # stage 1
    disc_start: int = 2000  # steps of pure reconstruction before the adversarial loss starts
    disc_weight: float = 0.1
    adaptive_disc_weight: bool = False  # disc_weight times the VQGAN paper's gradient-norm ratio
    lr_floor: float | None = None  # cosine decay of both Adam rates from lr to this over the run; None: constant
    restart_every: int = 200  # steps between dead-code restarts
    # stage 2
    weight_decay: float = 0.01
    warmup_steps: int = 500
    mask_schedule: str = "cosine"
    label_smoothing: float = 0.1
    hflip_tokens: bool = True  # also train on the tokens of mirrored images
    hole_masks: float = 0.0  # fraction of samples masked by test-hole-shaped strokes instead of random tokens
    hole_mask_pool: int = 2048  # stroke masks drawn once per run, then picked and mirrored per sample


class TrainCallback:
    """Receives training progress. The default does nothing."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_epoch(self, epoch: int, metrics: dict[str, float], figure: torch.Tensor, checkpoint: Path) -> None: ...

    def validation_metrics(self, images: torch.Tensor, reconstructions: torch.Tensor) -> dict[str, float]:
        """Stage 1's metrics beyond PSNR that the caller computes (e.g. reconstruction FID, which
        needs the harness's Inception network); none by default."""
        return {}


# --- checkpoint directories ----------------------------------------------------------------


def latest_checkpoint(out: Path) -> Path | None:
    pointer = Path(out) / LATEST_FILE
    return Path(out) / pointer.read_text().strip() if pointer.exists() else None


def _write_epoch(out: Path, epoch: int, model: MaskGIT, state: dict, meta: dict) -> Path:
    final = out / f"epoch-{epoch:04d}"
    tmp = out / f".epoch-{epoch:04d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(tmp, model, meta)
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer = out / (LATEST_FILE + ".tmp")
    pointer.write_text(final.name)
    os.replace(pointer, out / LATEST_FILE)
    for old in sorted(out.glob("epoch-*"))[:-2]:  # keep the newest two
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_best(out: Path, epoch_dir: Path) -> None:
    """Copy an epoch's weights and config to out/best (a checkpoint every command takes), atomically."""
    tmp = out / f".{BEST_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(epoch_dir, tmp, ignore=shutil.ignore_patterns(STATE_FILE))
    shutil.rmtree(out / BEST_DIR, ignore_errors=True)
    os.replace(tmp, out / BEST_DIR)


def _read_epoch(out: Path, model: MaskGIT) -> dict | None:
    directory = latest_checkpoint(out)
    if directory is None:
        return None
    load_state(model, load_file(str(directory / "model.safetensors")), directory)
    return torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)


def _rng_state(generator: torch.Generator) -> dict:
    return {"data": generator.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["data"])
    torch.set_rng_state(state["torch"])


def _prepared(out: str | Path, callback: TrainCallback | None, cfg: TrainConfig
              ) -> tuple[Path, TrainCallback, torch.device]:
    """The output folder (created), the callback (a silent one by default) and the training device."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out, callback or TrainCallback(), torch.device(cfg.device)


@dataclass
class _Checkpointing:
    """What both trainers do around their epochs: continue from the newest checkpoint, and end each
    epoch with a complete checkpoint (weights, the `stateful` objects' states, RNG) and a callback."""

    out: Path
    model: MaskGIT
    stage: str
    cfg: TrainConfig
    generator: torch.Generator
    stateful: dict[str, torch.nn.Module | torch.optim.Optimizer]  # saved under these names
    callback: TrainCallback
    meta: dict | None
    best: dict | None = None  # {"metric", "value", "epoch"} of the best epoch so far under cfg.keep_best

    def resume(self, enabled: bool) -> tuple[int, int]:
        """(first epoch, step): (0, 0), or after the newest checkpoint with every state restored."""
        state = _read_epoch(self.out, self.model) if enabled else None
        if state is None:
            return 0, 0
        for name, stateful in self.stateful.items():
            stateful.load_state_dict(state[name])
        _set_rng_state(self.generator, state["rng"])
        self.best = state.get("best")
        return state["epoch"] + 1, state["step"]

    def _improves(self, epoch: int, metrics: dict) -> bool:
        """Whether epoch `epoch` (0-based) beats the best so far under cfg.keep_best; it becomes the best."""
        name = self.cfg.keep_best
        if name is None:
            return False
        value, sign = metrics[name], SELECTION_METRICS[self.stage][name]
        if self.best is not None and self.best["metric"] == name and sign * value <= sign * self.best["value"]:
            return False
        self.best = {"metric": name, "value": value, "epoch": epoch + 1}
        return True

    def end_epoch(self, epoch: int, step: int, started: float, val_metrics: dict,
                  figure: Callable[[], torch.Tensor]) -> Path:
        """Write epoch `epoch` (0-based) and report it; the model goes back to its device."""
        device = next(self.model.parameters()).device
        val_metrics["epoch_seconds"] = time.perf_counter() - started
        improves = self._improves(epoch, val_metrics)
        state = {**{name: stateful.state_dict() for name, stateful in self.stateful.items()},
                 "rng": _rng_state(self.generator), "epoch": epoch, "step": step,
                 **({"best": self.best} if self.best is not None else {})}
        last = _write_epoch(self.out, epoch, self.model.cpu(), state,
                            {**(self.meta or {}), "stage": self.stage, "epoch": epoch + 1, "step": step,
                             "train_config": asdict(self.cfg), **val_metrics})
        if improves:
            _write_best(self.out, last)
        self.model.to(device)
        self.callback.on_epoch(epoch + 1, val_metrics, figure(), last)
        return last


def _check_keep_best(cfg: TrainConfig, stage: str) -> None:
    if cfg.keep_best is not None and cfg.keep_best not in SELECTION_METRICS[stage]:
        known = ", ".join(SELECTION_METRICS[stage])
        raise ValueError(f"keep_best {cfg.keep_best!r} is not a selection metric of the {stage}; known: {known}")


def cosine_lr(step: int, total: int, peak: float, floor: float = 0.0, warmup: int = 0) -> float:
    """Learning rate at `step`: linear warm-up to `peak` over `warmup` steps, then cosine decay to
    `floor` at step `total` (and `floor` after it)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for i in range(0, n - batch_size + 1, batch_size):  # drop the ragged tail: equal-size steps
        yield order[i:i + batch_size]


# --- stage 1: VQGAN ------------------------------------------------------------------------


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two uint8 image batches."""
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


@torch.no_grad()
def evaluate_vqgan(model: MaskGIT, images: torch.Tensor, batch_size: int = 64) -> tuple[dict, torch.Tensor]:
    """Reconstruction PSNR, L1 and codebook usage on held-out images; returns the reconstructions too."""
    model.eval()
    device = next(model.parameters()).device
    recon, ids = [], []
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size].to(device)
        tokens = model.tokenize(batch)
        ids.append(tokens.cpu())
        recon.append(model.detokenize(tokens).cpu())
    recon_all, ids_all = torch.cat(recon), torch.cat(ids)
    k = model.vqgan.cfg.num_codebook_vectors
    return {
        "val_psnr": psnr(recon_all, images),
        "val_l1": (recon_all.float() - images.float()).abs().mean().item() / 255.0,
        "codebook_usage": ids_all.unique().numel() / k,
    }, recon_all


def _restart_dead_codes(codebook, usage: torch.Tensor, latents: torch.Tensor, generator: torch.Generator) -> int:
    """Move codes unused since the last restart onto random encoder outputs of the current batch."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead):
        pick = torch.randint(len(latents), (len(dead),), generator=generator)
        codebook.embedding.weight.data[dead] = latents[pick.to(latents.device)].to(codebook.embedding.weight.dtype)
    return len(dead)


def adaptive_disc_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """The VQGAN paper's adaptive adversarial weight (Esser et al. 2021, eq. 7): the norm of the
    reconstruction loss's gradient at the decoder's last layer over that of the generator loss
    (+1e-4), clamped to [0, 1e4] and cut from the graph, so neither loss dominates the decoder."""
    rec_grad, = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)
    g_grad, = torch.autograd.grad(g_loss, last_layer, retain_graph=True)
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, ADAPTIVE_WEIGHT_MAX).detach()


def train_vqgan(model: MaskGIT, train_images: torch.Tensor, val_images: torch.Tensor, out: str | Path,
                cfg: TrainConfig, callback: TrainCallback | None = None, resume: bool = False,
                meta: dict | None = None) -> Path:
    """Stage 1: L1 reconstruction + codebook/commitment + hinge PatchGAN loss after `disc_start` steps."""
    _check_keep_best(cfg, "vqgan")
    out, callback, device = _prepared(out, callback, cfg)
    vq = model.vqgan
    disc = PatchDiscriminator(vq.cfg.image_channels, base_channels=32, n_layers=2)
    opt = torch.optim.Adam(vq.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    generator = torch.Generator().manual_seed(cfg.seed)
    epochs = _Checkpointing(out, model, "vqgan", cfg, generator,
                            {"discriminator": disc, "optimizer": opt, "optimizer_d": opt_d}, callback, meta)
    start_epoch, step = epochs.resume(resume)
    model.to(device), disc.to(device)
    mean, std = vq.cfg.pixel_mean, vq.cfg.pixel_std
    k = vq.cfg.num_codebook_vectors
    usage = torch.zeros(k, dtype=torch.long)
    n_batches = len(train_images) // cfg.batch_size
    last_layer = vq.decoder.model[-1].weight
    last = latest_checkpoint(out)
    for epoch in range(start_epoch, cfg.epochs):
        model.train(), disc.train()
        started = time.perf_counter()
        bar = tqdm(_batches(len(train_images), cfg.batch_size, generator), total=n_batches,
                   desc=f"vqgan epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress)
        for index in bar:
            batch = train_images[index]
            flip = torch.rand(len(batch), generator=generator) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
            x = to_model(batch.to(device), mean, std)
            with bf16_autocast(cfg.device, cfg.autocast):
                latents = vq.encode_latents(x)
                if step == 0:  # k-means++-free initialisation: codes start on real encoder outputs
                    flat = latents.detach().float().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
                    pick = torch.randint(len(flat), (k,), generator=generator)
                    vq.codebook.embedding.weight.data.copy_(flat[pick.to(flat.device)])
                z_q, ids, q_loss = vq.codebook(latents.float())
                recon = vq.decode_latents(z_q)
                rec_loss = (recon.float() - x).abs().mean()
                adversarial = step >= cfg.disc_start
                g_loss = -disc(recon).float().mean() if adversarial else torch.zeros((), device=device)
                disc_weight = cfg.disc_weight
                if adversarial and cfg.adaptive_disc_weight:
                    disc_weight = disc_weight * adaptive_disc_weight(rec_loss, g_loss, last_layer)
                loss = rec_loss + q_loss + disc_weight * g_loss
            if cfg.lr_floor is not None:
                for group in (*opt.param_groups, *opt_d.param_groups):
                    group["lr"] = cosine_lr(step, cfg.epochs * n_batches, cfg.lr, cfg.lr_floor)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            metrics = {"rec_loss": rec_loss.item(), "q_loss": q_loss.item(), "g_loss": g_loss.item()}
            if cfg.adaptive_disc_weight:
                metrics["disc_weight"] = float(disc_weight)
            if cfg.lr_floor is not None:
                metrics["lr"] = opt.param_groups[0]["lr"]
            if adversarial:
                with bf16_autocast(cfg.device, cfg.autocast):
                    d_loss = F.relu(1 - disc(x)).mean() + F.relu(1 + disc(recon.detach())).mean()
                opt_d.zero_grad(set_to_none=True)
                d_loss.float().backward()
                opt_d.step()
                metrics["d_loss"] = d_loss.item()
            usage += torch.bincount(ids.flatten().cpu(), minlength=k)
            step += 1
            if step % cfg.restart_every == 0:
                flat = latents.detach().float().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
                metrics["dead_codes_restarted"] = _restart_dead_codes(vq.codebook, usage, flat, generator)
                usage.zero_()
            callback.on_step(step, metrics)
            bar.set_postfix(rec=f"{metrics['rec_loss']:.3f}")
        val_metrics, recon = evaluate_vqgan(model, val_images)
        val_metrics.update(callback.validation_metrics(val_images, recon))
        # usage counts restart with each epoch so that a resumed run matches an uninterrupted one
        usage.zero_()
        last = epochs.end_epoch(epoch, step, started, val_metrics,
                                lambda: image_grid([val_images[:8], recon[:8]]))
    return last


# --- stage 2: transformer ------------------------------------------------------------------


@torch.no_grad()
def encode_dataset(model: MaskGIT, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Token ids of all images, as ordinary tensors (not inference tensors: training indexes with them)."""
    device = next(model.parameters()).device
    return torch.cat([model.tokenize(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)]).clone()


def cached_tokens(model: MaskGIT, images: torch.Tensor, cache_dir: Path, hflip: bool) -> torch.Tensor:
    """Token ids of `images` (and their mirror images) from the frozen VQGAN, computed once per
    (VQGAN weights, pixels) and kept in `cache_dir`."""
    weights = hashlib.sha256()
    for value in model.vqgan.state_dict().values():
        weights.update(value.detach().cpu().contiguous().numpy().tobytes())
    key = hashlib.sha256(weights.digest() + images.numpy().tobytes() + bytes([hflip])).hexdigest()[:16]
    path = Path(cache_dir) / f"tokens-{key}.safetensors"
    if path.exists():
        return load_file(str(path))["tokens"]
    tokens = encode_dataset(model, images)
    if hflip:
        tokens = torch.cat([tokens, encode_dataset(model, images.flip(-1))])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"tokens": tokens.contiguous()}, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    return tokens


def random_token_mask(batch: int, n_tokens: int, schedule: str, generator: torch.Generator) -> torch.Tensor:
    """Per-sample masks: sample i hides ceil(gamma(u_i) * N) random tokens, u_i ~ U(0, 1)."""
    u = torch.rand(batch, generator=generator)
    n0 = torch.full((batch,), n_tokens)
    counts = torch.ceil(get_schedule(schedule)(u, n0) * n_tokens).long().clamp(1, n_tokens)
    ranks = torch.rand(batch, n_tokens, generator=generator).argsort(1).argsort(1)
    return ranks < counts[:, None]


def hole_mask_count(batch: int, fraction: float, generator: torch.Generator) -> int:
    """How many of a batch's samples get a hole-shaped mask: floor(fraction * batch), plus one with
    probability equal to the remainder, so that the mean is exactly fraction * batch."""
    expected = fraction * batch
    whole = math.floor(expected)
    return whole + int(torch.rand((), generator=generator).item() < expected - whole)


def training_token_mask(batch: int, n_tokens: int, cfg: TrainConfig, generator: torch.Generator,
                        hole_pool: torch.Tensor | None) -> torch.Tensor:
    """MaskGIT's random masks (`random_token_mask`), the first `hole_mask_count` of them replaced by
    stroke masks from `hole_pool`, shaped like the test holes (none without a pool). Batches are a
    random permutation, so which samples come first carries no meaning."""
    mask = random_token_mask(batch, n_tokens, cfg.mask_schedule, generator)
    if hole_pool is not None:
        count = hole_mask_count(batch, cfg.hole_masks, generator)
        mask[:count] = draw_from_pool(hole_pool, count, generator)
    return mask


def hole_mask_pool(model: MaskGIT, cfg: TrainConfig) -> torch.Tensor | None:
    """cfg.hole_mask_pool stroke token masks from seed cfg.seed, or None when cfg.hole_masks is 0."""
    if cfg.hole_masks <= 0:
        return None
    vq_cfg = model.vqgan.cfg
    return stroke_token_masks(cfg.hole_mask_pool, np.random.default_rng(cfg.seed), vq_cfg.img_resolution,
                              vq_cfg.img_resolution // vq_cfg.latent_resolution)


@torch.no_grad()
def evaluate_transformer(model: MaskGIT, tokens: torch.Tensor, cfg: TrainConfig, batch_size: int = 128) -> dict:
    """Validation loss and masked-token accuracy under a fixed set of masks."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(1234)
    total_loss, correct, count = 0.0, 0, 0
    for i in range(0, len(tokens), batch_size):
        target = tokens[i:i + batch_size]
        mask = random_token_mask(len(target), target.shape[1], cfg.mask_schedule, generator)
        logits = model.transformer(torch.where(mask, model.mask_token_id, target).to(device)).float().cpu()
        total_loss += F.cross_entropy(logits[mask], target[mask], reduction="sum").item()
        correct += (logits[mask].argmax(-1) == target[mask]).sum().item()
        count += mask.sum().item()
    return {"val_loss": total_loss / count, "val_masked_accuracy": correct / count}


@torch.no_grad()
def _one_shot_figure(model: MaskGIT, tokens: torch.Tensor) -> torch.Tensor:
    """Originals, masked inputs (mask tokens as grey) and one-shot argmax fills of a few tokens sets."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    target = tokens[:8].to(device)
    mask = random_token_mask(len(target), target.shape[1], "cosine", generator).to(device)
    fill = model.transformer(torch.where(mask, model.mask_token_id, target)).argmax(-1).clamp(max=model.mask_token_id - 1)
    side = model.vqgan.cfg.latent_resolution
    scale = model.vqgan.cfg.img_resolution // side
    grey = mask.view(-1, 1, side, side).repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    original = model.detokenize(target)
    masked = torch.where(grey, torch.full_like(original, 128), original)
    return image_grid([original.cpu(), masked.cpu(), model.detokenize(torch.where(mask, fill, target)).cpu()])


def train_transformer(model: MaskGIT, train_images: torch.Tensor, val_images: torch.Tensor, out: str | Path,
                      cfg: TrainConfig, callback: TrainCallback | None = None, resume: bool = False,
                      meta: dict | None = None) -> Path:
    """Stage 2: masked visual token modelling on tokens of the frozen VQGAN (AdamW, warm-up, cosine decay)."""
    _check_keep_best(cfg, "transformer")
    if not 0.0 <= cfg.hole_masks <= 1.0:
        raise ValueError(f"hole_masks must be a fraction in [0, 1], got {cfg.hole_masks}")
    out, callback, device = _prepared(out, callback, cfg)
    model.vqgan.requires_grad_(False)
    train_tokens = cached_tokens(model, train_images, out, hflip=cfg.hflip_tokens)
    val_tokens = cached_tokens(model, val_images, out, hflip=False)
    params = model.transformer.parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    generator = torch.Generator().manual_seed(cfg.seed)
    epochs = _Checkpointing(out, model, "transformer", cfg, generator, {"optimizer": opt}, callback, meta)
    start_epoch, step = epochs.resume(resume)
    model.to(device)
    n_tokens = train_tokens.shape[1]
    total_steps = cfg.epochs * (len(train_tokens) // cfg.batch_size)
    hole_pool = hole_mask_pool(model, cfg)
    last = latest_checkpoint(out)
    for epoch in range(start_epoch, cfg.epochs):
        model.transformer.train()
        started = time.perf_counter()
        bar = tqdm(_batches(len(train_tokens), cfg.batch_size, generator), total=len(train_tokens) // cfg.batch_size,
                   desc=f"transformer epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress)
        for index in bar:
            target = train_tokens[index]
            mask = training_token_mask(len(target), n_tokens, cfg, generator, hole_pool)
            inputs = torch.where(mask, model.mask_token_id, target).to(device)
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total_steps, cfg.lr, warmup=cfg.warmup_steps)
            with bf16_autocast(cfg.device, cfg.autocast):
                logits = model.transformer(inputs)
            loss = F.cross_entropy(logits[mask.to(device)].float(), target[mask].to(device),
                                   label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.transformer.parameters(), 1.0)
            opt.step()
            step += 1
            callback.on_step(step, {"loss": loss.item(), "lr": opt.param_groups[0]["lr"]})
            bar.set_postfix(loss=f"{loss.item():.3f}")
        val_metrics = evaluate_transformer(model, val_tokens, cfg)
        last = epochs.end_epoch(epoch, step, started, val_metrics, lambda: _one_shot_figure(model, val_tokens))
    return last
