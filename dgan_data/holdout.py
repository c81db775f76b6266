"""How good are the labels? Fit an interpreter on all but a few annotated images and
score its labels of the held-out ones against their masks, per class.

A user with 16 annotations has no other way to see whether they suffice: the fit's own
accuracy is measured on the pixels it trained on (0.99 on the toy preset), and a class
the held-out images show but the interpreter misses scores 0 here.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from .annotations import Annotations
from .conventions import check_int, keyword_hints
from .interpreter import Interpreter
from .labeler import Labeler
from .metrics.confusion import ConfusionMatrix
from .seeds import check_seed

log = logging.getLogger(__name__)

__all__ = ["holdout_scores"]


@keyword_hints
def holdout_scores(
    G: Any,
    annotations: Annotations,
    holdout: int = 4,
    *,
    rounds: int = 1,
    seed: int = 0,
    num_models: int = 10,
    device: Any = None,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Fit on all but ``holdout`` annotated images (drawn with ``seed``, which also seeds
    the fit) and score the interpreter's labels of the held-out images against their
    masks.

    ``rounds`` > 1 repeats this with disjoint held-out draws (``rounds * holdout`` at
    most the number of images; ``len // holdout`` rounds hold every image out once when
    it divides) and pools the counts of all rounds: a steadier score, one fit per round.
    ``fit_kwargs`` go to :meth:`Interpreter.fit` as for the final fit. Returns a dict:
    ``held_out`` (ids, round by round), ``rounds``, ``round_miou`` (each round's mIoU),
    ``iou`` (per class, None where the held-out masks and labels both lack the class),
    ``support``, ``miou`` (over the classes present), ``pixel_accuracy`` and ``missed``
    (names of classes in the held-out masks whose IoU is 0).
    """
    if not isinstance(annotations, Annotations):
        raise TypeError(f"annotations must be an Annotations, got {type(annotations).__name__}")
    n = len(annotations)
    if n < 2:
        raise ValueError(f"holding images out needs at least 2 annotated images, got {n}")
    holdout = check_int(holdout, "holdout", 1, n - 1)
    rounds = check_int(rounds, "rounds", 1)
    if rounds * holdout > n:
        raise ValueError(
            f"rounds={rounds} of holdout={holdout} need {rounds * holdout} annotated images, "
            f"got {n}: at most {n // holdout} disjoint rounds of {holdout}"
        )
    seed = check_seed(seed)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    confusion = ConfusionMatrix(annotations.num_classes)
    held_out: list[Any] = []
    round_miou: list[float] = []
    for r in range(rounds):
        held_idx = sorted(order[r * holdout : (r + 1) * holdout])
        train_idx = [i for i in range(n) if i not in held_idx]
        labels, held = _held_out_labels(
            G, annotations, train_idx, held_idx, num_models, device, seed, fit_kwargs
        )
        this_round = ConfusionMatrix(annotations.num_classes)
        this_round.update(labels, held.masks.to(torch.int64))
        round_miou.append(float(this_round.compute()["miou"]))
        confusion.merge(this_round)
        held_out += [annotations.ids[i] for i in held_idx] if annotations.ids else held_idx
    scores = confusion.compute()
    iou = [None if v != v else float(v) for v in scores["iou"].tolist()]
    names = annotations.class_names
    support = scores["support"].tolist()
    missed = [names[k] for k, v in enumerate(iou) if support[k] > 0 and v == 0.0]
    result = {
        "held_out": held_out,
        "rounds": rounds,
        "round_miou": round_miou,
        "trained_on": n - holdout,
        "class_names": list(names),
        "iou": iou,
        "support": [int(s) for s in support],
        "miou": float(scores["miou"]),
        "pixel_accuracy": float(scores["pixel_accuracy"]),
        "missed": missed,
    }
    log.info("held-out mIoU %.3f on %d images", result["miou"], len(held_out))
    return result


def _held_out_labels(
    G: Any,
    annotations: Annotations,
    train_idx: list[int],
    held_idx: list[int],
    num_models: int,
    device: Any,
    seed: int,
    fit_kwargs: dict[str, Any],
) -> tuple[torch.Tensor, Annotations]:
    """Labels (on the CPU) of the held-out images by an interpreter fitted on the rest."""
    train, held = annotations.take(train_idx), annotations.take(held_idx)
    interp = Interpreter.fit(
        G, train, num_models=num_models, device=device, seed=seed, **fit_kwargs
    )
    labeler = Labeler(G, interp, device=device)
    w = held.latents_w(G).to(labeler.device)
    with torch.no_grad():
        image, feats = G.synthesize(w, noise=held.noise)
    labels = labeler.label_synthesized(image, feats, list(range(len(held_idx)))).masks
    return labels.cpu(), held
