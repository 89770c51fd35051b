"""The optional training recipe: stage 1's cosine learning-rate decay, adaptive adversarial weight and
best-epoch selection; stage 2's hole-shaped masks. Each is off by default."""

import math

import pytest
import torch
from safetensors.torch import load_file

from maskgit.checkpoints import load_checkpoint
from maskgit.model import MaskGIT
from maskgit.presets import preset
from maskgit.training import (
    ADAPTIVE_WEIGHT_MAX,
    BEST_DIR,
    STATE_FILE,
    TrainCallback,
    TrainConfig,
    adaptive_disc_weight,
    cosine_lr,
    latest_checkpoint,
    train_transformer,
    train_vqgan,
)
from training_images import blobs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 8, "progress": False, "lr": 2e-3, **kw})


def tiny_vqgan() -> MaskGIT:
    torch.manual_seed(0)
    return MaskGIT(preset("tiny")[0], None)


class Steps(TrainCallback):
    def __init__(self):
        self.steps = []

    def on_step(self, step, metrics):
        self.steps.append(metrics)


class ScriptedFID(TrainCallback):
    """Reports the given val_recon_fid values, one per epoch, and what it was shown."""

    def __init__(self, values):
        self.values, self.shown = list(values), []

    def validation_metrics(self, images, reconstructions):
        self.shown.append((images.shape, reconstructions.shape))
        return {"val_recon_fid": self.values.pop(0)}


class InterruptAfterFirstEpoch(TrainCallback):
    def on_epoch(self, epoch, metrics, figure, checkpoint):
        raise KeyboardInterrupt


# --- learning rate -------------------------------------------------------------------------


