"""VQGAN tokenizer: 64x64 RGB <-> 16x16 codebook ids.

Module and attribute names follow the lab's implementation exactly (`encoder.model.<i>`,
`block`, `channel_up`, `gn`, ...) so that a lab `VQGAN.pt` state dict loads unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VQGANConfig:
    image_channels: int = 3
    enc_channels: list[int] = field(default_factory=lambda: [128, 128, 128, 256, 256, 512])
    dec_channels: list[int] = field(default_factory=lambda: [128, 128, 256, 256, 512])
    latent_dim: int = 256
    img_resolution: int = 64
    latent_resolution: int = 16
    num_codebook_vectors: int = 1024
    beta: float = 0.25
    # Stages after which the resolution halves (encoder) / doubles (decoder), as in the lab.
    down_after: list[int] = field(default_factory=lambda: [2, 4])
    up_after: list[int] = field(default_factory=lambda: [4, 2])
    # Residual blocks per encoder / decoder stage (the lab: 2 and 3).
    enc_blocks: int = 2
    dec_blocks: int = 3
    # Pixel normalisation the model was trained with (the lab's test-loader constants).
    pixel_mean: list[float] = field(default_factory=lambda: [0.4868, 0.4341, 0.3844])
    pixel_std: list[float] = field(default_factory=lambda: [0.2620, 0.2527, 0.2543])

    def to_dict(self) -> dict:
        return asdict(self)


class GroupNorm(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.gn = nn.GroupNorm(num_groups=min(32, channels), num_channels=channels, eps=1e-6, affine=True)

    def forward(self, x):
        return self.gn(x)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            GroupNorm(in_channels), Swish(), nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            GroupNorm(out_channels), Swish(), nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        if in_channels != out_channels:
            self.channel_up = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x):
        skip = self.channel_up(x) if hasattr(self, "channel_up") else x
        return self.block(x) + skip


class NonLocalBlock(nn.Module):
    """Single-head self-attention over all spatial positions."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = GroupNorm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        h_ = self.norm(x)
        q, k, v = (m(h_).reshape(b, 1, c, h * w).transpose(2, 3) for m in (self.q, self.k, self.v))
        attn = F.scaled_dot_product_attention(q, k, v)  # scale c^-0.5, as the lab
        attn = attn.transpose(2, 3).reshape(b, c, h, w)
        return x + self.proj_out(attn)


class DownSampleBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class UpSampleBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        ch = cfg.enc_channels
        resolution = cfg.img_resolution
        layers: list[nn.Module] = [nn.Conv2d(cfg.image_channels, ch[0], 3, 1, 1)]
        for i in range(len(ch) - 1):
            in_ch = ch[i]
            for _ in range(cfg.enc_blocks):
                layers.append(ResidualBlock(in_ch, ch[i + 1]))
                in_ch = ch[i + 1]
                if resolution == cfg.latent_resolution:
                    layers.append(NonLocalBlock(in_ch))
            if i in cfg.down_after:
                layers.append(DownSampleBlock(ch[i + 1]))
                resolution //= 2
        layers += [
            ResidualBlock(ch[-1], ch[-1]), NonLocalBlock(ch[-1]), ResidualBlock(ch[-1], ch[-1]),
            GroupNorm(ch[-1]), Swish(), nn.Conv2d(ch[-1], cfg.latent_dim, 3, 1, 1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        ch = cfg.dec_channels
        resolution = cfg.latent_resolution
        in_ch = ch[-1]
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.latent_dim, in_ch, 3, 1, 1),
            ResidualBlock(in_ch, in_ch), NonLocalBlock(in_ch), ResidualBlock(in_ch, in_ch),
        ]
        for i in reversed(range(len(ch))):
            for _ in range(cfg.dec_blocks):
                layers.append(ResidualBlock(in_ch, ch[i]))
                in_ch = ch[i]
                if resolution == cfg.latent_resolution:
                    layers.append(NonLocalBlock(in_ch))
            if i in cfg.up_after:
                layers.append(UpSampleBlock(in_ch))
                resolution *= 2
        layers += [GroupNorm(in_ch), nn.Conv2d(in_ch, cfg.image_channels, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Codebook(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        self.beta = cfg.beta
        self.embedding = nn.Embedding(cfg.num_codebook_vectors, cfg.latent_dim)
        k = cfg.num_codebook_vectors
        self.embedding.weight.data.uniform_(-1.0 / k, 1.0 / k)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Ids [B, h*w] of the nearest codebook entries (squared L2) for z [B, C, h, w]."""
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        e = self.embedding.weight
        d = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
        return d.argmin(1).reshape(b, h * w)

    def lookup(self, ids: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.embedding(ids).reshape(ids.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()

    def forward(self, z):
        """Quantise z; returns (z_q with straight-through gradient, ids, codebook+commitment loss)."""
        ids = self.nearest(z)
        z_q = self.lookup(ids, z.shape[2], z.shape[3])
        loss = F.mse_loss(z_q, z.detach()) + self.beta * F.mse_loss(z_q.detach(), z)
        return z + (z_q - z).detach(), ids, loss


class VQGAN(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.codebook = Codebook(cfg)
        self.quant_conv = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 1)

    @property
    def num_tokens(self) -> int:
        return self.cfg.latent_resolution**2

    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(images))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images [B, 3, H, W] -> token ids [B, h*w] in (row, column) order."""
        return self.codebook.nearest(self.encode_latents(images))

    def decode_latents(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z_q))

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, h*w] -> normalised images [B, 3, H, W]."""
        r = self.cfg.latent_resolution
        return self.decode_latents(self.codebook.lookup(ids, r, r))

    def forward(self, images):
        """Training pass: (reconstruction, ids, codebook loss)."""
        z_q, ids, q_loss = self.codebook(self.encode_latents(images))
        return self.decode_latents(z_q), ids, q_loss


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix style) for the adversarial loss of stage 1."""

    def __init__(self, image_channels: int = 3, base_channels: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(image_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for i in range(1, n_layers + 1):
            prev, mult = mult, min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(base_channels * prev, base_channels * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(base_channels * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(base_channels * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)
