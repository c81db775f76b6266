"""Seeds: the one hash every random choice derives from, and latents from seeds.

- :func:`derive_seed` mixes integer parts (base seed, purpose, epoch, index, ...) with
  SplitMix64 (Steele et al. 2014) into an independent 63-bit seed. The stream, the
  export, the interpreter's initialisation and data order, augmentation and the
  cross-validation folds all use it, so a seed means the same thing everywhere and in
  every version.
- :func:`sample_seed` is the rule for the stream's candidates (and the export's).
- :func:`z_from_seeds`: the z of seed ``s`` is ``torch.randn(z_dim)`` drawn from a CPU
  generator seeded with ``s`` and nothing else, so it does not depend on the device, on
  the other seeds in the batch, or on their order. Annotations store a sample's seed
  so that its image can be regenerated forever.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from .conventions import as_index

__all__ = [
    "MAX_SEED",
    "check_seed",
    "check_seeds",
    "derive_seed",
    "distributed_context",
    "sample_seed",
    "splitmix64",
    "z_from_seeds",
]

#: Seeds are stored as int64 (tensors, JSON); this is the exclusive upper bound.
MAX_SEED = 2**63
_MASK64 = (1 << 64) - 1
_GAMMA, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def splitmix64(x: int | np.ndarray) -> int | np.ndarray:
    """SplitMix64 of a 64-bit integer, or elementwise of a uint64 array.

    A bijection with good avalanche: distinct inputs give distinct, well-spread outputs.
    """
    if isinstance(x, np.ndarray):
        with np.errstate(over="ignore"):
            z = x.astype(np.uint64) + np.uint64(_GAMMA)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
            return z ^ (z >> np.uint64(31))
    z = (int(x) + _GAMMA) & _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def derive_seed(*parts: int) -> int:
    """A non-negative 63-bit seed from integer parts (order matters)."""
    h = 0
    for p in parts:
        h = splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1


def check_seed(value: object, name: str = "seed") -> int:
    """``value`` as a seed (an int in [0, 2**63)), else a ValueError naming ``name``:
    a float, a string or 2**64 would otherwise map silently onto another seed."""
    seed = as_index(value)
    if seed is None:
        raise ValueError(f"{name} must be an int in [0, 2**63), got {value!r}")
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"{name} must be in [0, 2**63), got {seed}")
    return seed


def sample_seed(base_seed: int, epoch: int, candidate: int) -> int:
    """Seed of candidate ``candidate`` (global over ranks and workers) of an epoch."""
    return derive_seed(base_seed, epoch, candidate)


def distributed_context() -> tuple[int, int]:
    """(rank, world size): from torch.distributed when initialised, else torchrun's env."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1:
        raise ValueError(f"environment WORLD_SIZE={world}: must be >= 1")
    if world > 1 and not os.environ.get("RANK", "").strip():
        # Lightning's launcher sets WORLD_SIZE but not RANK: assuming rank 0 would give
        # every rank the same samples
        raise ValueError(
            f"environment WORLD_SIZE={world} but RANK is not set: initialise "
            "torch.distributed first (or set RANK) so each rank draws its own samples"
        )
    if not 0 <= rank < world:
        raise ValueError(f"environment RANK={rank}: must be in [0, WORLD_SIZE={world})")
    return rank, world


def _env_int(name: str, default: int) -> int:
    """An integer environment variable (torchrun's RANK, WORLD_SIZE), else ValueError."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment {name}={text!r} is not an integer") from None


def check_seeds(seeds: Sequence[int] | torch.Tensor) -> list[int]:
    """Validate seeds (non-negative integers below 2**63) and return them as ints."""
    if isinstance(seeds, torch.Tensor):
        if seeds.dtype.is_floating_point or seeds.dtype.is_complex or seeds.dtype == torch.bool:
            raise ValueError(f"seeds must be an integer tensor, got dtype {seeds.dtype}")
        if seeds.ndim != 1:
            raise ValueError(f"seeds must be a 1-D tensor, got shape {tuple(seeds.shape)}")
        values = [int(s) for s in seeds.tolist()]
    else:
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
            raise TypeError(f"seeds must be a sequence of ints, got {type(seeds).__name__}")
        values = []
        for i, s in enumerate(seeds):
            # bool is an int subclass but a seed of True is a bug; numpy ints have __index__.
            if isinstance(s, bool) or not hasattr(s, "__index__"):
                raise TypeError(f"seed {i} must be an int, got {s!r} ({type(s).__name__})")
            values.append(int(s.__index__()))
    for i, s in enumerate(values):
        if not 0 <= s < MAX_SEED:
            raise ValueError(f"seed {i} = {s} is out of range: seeds must be in [0, 2**63)")
    return values


def z_from_seeds(
    seeds: Sequence[int] | torch.Tensor,
    z_dim: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """One standard-normal z per seed: (N, z_dim) float32, on ``device`` (default CPU).

    Each row comes from its own ``torch.Generator().manual_seed(seed)`` on the CPU, so
    seed ``s`` gives the same z whatever the device, batch size or batch order.
    """
    if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim <= 0:
        raise ValueError(f"z_dim must be a positive int, got {z_dim!r}")
    values = check_seeds(seeds)
    rows = [
        torch.randn(z_dim, generator=torch.Generator().manual_seed(s), dtype=torch.float32)
        for s in values
    ]
    z = torch.stack(rows) if rows else torch.empty(0, z_dim, dtype=torch.float32)
    return z.to(device) if device is not None else z
