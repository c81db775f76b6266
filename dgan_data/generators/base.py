"""The Generator protocol every architecture implements, and the pieces they share.

A generator maps z -> w (``mapping``) and w -> (image, feature maps) (``synthesize``).
Feature maps are a plain list of tensors in forward order, each at its own native
resolution, so the interpreter works with any architecture.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..conventions import check_truncation_cutoff, check_truncation_psi, keyword_hints
from ..schema import Int, Optional, SchemaError, check_document
from .files import CheckpointError, compare_shapes, save_generator

NoiseSpec = str | Sequence[torch.Tensor]
Check = Callable[[Any, str], Any]

#: Seed of the fixed per-layer noise that formats without stored noise buffers use.
DEFAULT_NOISE_SEED = 0

# Architecture limits, checked before anything is allocated. The largest released
# StyleGANs are 1024 px with 512-wide latents and at most 1024 channels.
#: Largest output resolution accepted from a file.
MAX_RESOLUTION = 4096
#: Widest layer (channels) accepted from a file.
MAX_CHANNELS = 4096
#: Widest latent (z_dim, w_dim, style_dim) accepted from a file.
MAX_LATENT_DIM = 4096
#: Deepest mapping network accepted from a file.
MAX_MAPPING_LAYERS = 32


class MayOmit(Optional):
    """A config key that may be left out (the constructor's default), but is never None."""

    def __call__(self, value: Any, field: str) -> Any:
        return self.check(value, field)


class PowerOfTwo(Int):
    """An integer power of two in [low, high]."""

    def __call__(self, value: Any, field: str) -> int:
        value = super().__call__(value, field)
        if value & (value - 1):
            raise SchemaError(f"field '{field}' must be a power of two, got {value}")
        return value


@keyword_hints
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
    #: Constructor arguments (the keys of ``config``) and the check of each value.
    CONFIG_SCHEMA: ClassVar[dict[str, Check]] = {}

    z_dim: int
    w_dim: int
    num_ws: int
    resolution: tuple[int, int]
    feature_channels: list[int]
    feature_resolutions: list[tuple[int, int]]
    #: The file it was loaded from, for messages (None: built in memory).
    source: str | None = None

    # ---------------------------------------------------------------- latents
    def mapping(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z (B, z_dim) -> w (B, num_ws, w_dim), truncated towards the average w.

        ``truncation_psi``: a number in [0, 2] (1: no truncation). ``truncation_cutoff``:
        only the first that many of the ``num_ws`` layers are truncated (StyleGAN1's
        ``max_layer``), an int >= 1; None uses the architecture's default. Bad values
        are a ValueError naming the argument, raised before the network runs.
        """
        truncation_psi = check_truncation_psi(truncation_psi, "truncation_psi")
        truncation_cutoff = check_truncation_cutoff(truncation_cutoff, "truncation_cutoff")
        z = torch.as_tensor(z)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"mapping expects z of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        w = self._mapping(self.to_own_device(z))
        return self.truncate(w, truncation_psi, truncation_cutoff)

    def to_own_device(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on this generator's device, in its floating dtype (no copy when it is).

        The device and dtype are those of the first floating parameter or buffer; a
        generator without any leaves ``x`` as it is.
        """
        tensors = itertools.chain(self.parameters(), self.buffers())
        ref = next((t for t in tensors if t.is_floating_point()), None)
        return x if ref is None else x.to(device=ref.device, dtype=ref.dtype)

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
        """Lerp w towards the average w by ``psi`` on the first ``cutoff`` layers.

        ``psi`` is a number in [0, 2]; ``cutoff`` None (the architecture's default) or an
        int >= 1; anything else is a ValueError naming the argument. ``w`` is (B, num_ws,
        w_dim), or (B, w_dim) as ``synthesize`` reads it (one w for every layer); the
        result is (B, num_ws, w_dim), ``w`` itself when psi is 1.
        """
        psi = check_truncation_psi(psi, "psi")
        cutoff = check_truncation_cutoff(cutoff, "cutoff")
        w = torch.as_tensor(w)
        if w.ndim == 2 and w.shape[1] == self.w_dim:
            if psi == 1.0:
                return w
            # broadcast over the layers first: (B, w_dim) against the (num_ws, w_dim) centre
            # was a torch error, or B == num_ws rows read as one sample's layers
            w = w.unsqueeze(1).expand(-1, self.num_ws, -1)
        elif w.ndim != 3 or w.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(
                f"truncate expects w of shape (B, {self.num_ws}, {self.w_dim}) or "
                f"(B, {self.w_dim}), got {tuple(w.shape)}"
            )
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
        """Accept (B, w_dim) (broadcast to every layer) or (B, num_ws, w_dim).

        The result is on this generator's device, in its dtype.
        """
        w = torch.as_tensor(w)
        if w.ndim == 2 and w.shape[1] == self.w_dim:
            return self.to_own_device(w).unsqueeze(1).expand(-1, self.num_ws, -1)
        if w.ndim != 3 or w.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(
                f"synthesize expects w of shape (B, {self.num_ws}, {self.w_dim}) "
                f"or (B, {self.w_dim}), got {tuple(w.shape)}"
            )
        return self.to_own_device(w)

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
        """Turn a noise spec into one (B or 1, 1, h, w) tensor per noise input.

        An explicit list is checked tensor by tensor: a ValueError names the first
        ``noise tensor i`` that is not a 4-d tensor of shape (``batch`` or 1, 1, h, w).
        """
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
        try:
            if isinstance(noise, torch.Tensor):  # list() would split it along the batch
                raise TypeError
            noise = list(noise)
        except TypeError:
            raise ValueError(
                "noise must be 'const', 'random' or a list of tensors (one per noise input), "
                f"got a {type(noise).__name__}"
            ) from None
        if len(noise) != len(shapes):
            raise ValueError(f"expected {len(shapes)} noise tensors, got {len(noise)}")
        for i, (n, (h, w)) in enumerate(zip(noise, shapes)):
            want = f"(B or 1, 1, {h}, {w}) with B = {batch}"
            if not isinstance(n, torch.Tensor):
                raise ValueError(
                    f"noise tensor {i} is a {type(n).__name__}, expected a tensor {want}"
                )
            if n.ndim != 4 or n.shape[1] != 1 or n.shape[0] not in (1, batch):
                raise ValueError(f"noise tensor {i} has shape {tuple(n.shape)}, expected {want}")
            if n.shape[-2:] != (h, w):
                raise ValueError(
                    f"noise tensor {i} has spatial size {tuple(n.shape[-2:])}, expected {(h, w)}"
                )
        return [n.to(like.device) for n in noise]

    # ------------------------------------------------------------ persistence
    @property
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``type(self)(**config)`` rebuilds it."""
        raise NotImplementedError

    @classmethod
    def check_config(
        cls, config: Any, source: str = "<config>", what: str = "generator config"
    ) -> dict[str, Any]:
        """``config`` checked against ``CONFIG_SCHEMA`` and the architecture's limits.

        Raises :class:`CheckpointError` naming ``source`` and the field; nothing is built.
        """
        try:
            check_document(config, cls.CONFIG_SCHEMA, what, allow_unknown=False)
            cls.check_config_values(config)
        except SchemaError as err:
            raise CheckpointError(f"{source}: {err}") from None
        except ValueError:  # e.g. an int too long to print in the schema's message
            raise CheckpointError(f"{source}: {what}: a value is out of any range") from None
        return dict(config)

    @classmethod
    def check_config_values(cls, config: dict[str, Any]) -> None:
        """Checks between fields (after the per-field schema); raise SchemaError."""

    @classmethod
    def expected_shapes(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shape of every state-dict tensor of ``cls(**config)``, without allocating it."""
        with torch.device("meta"):
            model = cls(**config)
        return {k: tuple(t.shape) for k, t in model.state_dict().items()}

    @classmethod
    def build_checked(
        cls,
        config: Any,
        stored: Mapping[str, tuple[int, ...]],
        source: str,
        what: str = "generator config",
    ) -> Generator:
        """Check ``config``, compare its tensor shapes with ``stored``, then build.

        The module is allocated only once the file is known to hold every tensor it
        needs, with the right shape: sizes declared in a file never allocate more than
        the file's own tensors do.
        """
        config = cls.check_config(config, source, what)
        compare_shapes(cls.expected_shapes(config), stored, source)
        return cls(**config)

    @classmethod
    def from_config(cls, config: dict[str, Any], source: str = "<config>") -> Generator:
        """A fresh generator from a checked ``config`` (randomly initialised)."""
        return cls(**cls.check_config(config, source))

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
