"""Our safetensors checkpoints round-trip; bad files give errors that name the file."""

import json
import pickle

import pytest
import torch

from maskgit.checkpoints import CheckpointError, load_checkpoint, load_lab_checkpoint, save_checkpoint
from maskgit.model import MaskGIT
from maskgit.presets import preset


@pytest.fixture
def saved(tmp_path):
    model = MaskGIT(*preset("tiny"))
    sha = save_checkpoint(tmp_path / "ckpt", model, {"note": "test"})
    return model, tmp_path / "ckpt", sha


def test_round_trip_restores_every_tensor_and_the_config(saved):
    model, path, sha = saved
    loaded, config = load_checkpoint(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert config["meta"] == {"note": "test"} and config["weights_sha256"] == sha
    assert loaded.vqgan.cfg == model.vqgan.cfg and loaded.transformer.cfg == model.transformer.cfg


def test_half_precision_checkpoints_load_as_float32(saved, tmp_path):
    model, _, _ = saved
    save_checkpoint(tmp_path / "half", model, dtype=torch.float16)
    loaded, _ = load_checkpoint(tmp_path / "half")
    weight = loaded.transformer.tok_emb.weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, model.transformer.tok_emb.weight, atol=1e-3, rtol=1e-3)
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * (saved[1] / "model.safetensors").stat().st_size


def test_the_safetensors_file_itself_can_be_named(saved):
    _, path, sha = saved
    assert load_checkpoint(path / "model.safetensors")[1]["weights_sha256"] == sha


def test_hash_changes_with_the_weights(saved, tmp_path):
    model, _, sha = saved
    with torch.no_grad():
        model.transformer.bias.add_(1.0)
    assert save_checkpoint(tmp_path / "other", model) != sha


def test_truncated_weights_are_refused(saved):
    _, path, _ = saved
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable or truncated"):
        load_checkpoint(path)


def test_shapes_that_do_not_fit_the_config_are_refused(saved):
    _, path, _ = saved
    config = json.loads((path / "config.json").read_text())
    config["transformer"]["dim"] = 48
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="has shape .* the model expects"):
        load_checkpoint(path)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere: no such checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_stage_one_checkpoint_is_refused_where_a_transformer_is_needed(tmp_path):
    save_checkpoint(tmp_path / "vq", MaskGIT(preset("tiny")[0], None))
    with pytest.raises(CheckpointError, match="only a VQGAN"):
        load_checkpoint(tmp_path / "vq")
    assert load_checkpoint(tmp_path / "vq", require_transformer=False)[0].transformer is None


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_in_a_lab_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(CheckpointError, match="evil.pt: not a plain state dict"):
        load_lab_checkpoint(path)


def test_lab_checkpoint_with_wrong_shapes_names_the_key(lab_format):
    config = json.loads((lab_format / "tiny_config.json").read_text())
    config["transformer"]["dim"] = 128  # the file was saved with dim 64
    with pytest.raises(CheckpointError, match="tiny_transformer.pt: '.*' has shape"):
        load_lab_checkpoint(lab_format / "tiny_vqgan.pt", lab_format / "tiny_transformer.pt", config)


def test_lab_checkpoint_with_other_keys_is_refused(tmp_path):
    path = tmp_path / "VQGAN.pt"
    torch.save(MaskGIT(preset("tiny")[0], None).vqgan.state_dict(), path)
    with pytest.raises(CheckpointError, match="VQGAN.pt: keys do not fit the model"):
        load_lab_checkpoint(path)


def test_the_shipped_default_loads_by_name_with_its_model_card():
    from maskgit.checkpoints import PRETRAINED_DIR, pretrained_names

    assert "toyfaces" in pretrained_names()
    model, config = load_checkpoint("toyfaces")
    assert model.transformer is not None and config["meta"]["preset"] == "toy"
    vqgan, transformer = preset("toy")
    assert config["vqgan"] == vqgan.to_dict() and config["transformer"] == transformer.to_dict()
    assert (PRETRAINED_DIR / "toyfaces" / "MODEL_CARD.md").is_file()
    assert (PRETRAINED_DIR / "toyfaces" / "model.safetensors").stat().st_size < 10 * 2**20  # keep the package small