def test_cosine_lr_at_known_steps():
    assert cosine_lr(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(10, 110, 1.0, 0.1, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(60, 110, 1.0, 0.1, warmup=10) == pytest.approx(0.55)  # halfway: mean of peak and floor
    assert cosine_lr(35, 110, 1.0, 0.1, warmup=10) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_lr(110, 110, 1.0, 0.1) == pytest.approx(0.1)
    assert cosine_lr(500, 110, 1.0, 0.1) == pytest.approx(0.1)  # past the end: the floor


def test_vqgan_learning_rate_decays_to_the_floor_over_the_run(tmp_path):
    steps = Steps()  # 32 images, batch 8: 4 steps an epoch, 8 in all
    train_vqgan(tiny_vqgan(), blobs(32, 0), blobs(8, 1), tmp_path, config(epochs=2, lr=1e-3, lr_floor=1e-4), steps)
    lrs = [m["lr"] for m in steps.steps]
    assert lrs[0] == pytest.approx(1e-3) and lrs[4] == pytest.approx(5.5e-4)
    assert lrs[7] == pytest.approx(1e-4 + 9e-4 * 0.5 * (1 + math.cos(7 * math.pi / 8)))
    state = torch.load(latest_checkpoint(tmp_path) / STATE_FILE, weights_only=True)
    assert state["optimizer_d"]["param_groups"][0]["lr"] == pytest.approx(lrs[7])  # the discriminator's too


def test_vqgan_learning_rate_is_constant_by_default(tmp_path):
    steps = Steps()
    train_vqgan(tiny_vqgan(), blobs(16, 0), blobs(8, 1), tmp_path, config(lr=1e-3), steps)
    assert "lr" not in steps.steps[0] and "disc_weight" not in steps.steps[0]
    state = torch.load(latest_checkpoint(tmp_path) / STATE_FILE, weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == 1e-3 and "best" not in state


# --- adaptive adversarial weight ----------------------------------------------------------


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_last_layer():
    w = torch.ones(4, requires_grad=True)
    rec_loss = (3 * w).sum()  # gradient 3 everywhere: norm 6
    g_loss = (w**2).sum()  # gradient 2w = 2 everywhere: norm 4
    weight = adaptive_disc_weight(rec_loss, g_loss, w)
    assert weight.item() == pytest.approx(6 / (4 + 1e-4)) and not weight.requires_grad
    assert w.grad is None  # measured without touching the parameters' gradients


def test_adaptive_weight_is_clamped_when_the_gan_gradient_vanishes():
    w = torch.ones(4, requires_grad=True)
    weight = adaptive_disc_weight((3 * w).sum(), (0 * w).sum(), w)  # 6 / 1e-4 = 6e4
    assert weight.item() == ADAPTIVE_WEIGHT_MAX


def test_vqgan_trains_with_the_adaptive_weight_from_the_adversarial_start(tmp_path):
    steps = Steps()
    train_vqgan(tiny_vqgan(), blobs(32, 0), blobs(8, 1), tmp_path,
                config(disc_start=2, disc_weight=0.5, adaptive_disc_weight=True), steps)
    weights = [m["disc_weight"] for m in steps.steps]
    assert weights[:2] == [0.5, 0.5]  # before the PatchGAN starts: the fixed weight, unused
    assert all(math.isfinite(w) and w != 0.5 for w in weights[2:])
    assert all(math.isfinite(m["rec_loss"]) for m in steps.steps)


# --- best epoch ------------------------------------------------------------------------------


def test_best_epoch_by_a_lower_is_better_metric_is_kept_beside_the_newest(tmp_path):
    fid = ScriptedFID([5.0, 3.0, 4.0])
    train_vqgan(tiny_vqgan(), blobs(16, 0), blobs(8, 1), tmp_path, config(epochs=3, keep_best="val_recon_fid"), fid)
    assert fid.shown[0] == (torch.Size([8, 3, 64, 64]),) * 2
    best = tmp_path / BEST_DIR
    model, cfg = load_checkpoint(best, require_transformer=False)
    assert cfg["meta"]["epoch"] == 2 and cfg["meta"]["val_recon_fid"] == 3.0
    assert not (best / STATE_FILE).exists()  # weights and config only
    assert load_file(str(best / "model.safetensors")).keys() == load_file(
        str(tmp_path / "epoch-0001" / "model.safetensors")).keys()
    for key, value in load_file(str(best / "model.safetensors")).items():
        assert torch.equal(value, load_file(str(tmp_path / "epoch-0001" / "model.safetensors"))[key]), key
    assert load_checkpoint(tmp_path, require_transformer=False)[1]["meta"]["epoch"] == 3  # LATEST: the newest


def test_the_best_so_far_survives_a_resume(tmp_path):
    train_vqgan(tiny_vqgan(), blobs(16, 0), blobs(8, 1), tmp_path, config(epochs=2, keep_best="val_recon_fid"),
                ScriptedFID([5.0, 3.0]))
    train_vqgan(tiny_vqgan(), blobs(16, 0), blobs(8, 1), tmp_path, config(epochs=3, keep_best="val_recon_fid"),
                ScriptedFID([4.0]), resume=True)  # worse than epoch 2's 3.0: best stays
    assert load_checkpoint(tmp_path / BEST_DIR, require_transformer=False)[1]["meta"]["epoch"] == 2
    train_vqgan(tiny_vqgan(), blobs(16, 0), blobs(8, 1), tmp_path, config(epochs=4, keep_best="val_recon_fid"),
                ScriptedFID([2.0]), resume=True)
    assert load_checkpoint(tmp_path / BEST_DIR, require_transformer=False)[1]["meta"]["epoch"] == 4


def test_best_epoch_by_a_higher_is_better_metric(tmp_path):
    train_vqgan(tiny_vqgan(), blobs(16, 0), blobs(8, 1), tmp_path, config(epochs=2, keep_best="val_psnr"))
    epochs = {p.name: load_checkpoint(p, require_transformer=False)[1]["meta"]["val_psnr"]
              for p in sorted(tmp_path.glob("epoch-*"))}
    best = load_checkpoint(tmp_path / BEST_DIR, require_transformer=False)[1]["meta"]["val_psnr"]
    assert best == max(epochs.values())


def test_an_unknown_selection_metric_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="keep_best 'fid' is not a selection metric"):
        train_vqgan(tiny_vqgan(), blobs(16, 0), blobs(8, 1), tmp_path / "x", config(keep_best="fid"))
    with pytest.raises(ValueError, match="keep_best 'val_loss' is not a selection metric of the vqgan"):
        train_vqgan(tiny_vqgan(), blobs(16, 0), blobs(8, 1), tmp_path / "x", config(keep_best="val_loss"))
    assert not (tmp_path / "x").exists()


# --- stage 2 with hole-shaped masks ----------------------------------------------------------


def test_transformer_trains_and_resumes_with_hole_masks(tmp_path):
    train_vqgan(tiny_vqgan(), blobs(32, 0), blobs(8, 1), tmp_path / "vq", config())
    stage1, _ = load_checkpoint(tmp_path / "vq", require_transformer=False)

    def fresh():
        torch.manual_seed(1)
        model = MaskGIT(stage1.vqgan.cfg, preset("tiny")[1])
        model.vqgan.load_state_dict(stage1.vqgan.state_dict())
        return model

    kw = {"warmup_steps": 2, "hole_masks": 0.5, "hole_mask_pool": 16}
    steps = Steps()
    train_transformer(fresh(), blobs(32, 0), blobs(8, 1), tmp_path / "straight", config(epochs=2, **kw), steps)
    assert len(steps.steps) == 16 and all(math.isfinite(m["loss"]) for m in steps.steps)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C right after the first epoch's checkpoint
        train_transformer(fresh(), blobs(32, 0), blobs(8, 1), tmp_path / "split", config(epochs=2, **kw),
                          InterruptAfterFirstEpoch())
    train_transformer(fresh(), blobs(32, 0), blobs(8, 1), tmp_path / "split", config(epochs=2, **kw), resume=True)
    a = load_file(str(latest_checkpoint(tmp_path / "straight") / "model.safetensors"))
    b = load_file(str(latest_checkpoint(tmp_path / "split") / "model.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key
    meta = load_checkpoint(tmp_path / "straight")[1]["meta"]
    assert meta["train_config"]["hole_masks"] == 0.5


def test_a_hole_fraction_outside_zero_to_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="hole_masks must be a fraction in"):
        train_transformer(MaskGIT(*preset("tiny")), blobs(8, 0), blobs(8, 1), tmp_path, config(hole_masks=1.5))
