"""A known-answer model for calibrating the intervals: paired Gaussian features with a closed-form FD.

Reference features y ~ N(0, diag(lambda)) with a power-law spectrum (as Inception features decay),
and each 'setting' generates x = a * y + e + shift, e ~ N(0, R diag(noise) R^T) with a random
rotation R of the leading dimensions: x is Gaussian, correlated with its own y as an inpainting is
with its ground truth, and its covariance does not commute with y's. The Frechet distance of the
two populations is then exact, so an interval's coverage of it (or of E[FID_N]) can be counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

ROTATED = 128  # leading dimensions the noise covariance is rotated in


@dataclass(frozen=True)
class GaussianSetting:
    """x = gain * y + e + shift * (unit vector 0), e's spectrum noise * lambda (rotated)."""

    gain: float
    noise: float
    shift: float


@dataclass(frozen=True)
class GaussianModel:
    dim: int = 2048
    decay: float = 1.0  # lambda_i = scale * i^-decay
    scale: float = 1.0
    seed: int = 0

    @cached_property
    def spectrum(self) -> np.ndarray:
        return self.scale * np.arange(1, self.dim + 1, dtype=np.float64) ** -self.decay

    @cached_property
    def rotation(self) -> np.ndarray:
        q, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal((ROTATED, ROTATED)))
        return q

    def noise_covariance(self, setting: GaussianSetting) -> np.ndarray:
        cov = np.diag(setting.noise * self.spectrum)
        head = slice(0, ROTATED)
        cov[head, head] = self.rotation @ cov[head, head] @ self.rotation.T
        return cov

    def frechet_distance(self, setting: GaussianSetting) -> float:
        """Closed form |mu_x - mu_y|^2 + tr S_x + tr S_y - 2 tr sqrt(S_y^1/2 S_x S_y^1/2)."""
        s_x = setting.gain ** 2 * np.diag(self.spectrum) + self.noise_covariance(setting)
        root_y = np.sqrt(self.spectrum)
        middle = root_y[:, None] * s_x * root_y[None, :]
        trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0, None)).sum()
        return float(setting.shift ** 2 + np.trace(s_x) + self.spectrum.sum() - 2 * trace_sqrt)

    def draw(self, n: int, settings: list[GaussianSetting], rng: np.random.Generator,
             shared_noise: float = 0.0) -> tuple[np.ndarray, list[np.ndarray]]:
        """y [n, D] and one x [n, D] per setting, all paired by row; settings share a fraction
        `shared_noise` of their noise variance (so their FIDs are correlated, as two decoders' are)."""
        root = np.sqrt(self.spectrum)
        y = rng.standard_normal((n, self.dim)) * root
        common = rng.standard_normal((n, self.dim))
        xs = []
        for setting in settings:
            z = np.sqrt(shared_noise) * common + np.sqrt(1 - shared_noise) * rng.standard_normal((n, self.dim))
            e = z * root * np.sqrt(setting.noise)
            e[:, :ROTATED] = e[:, :ROTATED] @ self.rotation.T
            x = setting.gain * y + e
            x[:, 0] += setting.shift
            xs.append(x)
        return y, xs
