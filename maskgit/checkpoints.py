"""Checkpoints: ours are safetensors + a JSON config; the lab's `.pt` state dicts load too.

Foreign files are untrusted: `.pt` files load with `weights_only=True`, which refuses pickled code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .model import MaskGIT
from .presets import lab_configs, preset
from .transformer import TransformerConfig
from .vqgan import VQGANConfig

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
LATEST_FILE = "LATEST"  # in a training output folder: the name of its newest epoch checkpoint
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def pretrained_names() -> list[str]:
    return sorted(p.name for p in PRETRAINED_DIR.glob("*") if (p / CONFIG_FILE).exists())


def resolve(spec: str | Path) -> Path:
    """A checkpoint directory from a shipped model's name, a directory (or a training output folder:
    its newest epoch), or its safetensors file."""
    path = Path(spec)
    if not path.exists() and (PRETRAINED_DIR / str(spec) / CONFIG_FILE).exists():
        return PRETRAINED_DIR / str(spec)
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    if (path / LATEST_FILE).is_file():
        path = path / (path / LATEST_FILE).read_text().strip()
    if not path.is_dir():
        known = ", ".join(pretrained_names()) or "none shipped"
        raise CheckpointError(f"{spec}: no such checkpoint (a directory, a .safetensors file, or a shipped name: {known})")
    return path


def save_checkpoint(directory: str | Path, model: MaskGIT, meta: dict | None = None,
                    dtype: torch.dtype | None = None) -> str:
    """Write weights and config atomically; returns the weights' content hash.

    `dtype=torch.float16` halves the file (shipped models); loading casts back to float32.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().to(dtype if dtype and v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / WEIGHTS_FILE)
    config = {
        "vqgan": model.vqgan.cfg.to_dict(),
        "transformer": model.transformer.cfg.to_dict() if model.transformer is not None else None,
        "meta": meta or {},
        "weights_sha256": file_hash(directory / WEIGHTS_FILE),
    }
    tmp = directory / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, directory / CONFIG_FILE)
    return config["weights_sha256"]


def read_config(directory: Path) -> dict:
    try:
        return json.loads((directory / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{directory / CONFIG_FILE}: missing (every checkpoint has a config.json)") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def load_checkpoint(spec: str | Path, require_transformer: bool = True) -> tuple[MaskGIT, dict]:
    """Load one of our checkpoints; returns the model (eval mode) and its config dict."""
    directory = resolve(spec)
    config = read_config(directory)
    weights = directory / WEIGHTS_FILE
    try:
        vq_cfg = VQGANConfig(**config["vqgan"])
        tr_cfg = TransformerConfig(**config["transformer"]) if config.get("transformer") else None
    except (TypeError, KeyError) as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: bad model config ({exc})") from None
    if require_transformer and tr_cfg is None:
        raise CheckpointError(f"{directory}: holds only a VQGAN (stage 1); a transformer is needed here")
    try:
        state = load_file(str(weights))
    except FileNotFoundError:
        raise CheckpointError(f"{weights}: missing") from None
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: unreadable or truncated safetensors file ({exc})") from None
    model = MaskGIT(vq_cfg, tr_cfg)
    load_state(model, state, weights)
    config["weights_sha256"] = file_hash(weights)
    config["path"] = str(directory)
    return model.eval(), config


def load_state(module: torch.nn.Module, state: dict, source: Path | str) -> None:
    """load_state_dict with an error that names the file and the first mismatch."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{source}: keys do not fit the model ({detail}, {len(missing)} missing, {len(unexpected)} unexpected)")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{source}: '{key}' has shape {tuple(state[key].shape)}, the model expects {tuple(value.shape)}"
            )
    module.load_state_dict(state)


def load_torch_state_dict(path: str | Path) -> dict:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except Exception as exc:  # pickle errors, refused globals, truncated zip: all mean "not usable"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a plain state dict that loads with weights_only=True ({first_line})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def load_lab_checkpoint(vqgan_pt: str | Path, transformer_pt: str | Path | None = None,
                        lab_config: dict | None = None) -> MaskGIT:
    """The lab's `VQGAN.pt` (+ transformer `.pt`) as a MaskGIT; full-size lab configs unless given."""
    vq_cfg, tr_cfg = lab_configs(lab_config) if lab_config else preset("lab")
    model = MaskGIT(vq_cfg, tr_cfg if transformer_pt else None)
    load_state(model.vqgan, load_torch_state_dict(vqgan_pt), vqgan_pt)
    if transformer_pt:
        load_state(model.transformer, load_torch_state_dict(transformer_pt), transformer_pt)
    return model.eval()
