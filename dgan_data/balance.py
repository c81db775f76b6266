"""Rare-class balancing of a stream, by rejection and repetition over candidates.

Small parts (teeth, pupils, nostrils) are rare in pixels and in images, so a model
trained on the stream sees them seldom. :class:`ClassBalancer` decides, candidate by
candidate, from the classes the interpreter labeled in it, whether to keep it and how
many times to hand it out, so that each class appears in at least a target share of
the yielded images. Pixels are never touched: an image is kept, repeated or dropped
whole.

The rule, for a candidate whose labels contain the set P of classes (the classes with at
least ``min_pixels`` labeled pixels, :func:`present_classes`; the stream's
``balance_min_pixels``, default 1), with n_k the copies decided so far (handed out or
still waiting in the stream's buffer) containing class k and N all decided copies:

- a class k is *short* when n_k < t_k * (N + 1) (keeping this image would still leave
  it at or below its target rate);
- a candidate containing a short class that is not in every image so far (n_k < N: a
  repeat can raise its rate) is kept and handed out ``max_repeats`` times (default 2:
  each copy is augmented on its own);
- any other candidate is kept with probability ``1 - reject`` while some class is short
  (``reject`` is how much of the common content is thinned out; default 0.8), else
  always. Rare classes therefore cost generation time: with ``reject=0.8`` a class
  present in 5 % of the candidates can reach about a third of the images, at up to
  five candidates labeled per image handed out.

A class the interpreter (almost) never labels cannot reach its target however much is
thinned out, and chasing it would cost up to ``1 / (1 - reject)`` candidates per image
forever. So the balancer also counts, per class, the candidates containing it; every
``give_up_after`` candidates it *gives up* (for good) each class whose achievable rate
is below half its target. The achievable rate is what repeating every candidate that
holds the class and thinning the rest gives at its observed candidate rate p:
``m p / (m p + (1 - p) (1 - reject))`` with m = ``max_repeats``. A given-up class no
longer causes thinning (candidates holding it are still repeated while it is short);
the balancer logs a warning naming it and lists it in ``statistics()["given_up"]``.
A stream builds a new balancer for each epoch (and each DataLoader worker's shard), so
this evidence (``found``, ``observed``, ``given_up``) restarts every epoch: its
decisions depend only on the seed, epoch and shard. An epoch (or shard) that counts
fewer than ``give_up_after`` candidates never gives a class up and pays for chasing it
again each epoch; :meth:`ClassBalancer.warn_unfound`, called once at the end of an
epoch, logs a warning naming a class with a target that no candidate held.

Randomness comes from a seeded hash of the candidate's seed, so the same stream seed
gives the same decisions, and ``state_dict`` resumes them exactly.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .conventions import check_int, did_you_mean, with_hint
from .seeds import check_seed, derive_seed
from .uncertainty import as_written

__all__ = [
    "DEFAULT_IMAGE_RATE",
    "ClassBalancer",
    "achievable_rate",
    "class_pixel_counts",
    "present_classes",
    "rate_as_written",
    "resolve_targets",
]

logger = logging.getLogger(__name__)

#: Target image rate of every class for ``class_balance="image"``.
DEFAULT_IMAGE_RATE = 0.3
#: Seed purpose of the balancer's keep draws.
_SEED_BALANCE = 0xBA1A


def rate_as_written(rate: Any) -> Any:
    """A rate as the Python number it is written as: 0-d tensors and arrays by their
    value, float32 (or lower) by the shortest decimal it prints as (``np.float32(0.3)``
    is 0.3, not 0.30000001192..., which a state saved with it then recorded, so a
    resumed stream with 0.3 was another setting). Anything else as it is."""
    rate = as_written(rate)
    if getattr(rate, "ndim", None) == 0 and hasattr(rate, "item"):
        rate = as_written(rate[()]) if isinstance(rate, np.ndarray) else rate.item()
    return rate


def resolve_targets(
    spec: str | Mapping[str, float] | None, class_names: Sequence[str], ignore: Sequence[int] = ()
) -> list[float] | None:
    """Per-class target image rates from ``None``, ``"image"`` or ``{class name: rate}``.

    ``"image"`` asks every class but those in ``ignore`` (usually the background, present
    in every image) to appear in at least :data:`DEFAULT_IMAGE_RATE` of the images.
    Rates are Python or numpy numbers, or 0-d tensors/arrays (read with ``.item()``).
    Unknown class names, rates outside [0, 1] and an empty dict (use None to turn
    balancing off) are refused, naming them. Targets that are all 0 are accepted: such a
    balancer changes nothing and only reports the image rates (the stream warns).
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
    if not spec:
        raise ValueError(
            "class_balance={} sets no target; use class_balance=None to turn balancing off"
        )
    unknown = [name for name in spec if name not in class_names]
    if unknown:
        close = "".join(did_you_mean(str(name), class_names) for name in unknown[:3])
        raise ValueError(
            with_hint(
                f"class_balance names unknown classes {unknown}; the classes are "
                f"{list(class_names)}",
                close,
            )
        )
    targets = [0.0] * K
    for name, rate in spec.items():
        rate = rate_as_written(rate)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):  # numpy numbers pass
            raise ValueError(
                f"class_balance rate of {name!r} must be a number in [0, 1], got {rate!r:.80}"
            )
        if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
            raise ValueError(f"class_balance rate of {name!r} must be in [0, 1], got {rate!r}")
        targets[list(class_names).index(name)] = float(rate)
    return targets


