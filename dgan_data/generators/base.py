"""The Generator protocol every architecture implements, and the pieces they share.

A generator maps z -> w (``mapping``) and w -> (image, feature maps) (``synthesize``).
Feature maps are a plain list of tensors in forward order, each at its own native
resolution, so the interpreter works with any architecture.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .files import save_generator

NoiseSpec = str | Sequence[torch.Tensor]

#: Seed of the fixed per-layer noise that formats without stored noise buffers use.
DEFAULT_NOISE_SEED = 0


class Generator(nn.Module):
    """Base class of all generators.

    Subclasses set the shape attributes in ``__init__`` and implement ``_mapping``,
    ``synthesize``, ``config`` and ``from_config``. The attributes are:

    - ``z_dim``, ``w_dim``, ``num_ws``: latent sizes.
    - ``resolution``: (H, W) of the output image.
    - ``feature_channels`` / ``feature_resolutions``: one entry per feature map.
    """

    #: Registry name of the architecture ("stylegan2", "stylegan1").
    arch: ClassVar[str] = ""

    z_dim: int
    w_dim: int
    num_ws: int
    resolution: tuple[int, int]
    feature_channels: list[int]
    feature_resolutions: list[tuple[int, int]]

    # ---------------------------------------------------------------- latents
    def mapping(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z (B, z_dim) -> w (B, num_ws, w_dim), truncated towards the average w.

        ``truncation_cutoff``: only the first that many of the ``num_ws`` layers are
        truncated (StyleGAN1's ``max_layer``); None uses the architecture's default.
        """
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"mapping expects z of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        w = self._mapping(z)
        return self.truncate(w, truncation_psi, truncation_cutoff)

    def _mapping(self, z: torch.Tensor) -> torch.Tensor:
        """Untruncated mapping network: (B, z_dim) -> (B, num_ws, w_dim)."""
        raise NotImplementedError

    def average_w(self) -> torch.Tensor:
        """The truncation centre, (num_ws, w_dim) or (w_dim,)."""
        raise NotImplementedError

    def default_truncation_cutoff(self) -> int | None:
        """How many w layers truncation touches by default (None: all)."""
        return None

    def truncate(
        self, w: torch.Tensor, psi: float = 1.0, cutoff: int | None = None
    ) -> torch.Tensor:
        """Lerp w towards the average w by ``psi`` on the first ``cutoff`` layers."""
        if psi == 1.0:
            return w
        cutoff = self.default_truncation_cutoff() if cutoff is None else cutoff
        avg = self.average_w().to(device=w.device, dtype=w.dtype)
        if avg.ndim == 1:
            avg = avg.expand(self.num_ws, -1)
        truncated = torch.lerp(avg.expand_as(w), w, psi)
        if cutoff is None or cutoff >= self.num_ws:
            return truncated
        layer = torch.arange(self.num_ws, device=w.device).view(1, -1, 1)
        return torch.where(layer < cutoff, truncated, w)

    # -------------------------------------------------------------- synthesis
    def synthesize(
        self,
        w: torch.Tensor,
        noise: NoiseSpec = "const",
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """w (B, num_ws, w_dim) -> (image (B, 3, H, W) in about [-1, 1], features)."""
        raise NotImplementedError

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise: NoiseSpec = "const",
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        w = self.mapping(z, truncation_psi, truncation_cutoff)
        return self.synthesize(w, noise=noise, generator=generator)

    def check_w(self, w: torch.Tensor) -> torch.Tensor:
        """Accept (B, w_dim) (broadcast to every layer) or (B, num_ws, w_dim)."""
        if w.ndim == 2 and w.shape[1] == self.w_dim:
            return w.unsqueeze(1).expand(-1, self.num_ws, -1)
        if w.ndim != 3 or w.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(
                f"synthesize expects w of shape (B, {self.num_ws}, {self.w_dim}) "
                f"or (B, {self.w_dim}), got {tuple(w.shape)}"
            )
        return w

    def noise_shapes(self) -> list[tuple[int, int]]:
        """(h, w) of every noise input, forward order."""
        raise NotImplementedError

    def resolve_noise(
        self,
        noise: NoiseSpec,
        batch: int,
        const: Sequence[torch.Tensor],
        generator: torch.Generator | None,
        like: torch.Tensor,
    ) -> list[torch.Tensor]:
        """Turn a noise spec into one (B or 1, 1, h, w) tensor per noise input."""
        shapes = self.noise_shapes()
        if isinstance(noise, str):
            if noise == "const":
                return list(const)
            if noise == "random":
                out = []
                for h, w in shapes:
                    n = torch.randn(
                        (batch, 1, h, w),
                        generator=generator,
                        device=generator.device if generator is not None else like.device,
                        dtype=torch.float32,
                    )
                    out.append(n.to(like.device))
                return out
            raise ValueError(f"noise must be 'const', 'random' or a list of tensors, got {noise!r}")
        noise = list(noise)
        if len(noise) != len(shapes):
            raise ValueError(f"expected {len(shapes)} noise tensors, got {len(noise)}")
        for i, (n, (h, w)) in enumerate(zip(noise, shapes)):
            if n.shape[-2:] != (h, w):
                raise ValueError(
                    f"noise tensor {i} has spatial size {tuple(n.shape[-2:])}, expected {(h, w)}"
                )
        return noise

    # ------------------------------------------------------------ persistence
    @property
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``type(self)(**config)`` rebuilds it."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Generator:
        return cls(**config)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def fingerprint(self) -> str:
        """Short hash of architecture, config and weights: identifies a generator."""
        h = hashlib.sha256()
        h.update(self.arch.encode())
        h.update(json.dumps(self.config, sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            t = tensor.detach().to("cpu", torch.float32).contiguous()
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        """Write weights + config as one ``.safetensors`` file (config in its header)."""
        return save_generator(self, path)

    def describe(self) -> dict[str, Any]:
        """Summary used by ``dgan-data inspect``."""
        return {
            "architecture": self.arch,
            "resolution": list(self.resolution),
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "num_ws": self.num_ws,
            "num_feature_maps": len(self.feature_channels),
            "feature_channels": list(self.feature_channels),
            "total_feature_channels": int(sum(self.feature_channels)),
            "feature_resolutions": [list(r) for r in self.feature_resolutions],
            "parameters": self.num_parameters(),
        }


def seeded_noise(shapes: Sequence[tuple[int, int]], seed: int) -> list[torch.Tensor]:
    """Fixed per-layer noise (1, 1, h, w) drawn on the CPU, so it is the same on every device."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((1, 1, h, w), generator=g) for h, w in shapes]
