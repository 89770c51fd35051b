"""Bidirectional transformer over the 256 image tokens (MaskGIT stage 2).

Attribute names follow the lab's implementation (`tok_emb`, `pos_emb`, `blocks.<i>.Attention`,
`Token_Prediction`, `LN`, `bias`) so lab checkpoints load unchanged. Post-norm blocks; the
output logits go through the tied token embedding plus a per-position bias.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TransformerConfig:
    num_image_tokens: int = 256
    num_codebook_vectors: int = 1024
    dim: int = 768
    n_layers: int = 15
    hidden_dim: int = 1536
    n_heads: int = 16
    dropout: float = 0.1

    @property
    def mask_token_id(self) -> int:
        return self.num_codebook_vectors

    def to_dict(self) -> dict:
        return asdict(self)


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.Attention = Attention(cfg.dim, cfg.n_heads, cfg.dropout)
        self.LayerNorm1 = nn.LayerNorm(cfg.dim, eps=1e-12)
        self.LayerNorm2 = nn.LayerNorm(cfg.dim, eps=1e-12)
        self.MLP = nn.Sequential(
            nn.Linear(cfg.dim, cfg.hidden_dim), nn.GELU(), nn.Linear(cfg.hidden_dim, cfg.dim), nn.Dropout(cfg.dropout)
        )
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        x = self.LayerNorm1(x + self.dropout(self.Attention(x)))
        return self.LayerNorm2(x + self.MLP(x))


class BidirectionalTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        vocab = cfg.num_codebook_vectors + 1  # + the mask token
        self.tok_emb = nn.Embedding(vocab, cfg.dim)
        self.pos_emb = nn.Parameter(torch.zeros(cfg.num_image_tokens, cfg.dim).normal_(0, 0.02))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.Token_Prediction = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(), nn.LayerNorm(cfg.dim, eps=1e-12))
        self.LN = nn.LayerNorm(cfg.dim, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.bias = nn.Parameter(torch.zeros(cfg.num_image_tokens, vocab))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def mask_token_id(self) -> int:
        return self.cfg.mask_token_id

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids [B, N] (mask token = K) -> logits [B, N, K + 1]."""
        x = self.drop(self.LN(self.tok_emb(tokens) + self.pos_emb))
        for block in self.blocks:
            x = block(x)
        x = self.Token_Prediction(x)
        return x @ self.tok_emb.weight.t() + self.bias
