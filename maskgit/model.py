"""A trained MaskGIT: the tokenizer and the transformer, with the pixel conversions they need."""

from __future__ import annotations

import torch
from torch import nn

from .pixels import to_model, to_uint8
from .transformer import BidirectionalTransformer, TransformerConfig
from .vqgan import VQGAN, VQGANConfig


class MaskGIT(nn.Module):
    def __init__(self, vqgan_cfg: VQGANConfig, transformer_cfg: TransformerConfig | None):
        super().__init__()
        self.vqgan = VQGAN(vqgan_cfg)
        self.transformer = BidirectionalTransformer(transformer_cfg) if transformer_cfg else None
        if transformer_cfg and transformer_cfg.num_codebook_vectors != vqgan_cfg.num_codebook_vectors:
            raise ValueError("transformer and VQGAN disagree on the codebook size")

    @property
    def mask_token_id(self) -> int:
        return self.vqgan.cfg.num_codebook_vectors

    @torch.inference_mode()
    def tokenize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [N, 3, 64, 64] -> token ids [N, 256]."""
        cfg = self.vqgan.cfg
        return self.vqgan.encode(to_model(images, cfg.pixel_mean, cfg.pixel_std))

    @torch.inference_mode()
    def detokenize(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [N, 256] -> uint8 images [N, 3, 64, 64]."""
        cfg = self.vqgan.cfg
        return to_uint8(self.vqgan.decode(ids).float(), cfg.pixel_mean, cfg.pixel_std)


def bf16_autocast(device: str | torch.device, enabled: bool | None = None) -> torch.autocast:
    """bf16 autocast of the model's forward passes on `device`. None: on for CUDA only, where bf16 is
    native; True also turns it on for CPUs with native bf16 (avx512_bf16/AMX), False never."""
    kind = torch.device(device).type
    on = kind == "cuda" if enabled is None else enabled
    return torch.autocast("cuda" if kind == "cuda" else "cpu", dtype=torch.bfloat16, enabled=on)

