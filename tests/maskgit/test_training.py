"""Both training stages learn, resume exactly, and use per-sample mask ratios and cached tokens."""

import math

import pytest
import torch
from safetensors.torch import load_file

from maskgit.checkpoints import load_checkpoint
from maskgit.model import MaskGIT
from maskgit.presets import preset
from maskgit.schedules import get_schedule
from maskgit.training import (
    TrainCallback,
    TrainConfig,
    cached_tokens,
    latest_checkpoint,
    psnr,
    random_token_mask,
    train_transformer,
    train_vqgan,
)
from training_images import blobs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder(TrainCallback):
    def __init__(self):
        self.steps, self.epochs = [], []

    def on_step(self, step, metrics):
        self.steps.append(metrics)

    def on_epoch(self, epoch, metrics, figure, checkpoint):
        self.epochs.append((epoch, metrics, figure.shape, checkpoint))


class InterruptAfterFirstEpoch(TrainCallback):
    def on_epoch(self, epoch, metrics, figure, checkpoint):
        raise KeyboardInterrupt


def config(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 8, "progress": False, "lr": 2e-3, **kw})


def test_vqgan_loss_falls_and_epochs_are_checkpointed(tmp_path):
    torch.manual_seed(0)
    model = MaskGIT(preset("tiny")[0], None)
    recorder = Recorder()
    last = train_vqgan(model, blobs(48, 0), blobs(8, 1), tmp_path, config(epochs=3, disc_start=12), recorder)
    losses = [m["rec_loss"] for m in recorder.steps]
    assert sum(losses[-4:]) / 4 < 0.9 * sum(losses[:4]) / 4
    assert "d_loss" in recorder.steps[-1] and "d_loss" not in recorder.steps[0]  # PatchGAN after warm-up
    assert [e[0] for e in recorder.epochs] == [1, 2, 3]
    assert 0 < recorder.epochs[-1][1]["codebook_usage"] <= 1 and recorder.epochs[-1][1]["val_psnr"] > 10
    assert last == latest_checkpoint(tmp_path) and last.name == "epoch-0002"
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-0001", "epoch-0002"]  # newest two kept
    reloaded, cfg = load_checkpoint(tmp_path, require_transformer=False)
    assert cfg["meta"]["stage"] == "vqgan" and cfg["meta"]["epoch"] == 3


def _vqgan(tmp_path):
    torch.manual_seed(0)
    model = MaskGIT(preset("tiny")[0], None)
    train_vqgan(model, blobs(32, 0), blobs(8, 1), tmp_path / "vq", config())
    stage1, _ = load_checkpoint(tmp_path / "vq", require_transformer=False)
    return stage1


def _stage2(stage1) -> MaskGIT:
    torch.manual_seed(1)
    model = MaskGIT(stage1.vqgan.cfg, preset("tiny")[1])
    model.vqgan.load_state_dict(stage1.vqgan.state_dict())
    return model


@pytest.mark.parametrize("stage", ["vqgan", "transformer"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, stage):
    images, val = blobs(32, 0), blobs(8, 1)
    if stage == "vqgan":
        def fresh():
            torch.manual_seed(0)
            return MaskGIT(preset("tiny")[0], None)
        train, kw = train_vqgan, {"disc_start": 3, "restart_every": 5}
    else:
        stage1 = _vqgan(tmp_path)
        fresh, train, kw = (lambda: _stage2(stage1)), train_transformer, {"warmup_steps": 2}
    straight = fresh()
    train(straight, images, val, tmp_path / "straight", config(epochs=2, **kw))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C right after the first epoch's checkpoint
        train(fresh(), images, val, tmp_path / "split", config(epochs=2, **kw), InterruptAfterFirstEpoch())
    assert latest_checkpoint(tmp_path / "split").name == "epoch-0000"
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = fresh()
    train(resumed, images, val, tmp_path / "split", config(epochs=2, **kw), resume=True)
    a = load_file(str(latest_checkpoint(tmp_path / "straight") / "model.safetensors"))
    b = load_file(str(latest_checkpoint(tmp_path / "split") / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_transformer_loss_falls_and_accuracy_is_reported(tmp_path):
    stage1 = _vqgan(tmp_path)
    model = _stage2(stage1)
    recorder = Recorder()
    train_transformer(model, blobs(64, 0), blobs(16, 1), tmp_path / "tr", config(epochs=4, warmup_steps=4), recorder)
    losses = [m["loss"] for m in recorder.steps]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    metrics = recorder.epochs[-1][1]
    assert 0 <= metrics["val_masked_accuracy"] <= 1 and math.isfinite(metrics["val_loss"])
    assert recorder.epochs[-1][2][0] == 3  # a figure: originals, masked, one-shot fills


def test_per_sample_mask_ratio_follows_the_schedule():
    g = torch.Generator().manual_seed(0)
    masks = random_token_mask(4000, 256, "cosine", g)
    counts = masks.sum(1).float()
    assert counts.min() >= 1 and counts.max() <= 256
    assert counts.unique().numel() > 100  # drawn per sample, not one count per batch
    # u ~ U(0,1), n = ceil(256 cos(pi u / 2)): the mean of cos(pi u / 2) is 2 / pi
    assert abs(counts.mean().item() / 256 - 2 / math.pi) < 0.02
    # the empirical quantiles follow the schedule: P(n <= 256 * gamma(q)) ~= 1 - q
    gamma = get_schedule("cosine")
    for q in (0.25, 0.5, 0.75):
        threshold = 256 * gamma(torch.tensor([q]), torch.tensor([256])).item()
        assert abs((counts <= math.ceil(threshold)).float().mean().item() - (1 - q)) < 0.03


def test_cached_tokens_are_reused(tmp_path, monkeypatch):
    model = MaskGIT(preset("tiny")[0], None).eval()
    images = blobs(6, 0)
    first = cached_tokens(model, images, tmp_path, hflip=True)
    assert first.shape == (12, 256) and len(list(tmp_path.glob("tokens-*.safetensors"))) == 1
    monkeypatch.setattr(MaskGIT, "tokenize", lambda *a, **k: pytest.fail("tokens were recomputed"))
    assert torch.equal(cached_tokens(model, images, tmp_path, hflip=True), first)
    with pytest.raises(pytest.fail.Exception):
        cached_tokens(model, blobs(6, 1), tmp_path, hflip=True)  # other pixels: a new key


def test_psnr_is_ten_log10_of_peak_squared_over_the_mean_squared_error():
    """Known answers: every value off by 10 gives MSE 100, 10 log10(255^2 / 100) = 28.13 dB (either
    order: uint8 differences must not wrap); one value off by 255 among 2 x 3 x 64 x 64 = 24576 gives
    MSE 255^2 / 24576, i.e. 10 log10(24576) = 43.905 dB; equal images are infinitely close."""
    zeros = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    assert psnr(zeros, zeros + 10) == pytest.approx(28.1308, abs=1e-4)
    assert psnr(zeros + 10, zeros) == pytest.approx(28.1308, abs=1e-4)
    one_off = zeros.clone()
    one_off[1, 2, 63, 0] = 255
    assert psnr(one_off, zeros) == pytest.approx(43.9051, abs=1e-4)
    assert psnr(zeros, zeros) == math.inf
