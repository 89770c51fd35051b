"""Named model sizes. `lab` reproduces the lab's architecture; the small ones train on 2 CPU cores."""

from __future__ import annotations

from dataclasses import replace

from .transformer import TransformerConfig
from .vqgan import VQGANConfig

PRESETS: dict[str, tuple[VQGANConfig, TransformerConfig]] = {
    "lab": (VQGANConfig(), TransformerConfig()),
    # ~3M-parameter tokenizer (~25 images/s of training on 2 CPU cores, most of its work at
    # 32x32 and 16x16) and ~1M-parameter transformer: hours, not days, on a laptop-class CPU.
    "small": (
        VQGANConfig(enc_channels=[32, 64, 128], dec_channels=[32, 64, 128], down_after=[0, 1], up_after=[2, 1],
                    enc_blocks=1, dec_blocks=2, latent_dim=64, num_codebook_vectors=512),
        TransformerConfig(num_codebook_vectors=512, dim=128, n_layers=4, hidden_dim=512, n_heads=4),
    ),
    # For a GPU (scripts/gpu_train.sh): between small and lab, and small enough that its fp16
    # checkpoint travels back from a lent machine (19.4M parameters in all, 39 MB in fp16).
    "medium": (
        VQGANConfig(enc_channels=[64, 128, 192], dec_channels=[64, 128, 192], down_after=[0, 1], up_after=[2, 1],
                    enc_blocks=1, dec_blocks=2, latent_dim=128, num_codebook_vectors=1024),
        TransformerConfig(num_codebook_vectors=1024, dim=384, n_layers=6, hidden_dim=1536, n_heads=8),
    ),
    # ~0.8M-parameter tokenizer for the embedded toy faces (~28 images/s of training on one CPU
    # core with bf16; their clean shapes need no more) and the `small` transformer. 128 codes, not
    # 512: with 512 one flat colour was split over 3-6 near-identical codes, look-alikes the
    # transformer has to guess between (docs/architecture.md, "The embedded toy benchmark").
    "toy": (
        VQGANConfig(enc_channels=[16, 32, 64], dec_channels=[16, 32, 64], down_after=[0, 1], up_after=[2, 1],
                    enc_blocks=1, dec_blocks=2, latent_dim=32, num_codebook_vectors=128),
        TransformerConfig(num_codebook_vectors=128, dim=128, n_layers=4, hidden_dim=512, n_heads=4),
    ),
    # For tests: builds and runs in milliseconds.
    "tiny": (
        VQGANConfig(enc_channels=[8, 16, 16], dec_channels=[8, 16, 16], down_after=[0, 1], up_after=[2, 1],
                    enc_blocks=1, dec_blocks=1, latent_dim=16, num_codebook_vectors=32),
        TransformerConfig(num_codebook_vectors=32, dim=32, n_layers=1, hidden_dim=64, n_heads=4),
    ),
}


def preset(name: str) -> tuple[VQGANConfig, TransformerConfig]:
    """Fresh copies of a preset's configs (callers may modify them)."""
    if name not in PRESETS:
        raise ValueError(f"preset '{name}' is unknown; known: {', '.join(PRESETS)}")
    vq, tr = PRESETS[name]
    return replace(vq, enc_channels=list(vq.enc_channels), dec_channels=list(vq.dec_channels)), replace(tr)


def lab_configs(lab_config: dict) -> tuple[VQGANConfig, TransformerConfig]:
    """Configs from the lab's own field names (as in its config files)."""
    vq = VQGANConfig(**{k: v for k, v in lab_config["vqgan"].items()})
    tr = TransformerConfig(**lab_config["transformer"])
    return vq, tr
