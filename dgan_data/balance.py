"""Rare-class balancing of a stream, by rejection and repetition over candidates.

Small parts (teeth, pupils, nostrils) are rare in pixels and in images, so a model
trained on the stream sees them seldom. :class:`ClassBalancer` decides, candidate by
candidate, from the classes the interpreter labeled in it, whether to keep it and how
many times to hand it out, so that each class appears in at least a target share of
the yielded images. Pixels are never touched: an image is kept, repeated or dropped
whole.

The rule, for a candidate whose labels contain the set P of classes (each with at
least ``min_pixels`` pixels), with n_k the yielded images containing class k so far
and N all yielded images:

- a class k is *short* when n_k < t_k * (N + 1) (keeping this image would still leave
  it at or below its target rate);
- a candidate containing a short class is kept and handed out ``max_repeats`` times
  (default 2: each copy is augmented on its own);
- any other candidate is kept with probability ``1 - reject`` while some class is short
  (``reject`` is how much of the common content is thinned out; default 0.8), else
  always. Rare classes therefore cost generation time: with ``reject=0.8`` a class
  present in 5 % of the candidates can reach about a third of the images, at up to
  five candidates labeled per image handed out.

Randomness comes from a seeded hash of the candidate's seed, so the same stream seed
gives the same decisions, and ``state_dict`` resumes them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .seeds import derive_seed

__all__ = ["DEFAULT_IMAGE_RATE", "ClassBalancer", "resolve_targets"]

#: Target image rate of every class for ``class_balance="image"``.
DEFAULT_IMAGE_RATE = 0.3
#: Seed purpose of the balancer's keep draws.
_SEED_BALANCE = 0xBA1A


def resolve_targets(
    spec: str | Mapping[str, float] | None, class_names: Sequence[str], ignore: Sequence[int] = ()
) -> list[float] | None:
    """Per-class target image rates from ``None``, ``"image"`` or ``{class name: rate}``.

    ``"image"`` asks every class but those in ``ignore`` (usually the background, present
    in every image) to appear in at least :data:`DEFAULT_IMAGE_RATE` of the images.
    Unknown class names and rates outside [0, 1] are refused, naming them.
    """
    if spec is None:
        return None
    K = len(class_names)
    if isinstance(spec, str):
        if spec != "image":
            raise ValueError(f"class_balance must be None, 'image' or a dict, got {spec!r}")
        return [0.0 if k in ignore else DEFAULT_IMAGE_RATE for k in range(K)]
    if not isinstance(spec, Mapping):
        raise ValueError(f"class_balance must be None, 'image' or a dict, got {spec!r}")
    unknown = [name for name in spec if name not in class_names]
    if unknown:
        raise ValueError(
            f"class_balance names unknown classes {unknown}; the classes are {list(class_names)}"
        )
    targets = [0.0] * K
    for name, rate in spec.items():
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not (math.isfinite(rate) and 0.0 <= rate <= 1.0)
        ):
            raise ValueError(f"class_balance rate of {name!r} must be in [0, 1], got {rate!r}")
        targets[list(class_names).index(name)] = float(rate)
    return targets


class ClassBalancer:
    """Keep/repeat decisions that lift rare classes to target image rates (see module)."""

    def __init__(
        self,
        targets: Sequence[float],
        seed: int = 0,
        reject: float = 0.8,
        max_repeats: int = 2,
    ) -> None:
        if not all(0.0 <= t <= 1.0 for t in targets):
            raise ValueError(f"target rates must be in [0, 1], got {list(targets)}")
        if not 0.0 <= reject < 1.0:
            raise ValueError(f"reject must be in [0, 1), got {reject}")
        if max_repeats < 1:
            raise ValueError(f"max_repeats must be >= 1, got {max_repeats}")
        self.targets = [float(t) for t in targets]
        self.seed = int(seed)
        self.reject = float(reject)
        self.max_repeats = int(max_repeats)
        self.counts = [0] * len(self.targets)  # yielded images containing class k
        self.yielded = 0
        self.seen = 0
        self.rejected = 0
        self.repeated = 0

    def short(self, k: int, extra: int = 1) -> bool:
        """Whether class k is below its target after ``extra`` more images."""
        return self.counts[k] < self.targets[k] * (self.yielded + extra)

    def decide(self, present: Sequence[int], sample_seed: int) -> int:
        """How many times to hand out a candidate whose labels contain ``present``
        (class ids): 0 (rejected), 1, or up to ``max_repeats``. Updates the counts."""
        self.seen += 1
        if any(self.short(k) for k in present):
            copies = self.max_repeats
        elif any(self.short(k) for k in range(len(self.targets))):
            draw = derive_seed(self.seed, _SEED_BALANCE, sample_seed) / float(1 << 63)
            copies = 0 if draw < self.reject else 1
        else:
            copies = 1
        if copies == 0:
            self.rejected += 1
            return 0
        self.yielded += copies
        self.repeated += copies - 1
        for k in set(present):
            self.counts[k] += copies
        return copies

    def rates(self) -> list[float]:
        """Share of the yielded images that contain each class (NaN before any)."""
        if not self.yielded:
            return [math.nan] * len(self.counts)
        return [c / self.yielded for c in self.counts]

    def statistics(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        names = list(class_names) if class_names is not None else list(range(len(self.counts)))
        return {
            "seen": self.seen,
            "yielded": self.yielded,
            "rejected": self.rejected,
            "repeated": self.repeated,
            "image_rates": dict(zip(map(str, names), self.rates())),
            "targets": dict(zip(map(str, names), self.targets)),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "seed": self.seed,
            "reject": self.reject,
            "max_repeats": self.max_repeats,
            "counts": list(self.counts),
            "yielded": self.yielded,
            "seen": self.seen,
            "rejected": self.rejected,
            "repeated": self.repeated,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("targets", "seed", "reject", "max_repeats"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"class balance state has {key}={state.get(key)!r}, this stream "
                    f"{getattr(self, key)!r}"
                )
        counts = [int(c) for c in state["counts"]]
        if len(counts) != len(self.targets):
            raise ValueError("class balance state has another number of classes")
        self.counts = counts
        for key in ("yielded", "seen", "rejected", "repeated"):
            setattr(self, key, int(state[key]))
