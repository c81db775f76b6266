"""Latent codes from integer seeds, identical on every device and in every batch.

Annotations store a sample's seed so that its image can be regenerated forever; the
stream derives its samples from seeds too. Both rely on one rule: the z of seed ``s``
is ``torch.randn(z_dim)`` drawn from a CPU generator seeded with ``s`` and nothing
else. It therefore does not depend on the device, on the other seeds in the batch,
or on their order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Seeds are stored as int64 (tensors, JSON); this is the exclusive upper bound.
MAX_SEED = 2**63


def check_seeds(seeds: Sequence[int] | torch.Tensor) -> list[int]:
    """Validate seeds (non-negative integers below 2**63) and return them as ints."""
    if isinstance(seeds, torch.Tensor):
        if seeds.dtype.is_floating_point or seeds.dtype.is_complex or seeds.dtype == torch.bool:
            raise ValueError(f"seeds must be an integer tensor, got dtype {seeds.dtype}")
        if seeds.ndim != 1:
            raise ValueError(f"seeds must be a 1-D tensor, got shape {tuple(seeds.shape)}")
        values = [int(s) for s in seeds.tolist()]
    else:
        if isinstance(seeds, (str, bytes)):
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