def class_pixel_counts(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, K) int64: the labeled pixels of each class in each of the N masks (N, H, W) of
    class ids 0..K-1, on the masks' device. The ignore index (255) is not counted."""
    flat = masks.reshape(len(masks), -1).to(torch.int64).clamp(max=num_classes)
    counts = torch.zeros(len(masks), num_classes + 1, dtype=torch.int64, device=masks.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat))
    return counts[:, :num_classes]


def present_classes(
    pixel_counts: Sequence[Sequence[float]], min_pixels: int = 1
) -> list[list[int]]:
    """Per image, the class ids with at least ``min_pixels`` labeled pixels, from rows of
    per-class pixel counts (what the balancer counts as "holds the class")."""
    return [[k for k, c in enumerate(row) if c >= min_pixels] for row in pixel_counts]


def achievable_rate(candidate_rate: float, reject: float, max_repeats: int) -> float:
    """Image rate a class present in ``candidate_rate`` of the candidates reaches at
    best: every candidate holding it handed out ``max_repeats`` times, the others
    thinned to ``1 - reject``."""
    held = max_repeats * candidate_rate
    rest = (1.0 - candidate_rate) * (1.0 - reject)
    return held / (held + rest) if held + rest > 0 else 0.0


class ClassBalancer:
    """Keep/repeat decisions that lift rare classes to target image rates (see module)."""

    def __init__(
        self,
        targets: Sequence[float],
        seed: int = 0,
        reject: float = 0.8,
        max_repeats: int = 2,
        give_up_after: int | None = 500,
        class_names: Sequence[str] | None = None,
        count_handed_out: bool = False,
    ) -> None:
        if not all(0.0 <= t <= 1.0 for t in targets):
            raise ValueError(f"target rates must be in [0, 1], got {list(targets)}")
        if not 0.0 <= reject < 1.0:
            raise ValueError(f"reject must be in [0, 1), got {reject}")
        max_repeats = check_int(max_repeats, "max_repeats", 1)  # 1.5 was cut to 1
        if give_up_after is not None:
            give_up_after = check_int(give_up_after, "give_up_after", 1)
        if class_names is not None and len(class_names) != len(targets):
            raise ValueError(f"{len(class_names)} class names for {len(targets)} targets")
        self.targets = [float(t) for t in targets]
        self.seed = check_seed(seed)
        self.reject = float(reject)
        self.max_repeats = max_repeats
        self.give_up_after = give_up_after
        self.class_names = [str(n) for n in class_names] if class_names is not None else None
        self.counts = [0] * len(self.targets)  # yielded images containing class k
        self.found = [0] * len(self.targets)  # candidates containing class k
        self.observed = 0  # candidates counted in ``found``
        self.given_up: list[int] = []
        self.yielded = 0
        self.seen = 0
        self.rejected = 0
        self.repeated = 0
        # With ``count_handed_out`` the caller reports, in order, the copies it hands out
        # (``hand_out``): ``statistics`` then gives the rates of those, not of the copies
        # decided, some of which still wait in the caller's buffer.
        self.count_handed_out = bool(count_handed_out)
        self.waiting: deque[list[int] | None] = deque()  # class sets of decided copies
        self.handed_out = 0
        self.handed_counts = [0] * len(self.targets)

    def short(self, k: int, extra: int = 1) -> bool:
        """Whether class k is below its target after ``extra`` more images."""
        return self.counts[k] < self.targets[k] * (self.yielded + extra)

    def _name(self, k: int) -> str:
        return self.class_names[k] if self.class_names is not None else str(k)

    def _check_give_up(self) -> None:
        """Give up the classes whose best achievable rate is below half their target."""
        if self.give_up_after is None or self.observed % self.give_up_after:
            return
        for k, target in enumerate(self.targets):
            if target <= 0 or k in self.given_up:
                continue
            p = self.found[k] / self.observed
            best = achievable_rate(p, self.reject, self.max_repeats)
            if best < target / 2:
                self.given_up.append(k)
                logger.warning(
                    "class_balance: class %r is in %d of %d candidates (%.2f %%); "
                    "at best it reaches %.1f %% of the images, under half its target "
                    "%.0f %%, so it no longer thins the stream (the interpreter seldom "
                    "or never labels it)",
                    self._name(k),
                    self.found[k],
                    self.observed,
                    100 * p,
                    100 * best,
                    100 * target,
                )

    def warn_unfound(self) -> list[int]:
        """Log one warning, at the end of an epoch (call it once), for the classes with a
        target > 0 that none of the epoch's counted candidates held and that were not
        given up: the epoch was too short to give them up, and the next epoch's balancer
        starts counting again, so chasing them costs extra generation every epoch.
        Returns their class ids."""
        if not self.observed:
            return []
        unfound = [
            k
            for k, target in enumerate(self.targets)
            if target > 0 and self.found[k] == 0 and k not in self.given_up
        ]
        if unfound:
            one = len(unfound) == 1
            if self.give_up_after is None:
                why = "give-up is off (give_up_after=None), so"
            else:
                why = (
                    f"too few to give {'it' if one else 'them'} up (that takes "
                    f"{self.give_up_after}). Each epoch restarts the give-up count (balancing "
                    "decisions depend only on the seed, epoch and shard), so"
                )
            logger.warning(
                "class_balance: %s %s in none of the %d candidates of this epoch, %s chasing "
                "%s costs extra generation every epoch; lower or remove %s class_balance "
                "target if the interpreter never labels %s",
                ", ".join(
                    f"class {self._name(k)!r} (target {100 * self.targets[k]:.0f} %)"
                    for k in unfound
                ),
                "was" if one else "were",
                self.observed,
                why,
                "it" if one else "them",
                "its" if one else "their",
                "it" if one else "them",
            )
        return unfound

    def decide(self, present: Sequence[int], sample_seed: int) -> int:
        """How many times to hand out a candidate whose labels contain ``present``
        (class ids): 0 (rejected), 1, or up to ``max_repeats``. Updates the counts; an id
        outside [0, K) is a ValueError (-1 counted the last class, K an IndexError)."""
        present = [check_int(k, "class id", 0, len(self.targets) - 1) for k in present]
        self.seen += 1
        self.observed += 1
        for k in set(present):
            self.found[k] += 1
        self._check_give_up()
        if any(self.short(k) and self.counts[k] < self.yielded for k in present):
            # a class in every image so far (rate 1.0) gains nothing from a repeat: at a
            # target of 1.0 every candidate was handed out twice
            copies = self.max_repeats
        elif any(
            self.short(k)
            for k in range(len(self.targets))
            if k not in self.given_up and k not in present  # thin what lacks a short class
        ):
            draw = derive_seed(self.seed, _SEED_BALANCE, sample_seed) / float(1 << 63)
            copies = 0 if draw < self.reject else 1
        else:
            copies = 1
        if copies == 0:
            self.rejected += 1
            return 0
        self.yielded += copies
        self.repeated += copies - 1
        classes = sorted(set(present))
        for k in classes:
            self.counts[k] += copies
        if self.count_handed_out:
            self.waiting.extend([classes] * copies)
        return copies

    def hand_out(self, n: int = 1) -> None:
        """Count the next ``n`` decided copies as handed out (``count_handed_out``): the
        caller hands copies out in the order ``decide`` made them."""
        if n > len(self.waiting):
            raise RuntimeError(
                f"class balance: {n} copies handed out but only {len(self.waiting)} decided"
            )
        for _ in range(n):
            classes = self.waiting.popleft()
            if classes is None:  # waited in a state saved before hand-outs were counted
                continue
            self.handed_out += 1
            for k in classes:
                self.handed_counts[k] += 1

    def sync_waiting(self, n: int) -> None:
        """Check, after ``load_state_dict``, that ``n`` decided copies wait to be handed
        out. A state saved before hand-outs were counted has none listed: its waiting
        copies are handed out uncounted."""
        if not self.count_handed_out:
            return
        if not self.waiting and n:
            self.waiting.extend([None] * n)
        elif len(self.waiting) != n:
            raise ValueError(
                f"class balance state lists {len(self.waiting)} copies waiting to be "
                f"handed out, the stream state holds {n}"
            )

    def rates(self) -> list[float]:
        """Share of the decided copies (``decide``'s counts, which its rule works on)
        that contain each class (NaN before any)."""
        if not self.yielded:
            return [math.nan] * len(self.counts)
        return [c / self.yielded for c in self.counts]

    def handed_out_rates(self) -> list[float]:
        """Share of the copies handed out (``hand_out``) that contain each class (NaN
        before any); without ``count_handed_out``, those of the decided copies."""
        if not self.count_handed_out:
            return self.rates()
        if not self.handed_out:
            return [math.nan] * len(self.handed_counts)
        return [c / self.handed_out for c in self.handed_counts]

    def candidate_rates(self) -> list[float]:
        """Share of the counted candidates that contain each class (NaN before any)."""
        if not self.observed:
            return [math.nan] * len(self.found)
        return [f / self.observed for f in self.found]

    def statistics(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """Counts and rates by class name. ``yielded`` and ``image_rates`` are those of
        the images handed out (with ``count_handed_out``; else of the decided copies);
        ``decided`` and ``decided_rates`` those of the copies decided, including any
        still waiting in the caller's buffer."""
        if class_names is not None:
            names = [str(n) for n in class_names]
        else:
            names = [self._name(k) for k in range(len(self.counts))]
        return {
            "seen": self.seen,
            "yielded": self.handed_out if self.count_handed_out else self.yielded,
            "decided": self.yielded,
            "rejected": self.rejected,
            "repeated": self.repeated,
            "image_rates": dict(zip(names, self.handed_out_rates())),
            "decided_rates": dict(zip(names, self.rates())),
            "candidate_rates": dict(zip(names, self.candidate_rates())),
            "targets": dict(zip(names, self.targets)),
            "given_up": [names[k] for k in self.given_up],
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "seed": self.seed,
            "reject": self.reject,
            "max_repeats": self.max_repeats,
            "give_up_after": self.give_up_after,
            "counts": list(self.counts),
            "found": list(self.found),
            "observed": self.observed,
            "given_up": list(self.given_up),
            "yielded": self.yielded,
            "seen": self.seen,
            "rejected": self.rejected,
            "repeated": self.repeated,
            "handed_out": self.handed_out,
            "handed_counts": list(self.handed_counts),
            "waiting": [c if c is None else list(c) for c in self.waiting],
        }

    def relabel_waiting(self, class_sets: Sequence[Sequence[int]]) -> None:
        """Replace the class sets of the next ``len(class_sets)`` copies waiting to be
        handed out (``count_handed_out``) by those found in them after augmentation, so
        the rates of ``hand_out`` are those of the masks handed out. The decisions
        (``counts``) stay those of the candidates' labels. Copies of a state saved before
        hand-outs were counted (no class set) stay uncounted."""
        if not self.count_handed_out:
            return
        if len(class_sets) > len(self.waiting):
            raise RuntimeError(
                f"class balance: {len(class_sets)} copies relabeled but only "
                f"{len(self.waiting)} wait to be handed out"
            )
        K = len(self.targets)
        for i, classes in enumerate(class_sets):
            if self.waiting[i] is None:
                continue
            ids = sorted({int(k) for k in classes})
            if any(not 0 <= k < K for k in ids):
                raise ValueError(f"class balance: class ids {ids} outside [0, {K})")
            self.waiting[i] = ids

    def _counter(self, state: Mapping[str, Any], key: str, default: Any = None) -> int:
        return check_int(state.get(key, default), f"class balance state: {key}", 0)

    def _counters(self, state: Mapping[str, Any], key: str, total: int, of: str) -> list[int]:
        """Per-class counters: K ints in [0, ``total``] (``total`` is the ``of`` counter)."""
        values = state.get(key, [0] * len(self.targets))
        if not isinstance(values, (list, tuple)) or len(values) != len(self.targets):
            raise ValueError(
                f"class balance state: {key} must list {len(self.targets)} counts (one per "
                f"class), got {values!r:.80}"
            )
        out = [self._counter({f"{key}[{k}]": v}, f"{key}[{k}]") for k, v in enumerate(values)]
        if any(v > total for v in out):
            raise ValueError(
                f"class balance state: {key} {out} counts more than the {total} of {of}"
            )
        return out

    def _checked_evidence(self, state: Mapping[str, Any]) -> tuple[list[int], int, list[int]]:
        """The give-up evidence of a state (``observed``, ``found``, ``given_up``), checked:
        ValueError "class balance state: ..." for a damaged one."""
        observed = self._counter(state, "observed", 0)
        found = self._counters(state, "found", observed, "observed")
        given_up = state.get("given_up", [])
        K = len(self.targets)
        if (
            not isinstance(given_up, (list, tuple))
            or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) for k in given_up)
            or any(not 0 <= k < K for k in given_up)
            or len(set(given_up)) != len(given_up)
        ):
            raise ValueError(
                f"class balance state: given_up must list distinct class ids in [0, {K}), "
                f"got {given_up!r:.80}"
            )
        return found, observed, [int(k) for k in given_up]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state_dict()``. Everything is checked before anything changes:
        the settings must be this balancer's, the counters ints >= 0 with per-class
        counts within their totals, class ids in range; else ValueError."""
        if not isinstance(state, Mapping):
            raise ValueError(f"class balance state must be a dict, got {type(state).__name__}")
        for key in ("targets", "seed", "reject", "max_repeats"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"class balance state has {key}={state.get(key)!r}, this stream "
                    f"{getattr(self, key)!r}"
                )
        # states written before the give-up rule: count candidates from here on
        if state.get("give_up_after", self.give_up_after) != self.give_up_after:
            raise ValueError(
                f"class balance state has give_up_after={state.get('give_up_after')!r}, "
                f"this stream {self.give_up_after!r}"
            )
        totals = {
            key: self._counter(state, key) for key in ("yielded", "seen", "rejected", "repeated")
        }
        if totals["rejected"] > totals["seen"] or totals["repeated"] > totals["yielded"]:
            raise ValueError(
                f"class balance state: counters disagree ({totals}: rejected must be <= "
                "seen and repeated <= yielded)"
            )
        if "counts" not in state:
            raise ValueError("class balance state lacks counts")
        counts = self._counters(state, "counts", totals["yielded"], "yielded")
        found, observed, given_up = self._checked_evidence(state)
        # states written before hand-outs were counted: count from here on
        handed_out = self._counter(state, "handed_out", 0)
        handed = self._counters(state, "handed_counts", handed_out, "handed_out")
        waiting = state.get("waiting", [])
        K = len(self.targets)
        if not isinstance(waiting, (list, tuple)) or not all(
            c is None
            or (
                isinstance(c, (list, tuple))
                and all(
                    not isinstance(k, bool) and isinstance(k, numbers.Integral) and 0 <= k < K
                    for k in c
                )
            )
            for c in waiting
        ):
            raise ValueError("class balance state: waiting must list class-id lists")
        if handed_out + len(waiting) > totals["yielded"]:
            raise ValueError(
                f"class balance state: {handed_out} copies handed out and {len(waiting)} "
                f"waiting, but only {totals['yielded']} decided"
            )
        self.counts = counts
        for key, value in totals.items():
            setattr(self, key, value)
        self.found, self.observed, self.given_up = found, observed, given_up
        self.handed_counts = handed
        self.handed_out = handed_out
        self.waiting = deque(c if c is None else [int(k) for k in c] for c in waiting)
