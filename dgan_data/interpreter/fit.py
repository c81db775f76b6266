"""Training the ensemble without materialising pixel features.

The annotated images' feature maps are kept at native resolution (float16 by default,
channels-last) in a :class:`FeatureStore`; each step gathers only the sampled pixels'
feature vectors with the bilinear taps of ``F.interpolate(align_corners=False)``, and
every model takes one Adam step on its own pixels (:func:`train_ensemble`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..balance import class_pixel_counts
from ..conventions import MIN_CLASS_IMAGES, short_list
from ..progress import progress_bar
from ..seeds import derive_seed
from .resample import Crop, Layout, feature_layout, layout_diffs, taps

logger = logging.getLogger(__name__)

__all__ = ["FeatureStore", "MaskedAdam", "as_masks", "check_storable", "train_ensemble"]


class FeatureStore:
    """Native-resolution feature maps of the annotated images, for pixel gathers.

    Consecutive maps of equal resolution are concatenated into one channels-last tensor
    (N, h, w, C_g) in ``dtype`` (float16 by default: 133 MB per image for the 1024 px
    face generator instead of 5,088 x 512 x 512 x 2 = 2.7 GB of upsampled features).
    Channels-last makes a pixel's channels contiguous, so the gather reads whole rows.
    """

    def __init__(
        self,
        layout: Layout,
        num_images: int,
        frame: tuple[int, int],
        crop: Crop,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.layout = layout
        self.device = device
        self.groups: list[dict[str, Any]] = []
        top, left, height, width = crop
        c0 = 0
        for i, (c, h, w) in enumerate(layout):
            if self.groups and self.groups[-1]["res"] == (h, w):
                g = self.groups[-1]
                g["maps"].append(i)
                g["c1"] += c
            else:
                self.groups.append({"res": (h, w), "maps": [i], "c0": c0, "c1": c0 + c})
            c0 += c
        self.channels = c0
        for g in self.groups:
            h, w = g["res"]
            g["data"] = torch.empty(
                (num_images, h, w, g["c1"] - g["c0"]), dtype=dtype, device=device
            )
            g["rows"] = taps(frame[0], h, top, height, device)
            g["cols"] = taps(frame[1], w, left, width, device)

    def put(self, n: int, maps: Sequence[torch.Tensor]) -> None:
        """Store image ``n``'s feature maps ((C, h, w) each, already validated)."""
        for g in self.groups:
            off = 0
            for i in g["maps"]:
                f = maps[i].detach()
                c = f.shape[0]
                g["data"][n, :, :, off : off + c] = f.to(self.device).permute(1, 2, 0)
                off += c

    def fill(self, image_maps: Any, progress: bool = True) -> None:
        """Store every image's maps: ``image_maps(i)`` gives image i's (C, h, w) list."""
        num = self.groups[0]["data"].shape[0]
        dtype = self.groups[0]["data"].dtype
        for i in progress_bar(
            range(num), desc="features", progress=progress and num > 1, leave=False
        ):
            maps = image_maps(i)
            diffs = layout_diffs(self.layout, feature_layout(maps))
            if diffs:
                raise ValueError(
                    f"image {i}'s feature maps differ from image 0's: " + "; ".join(diffs)
                )
            check_storable(maps, dtype, i)
            self.put(i, maps)
            del maps

    def gather(self, n: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """Feature vectors (P, C) float32 of label pixels (n, ys, xs), all on ``device``."""
        out = torch.empty(len(n), self.channels, dtype=torch.float32, device=self.device)
        for g in self.groups:
            r0, r1, a0, a1 = (t[ys] for t in g["rows"])
            q0, q1, b0, b1 = (t[xs] for t in g["cols"])
            a0, a1, b0, b1 = (t.unsqueeze(1) for t in (a0, a1, b0, b1))
            d = g["data"]
            upper = d[n, r0, q0].float() * b0 + d[n, r0, q1].float() * b1
            lower = d[n, r1, q0].float() * b0 + d[n, r1, q1].float() * b1
            out[:, g["c0"] : g["c1"]] = upper * a0 + lower * a1
        return out

    def nbytes(self) -> int:
        return sum(g["data"].numel() * g["data"].element_size() for g in self.groups)


class MaskedAdam:
    """Adam over batched (M, ...) parameters that updates only the active models.

    Same update as ``torch.optim.Adam`` (no weight decay), with a step counter per model
    so that models stopped early keep their weights exactly.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        num_models: int,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros(num_models, dtype=torch.float64, device=self.params[0].device)

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.steps += active.to(self.steps.dtype)
        t = self.steps.clamp_min(1.0)
        bc1 = (1.0 - b1**t).float()
        bc2_sqrt = (1.0 - b2**t).sqrt().float()
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g = p.grad
            if g is None:
                continue
            view = (-1,) + (1,) * (p.ndim - 1)
            act = active.view(view)
            m.copy_(torch.where(act, m * b1 + g * (1.0 - b1), m))
            v.copy_(torch.where(act, v * b2 + g * g * (1.0 - b2), v))
            denom = v.sqrt() / bc2_sqrt.view(view) + self.eps
            update = (m / bc1.view(view)) / denom * self.lr
            p.sub_(torch.where(act, update, torch.zeros_like(update)))
            p.grad = None


def check_storable(maps: Sequence[torch.Tensor], dtype: torch.dtype, image: int) -> None:
    """A ValueError unless image ``image``'s maps are finite and stay finite in ``dtype``.

    One ``aminmax`` pass per map (no copy; NaN propagates through it): a finite value
    beyond ``dtype``'s range (65504 for float16) would be stored as inf.
    """
    ends = [torch.stack(torch.aminmax(f.detach())).cpu().double() for f in maps]
    tops = torch.stack([e.abs().amax() for e in ends])
    bad = [k for k, v in enumerate(torch.isfinite(tops).tolist()) if not v]
    if bad:
        raise ValueError(
            f"image {image}'s feature maps {bad} hold NaN or inf values: the generator "
            "weights or the latent are not finite; nothing was trained"
        )
    over = [k for k, v in enumerate(torch.isfinite(tops.to(dtype)).tolist()) if not v]
    if over:
        largest = max(float(tops[k]) for k in over)
        raise ValueError(
            f"image {image}'s feature maps {over} hold finite values up to {largest:.4g}, "
            f"beyond the range of store_dtype={dtype} (largest {torch.finfo(dtype).max:g}): "
            "they would be stored as inf. Pass store_dtype=torch.bfloat16 (float32's range "
            "in float16's memory) or torch.float32; nothing was trained"
        )


def as_masks(masks: torch.Tensor | Sequence[Any]) -> torch.Tensor:
    """Masks as an int64 CPU tensor (N, H, W)."""
    if isinstance(masks, torch.Tensor):
        t = masks
    elif isinstance(masks, np.ndarray):
        t = torch.from_numpy(masks)
    else:
        items = [torch.as_tensor(np.asarray(m)) for m in masks]
        if not items:
            raise ValueError("no annotated images: masks is empty")
        for i, m in enumerate(items[1:], 1):
            if m.shape != items[0].shape:
                raise ValueError(
                    f"masks: mask {i} is {' x '.join(map(str, m.shape))}, mask 0 is "
                    f"{' x '.join(map(str, items[0].shape))}; all masks must share one size"
                )
        t = torch.stack(items)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"masks must hold integer class ids, got dtype {t.dtype}")
    if t.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {tuple(t.shape)}")
    return t.to("cpu", torch.int64)


def _fmt(values: Sequence[float]) -> str:
    return "[" + " ".join(f"{v:.4f}" for v in values) + "]"


#: Parameters the optimizer updates, in the order the model defines them.
PARAM_NAMES = (
    "w1", "b1", "bn1_weight", "bn1_bias", "w2", "b2", "bn2_weight", "bn2_bias", "w3", "b3",
)  # fmt: skip
#: Seed purpose of the per-model pixel draws (see ``dgan_data.seeds.derive_seed``).
SEED_PIXELS = 1


def _pixel_sampler(
    labels: torch.Tensor, valid: torch.Tensor, counts: torch.Tensor, class_balance: float
) -> Any:
    """A function ``(n, generator) -> n flat pixel indices`` drawn as ``train_ensemble``
    describes (uniform over annotated pixels, or class first)."""
    if not 0.0 <= class_balance <= 1.0:
        raise ValueError(f"class_balance must be in [0, 1], got {class_balance}")
    if class_balance == 0.0:
        return lambda n, g: valid[torch.randint(len(valid), (n,), generator=g)]
    order = valid[torch.argsort(labels[valid], stable=True)]  # pixels grouped by class
    starts = torch.cumsum(counts, 0) - counts
    present = counts > 0
    weights = torch.where(present, counts.double() ** (1.0 - class_balance), 0.0)

    def draw(n: int, g: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(weights, n, replacement=True, generator=g)
        offset = (torch.rand(n, generator=g, dtype=torch.float64) * counts[k]).long()
        return order[starts[k] + torch.minimum(offset, counts[k] - 1)]

    return draw


def _warn_thin_classes(
    masks: torch.Tensor, counts: torch.Tensor, names: Sequence[str] | None
) -> None:
    """Warn about classes the annotations barely teach: none in any mask (never
    predicted), or in fewer than ``MIN_CLASS_IMAGES`` masks (rarely learnt well)."""
    num_classes = len(counts)
    images = (class_pixel_counts(masks, num_classes) > 0).sum(0).cpu()

    def named(k: int) -> str:
        return f"{names[k]} ({k})" if names else str(k)

    missing = [named(k) for k in range(num_classes) if counts[k] == 0]
    if missing:
        logger.warning(
            "classes without any annotated pixel: %s; the interpreter will never predict them",
            short_list(missing),
        )
    if len(masks) < MIN_CLASS_IMAGES:  # every class is thin: one line, not a list
        logger.warning(
            "only %d annotated image%s: every class is in fewer than %d, so the interpreter "
            "learns the small and rare ones poorly; annotate more images",
            len(masks),
            "s" if len(masks) != 1 else "",
            MIN_CLASS_IMAGES,
        )
        return
    thin = [
        f"{named(k)} in {int(images[k])} image{'s' if images[k] != 1 else ''}"
        for k in range(num_classes)
        if 0 < images[k] < MIN_CLASS_IMAGES
    ]
    if thin:
        logger.warning(
            "classes in fewer than %d annotated images: %s; the interpreter learns them "
            "poorly: annotate images that show them (dgan-data suggest picks such images)",
            MIN_CLASS_IMAGES,
            short_list(thin),
        )


def train_ensemble(
    model: Any,
    store: FeatureStore,
    masks: torch.Tensor,
    *,
    batch_size: int,
    lr: float,
    max_steps: int,
    min_steps: int,
    eval_every: int,
    patience: int,
    min_delta: float,
    seed: int,
    class_balance: float = 0.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every model of ``model`` (an ``Interpreter``) on the annotated pixels.

    ``masks``: (N, H, W) int64 label-frame masks of the stored images (255 = ignore).
    Each step, model m draws ``batch_size`` annotated pixels with replacement from its
    own generator (seed ``derive_seed(seed, SEED_PIXELS, m)``): uniformly over pixels
    when ``class_balance`` is 0, else a class first with probability proportional to
    ``count ** (1 - class_balance)`` (1: every class alike) and then a pixel of it. It
    gathers their
    features from ``store`` and takes one Adam step (``model.train_logits``). Stopping
    rule per model: see ``Interpreter.fit_features``. Returns the training record
    (steps per model, whether each stopped on a plateau, final loss and accuracy, timing).
    """
    num_classes, M, P = model.num_classes, model.num_models, batch_size
    device, store_device = model.device, store.device
    height, width = masks.shape[1:]
    valid = (masks != 255).flatten().nonzero().squeeze(1)
    if len(valid) == 0:
        raise ValueError("every mask pixel is 255 (ignore): nothing to train on")
    labels_flat = masks.flatten().to(store_device)
    counts = torch.bincount(masks.flatten()[valid], minlength=num_classes)
    _warn_thin_classes(masks, counts, getattr(model, "class_names", None))

    draw = _pixel_sampler(masks.flatten(), valid, counts, class_balance)
    t_train = time.perf_counter()
    gens = [torch.Generator().manual_seed(derive_seed(seed, SEED_PIXELS, m)) for m in range(M)]
    active = torch.ones(M, dtype=torch.bool, device=device)
    optim = MaskedAdam([getattr(model, n) for n in PARAM_NAMES], M, lr)
    best = [math.inf] * M
    bad_windows = [0] * M
    stopped_at = [max_steps] * M
    plateaued = [False] * M  # a plateau at step max_steps too: not cut off by the cap
    win_loss = torch.zeros(M, dtype=torch.float64, device=device)
    win_acc = torch.zeros(M, dtype=torch.float64, device=device)
    win_steps = 0
    history: list[dict[str, Any]] = []
    bar = progress_bar(total=max_steps, desc="interpreter", unit="step", progress=progress)
    step = 0
    num_active = M
    while step < max_steps and num_active > 0:
        pick = torch.stack([draw(P, gens[m]) for m in range(M)]).to(store_device)
        n_idx = pick // (height * width)
        rem = pick % (height * width)
        x = store.gather(n_idx.flatten(), rem.flatten() // width, rem.flatten() % width)
        x = x.view(M, P, -1).to(device)
        y = labels_flat[pick].to(device)
        logits = model.train_logits(x, active)
        loss = F.cross_entropy(logits.reshape(M * P, -1), y.flatten(), reduction="none")
        loss = loss.view(M, P).mean(dim=1)
        (loss * active.to(loss.dtype)).sum().backward()
        optim.step(active)
        step += 1
        with torch.no_grad():
            win_loss += loss.detach().double()
            win_acc += (logits.argmax(dim=2) == y).double().mean(dim=1)
        win_steps += 1
        bar.update(1)
        if step % eval_every == 0 or step == max_steps:
            wl = (win_loss / win_steps).tolist()
            wa = (win_acc / win_steps).tolist()
            win_loss.zero_()
            win_acc.zero_()
            win_steps = 0
            act = active.tolist()
            history.append({"step": step, "loss": wl, "acc": wa})
            logger.info(
                "step %d: loss %s acc %s (active models %d/%d)",
                step,
                _fmt(wl),
                _fmt(wa),
                sum(act),
                M,
            )
            for m in range(M):
                if not act[m]:
                    continue
                if wl[m] < best[m] * (1.0 - min_delta):
                    best[m], bad_windows[m] = wl[m], 0
                else:
                    bad_windows[m] += 1
                if step >= min_steps and bad_windows[m] >= patience:
                    active[m] = False
                    num_active -= 1
                    stopped_at[m] = step
                    plateaued[m] = True
                    logger.info(
                        "model %d stopped at step %d: loss %.4f, accuracy %.4f",
                        m,
                        step,
                        wl[m],
                        wa[m],
                    )
            bar.set_postfix(loss=f"{sum(wl) / M:.4f}", acc=f"{sum(wa) / M:.4f}", active=num_active)
    bar.close()
    model.zero_grad(set_to_none=True)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise FloatingPointError(
            f"interpreter training diverged (non-finite weights after {step} steps): lower the "
            f"learning rate (lr={lr}) or check the features"
        )
    stopped_at = [min(s, step) for s in stopped_at]
    last = history[-1] if history else {"loss": [math.nan] * M, "acc": [math.nan] * M}
    seconds = time.perf_counter() - t_train
    return {
        "annotated_pixels": len(valid),
        "class_balance": class_balance,
        "steps": stopped_at,
        "plateaued": plateaued,
        "train_seconds": round(seconds, 3),
        "train_seconds_": seconds,
        "final_loss": last["loss"],
        "final_accuracy": last["acc"],
    }
