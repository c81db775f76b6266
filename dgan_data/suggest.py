"""Active annotation: choose which generated images to annotate next.

DatasetGAN picks the images to annotate at random. With an interpreter trained on a
first few annotations, the ensemble's disagreement says which new images would teach
it most, and its labels say which classes an image holds. :func:`suggest_annotations`
labels a pool of candidates and picks them greedily, each pick maximising

    w_u * uncertainty rank + w_c * coverage gain + w_d * distance + w_n * novelty rank

- *uncertainty rank*: the candidate's image score (mean of its top 10 % pixel JS
  divergences) as a percentile of the pool, in [0, 1];
- *coverage gain*: for each class the candidate holds, how far that class still is
  from appearing in ``coverage_target`` annotated images (existing ones plus those
  picked so far), summed (a class no image has yet counts 1). With
  ``coverage_by="peak"`` "holds" is the mean probability of the class's
  ``MIN_CLASS_PIXELS`` likeliest pixels (how surely the image shows that many pixels of
  it); with ``"mass"``, the expected presence ``min(1, m / MIN_CLASS_PIXELS)`` of the
  class's expected pixels ``m`` (the ensemble's mean probabilities summed over the
  image); a pick adds that much to the class's count. With ``"labels"`` the class must
  fill ``MIN_CLASS_PIXELS`` pixels of the candidate's labels. An interpreter fitted on
  few examples of a small class rarely makes it the argmax where it is, but still gives
  it probability there: on the toy faces, with 5 teeth pixels in eight annotations, the
  expected teeth pixels found the pool images holding teeth with AUROC 0.81, the label
  counts with 0.65 (a class never annotated gets no probability: novelty has to find
  it). The mass also counts probability spread thinly over a mouth as teeth: by mass
  the picks of one toy run were expected to bring 7.7 images with teeth where the
  annotator found 3; by peak 3.0 and 4;
- *distance*: of the candidate's descriptor (per-class area shares and a 4 x 4 layout
  of the foreground) to the nearest already chosen or annotated image, relative to the
  pool's median nearest-neighbour distance (of up to 256 sampled candidates to their
  nearest *other* candidate) and capped at 1, so the picks are not near duplicates;
- *novelty rank*: the candidate's share of pixels whose generator features lie far from
  every annotated pixel (:class:`~dgan_data.novelty.FeatureNovelty`), as a percentile of
  the pool (ties share their mean rank). It finds what the interpreter cannot name: a
  class absent from the existing annotations is labeled as some known class, with no
  more disagreement than anywhere else, but its features are new. A chosen image's
  novel pixels join the references, so the next pick needs novelty of its own. Needs
  ``existing`` annotations with latents; without them the term is left out.

A candidate that ``existing`` already holds (the same seed; without stored seeds, the
same z or w) is never suggested: a second round drawing the same pool does not send
the annotator an image twice.

Deterministic: the pool's seeds come from ``derive_seed(seed, purpose, i)`` and ties go
to the lower pool index. Each pick carries a one-line reason.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .annotations import Annotations, SampledFolder, sample_annotation_folder
from .annotations.folder import merge_header, merge_header_problems
from .annotations.format import MANIFEST
from .balance import class_pixel_counts
from .conventions import (
    IGNORE_INDEX,
    MAX_BATCH,
    MIN_CLASS_IMAGES,
    check_bool,
    check_int,
    check_number,
    keyword_hints,
)
from .fileio import folder_lock, nonempty_path, read_json, write_json
from .labeler import Labeler
from .novelty import FeatureNovelty, nearest_distance
from .seeds import check_seed, check_seeds, derive_seed, z_from_seeds
from .viz import preview_grid

#: Most candidates one suggest call scores (each holds its scores and a feature
#: descriptor in memory; a million is hours of generation already).
MAX_POOL = 1_000_000

log = logging.getLogger(__name__)

__all__ = [
    "Suggestion",
    "SuggestionReport",
    "annotation_features",
    "candidate_seeds",
    "suggest_annotations",
    "write_suggestions",
]

#: Seed purpose of the candidate pool.
_SEED_POOL = 0x5E6
#: A class counts as present in an image with at least this many labeled pixels.
MIN_CLASS_PIXELS = 4
#: How a candidate's classes count for coverage (see the module).
COVERAGE_BY = ("peak", "mass", "labels")
#: The rule :func:`suggest_annotations` and ``dgan-data suggest`` use by default.
DEFAULT_COVERAGE_BY = "mass"
#: Annotated images each class should appear in, by default: the rule ``fit`` warns by.
DEFAULT_COVERAGE_TARGET = MIN_CLASS_IMAGES
#: Most bytes of class probabilities one batch holds with coverage by peak or mass.
_PROBABILITY_BYTES = 512 * 2**20
#: Most distances one cdist of the diversity scale holds.
_CDIST_ELEMENTS = 2**22
#: Layout grid of the descriptor (foreground share per cell).
_GRID = 4
#: Most novel pixels kept per candidate (an even sample of them) to update its novelty
#: after each pick.
_NOVEL_KEPT = 256
#: Candidates whose nearest-other-candidate distance sets the diversity scale.
_SCALE_SAMPLE = 256
#: Largest per-element difference of two latents that count as the same (float noise).
_SAME_LATENT_ATOL = 1e-5


@dataclass
class Suggestion:
    """One chosen candidate and why it was chosen."""

    pool_index: int
    seed: int
    uncertainty: float
    uncertainty_rank: float
    classes: list[str]
    new_classes: list[str]
    distance: float
    gain: float
    reason: str
    novelty: float = 0.0


@dataclass
class SuggestionReport:
    """What :func:`suggest_annotations` chose from its pool, and the pool's statistics."""

    suggestions: list[Suggestion]
    pool: int
    seed: int
    class_names: list[str]
    class_image_counts_before: dict[str, int]
    class_image_counts_after: dict[str, int]
    pool_class_rates: dict[str, float]
    #: Coverage as the picks were scored: existing images plus the picks' expected
    #: presence (``coverage_by="peak"`` or ``"mass"``) or label presence.
    class_images_expected_after: dict[str, float] = field(default_factory=dict)
    coverage_by: str = "labels"
    weights: dict[str, float] = field(default_factory=dict)
    #: Pool candidates left out because ``existing`` already holds them.
    excluded: int = 0
    #: The descriptor distance that counts as 1 (the pool's median distance of a
    #: candidate to its nearest other candidate).
    diversity_scale: float = 1.0
    #: The labeler's image settings when the pool was scored (truncation, noise, label
    #: frame): :func:`write_suggestions` must regenerate the same images.
    labeler_settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _descriptor(masks: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(descriptors (B, K + 16), class pixel counts (B, K)) of label maps (B, H, W)."""
    counts = class_pixel_counts(masks, num_classes).float()
    shares = (counts / counts.sum(1, keepdim=True).clamp_min(1)).sqrt()
    foreground = ((masks != 0) & (masks != IGNORE_INDEX)).float()[:, None]
    layout = F.adaptive_avg_pool2d(foreground, _GRID).flatten(1)
    return torch.cat([shares, layout], 1).cpu(), counts.cpu()


def _mean_rank(values: torch.Tensor) -> torch.Tensor:
    """Percentile ranks in (0, 1], ties sharing their mean rank (1 = largest)."""
    ordered = values.sort().values
    low = torch.searchsorted(ordered, values, right=False)
    high = torch.searchsorted(ordered, values, right=True)
    return (low + high + 1).double() / (2 * len(values))


@keyword_hints
def candidate_seeds(seed: int, pool: int) -> list[int]:
    """The sample seeds of the ``pool`` candidates :func:`suggest_annotations` draws for
    ``seed``, in pool order (a suggestion's ``pool_index`` indexes this list), so a study
    can score the very candidates suggest saw."""
    pool = check_int(pool, "pool", 0, MAX_POOL)  # numpy ints too, as suggest takes them
    seed = check_seed(seed)
    return [derive_seed(seed, _SEED_POOL, i) for i in range(pool)]


def annotation_features(labeler: Labeler, existing: Annotations) -> list[torch.Tensor] | None:
    """Generator features (per layer, on the CPU) of annotated images, regenerated from
    their latents with their noise mode; None, with a warning, when the latents are
    missing or belong to another generator."""
    try:
        w = existing.latents_w(labeler.G, device=labeler.device)
    except Exception as err:  # no latents, or latents of another generator
        log.warning("novelty left out: the existing annotations' latents are unusable (%s)", err)
        return None
    noise = getattr(existing, "noise", None) or labeler.noise
    maps: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for start in range(0, len(w), 8):
            _, feats = labeler.G.synthesize(w[start : start + 8], noise=noise)
            maps.append([f.float().cpu() for f in feats])
    return [torch.cat(layer) for layer in zip(*maps)]


def _spread_sample(index: torch.Tensor, most: int) -> torch.Tensor:
    """At most ``most`` entries of ``index``, evenly strided: a sample that represents
    the whole set (the most novel pixels alone, kept before, are the ones the next
    pick covers least, so a candidate's novelty after a pick read high)."""
    if len(index) <= most:
        return index
    step = torch.linspace(0, len(index) - 1, most, dtype=torch.float64)
    return index[step.round().long()]


class _NoveltyTracker:
    """Per-candidate novel pixels, updated as picks join the references."""

    def __init__(self, model: FeatureNovelty) -> None:
        self.model = model
        self.shares: list[float] = []
        self.pixels: list[torch.Tensor] = []
        self.owner: list[torch.Tensor] = []

    def add(self, feats: list[torch.Tensor]) -> None:
        novelty, emb = self.model.pixel_novelty(feats)
        flat, emb = novelty.flatten(1), emb.flatten(1, 2)
        for b in range(len(flat)):
            novel = flat[b] > 1.0
            self.shares.append(float(novel.double().mean()))
            keep = _spread_sample(novel.nonzero().flatten(), _NOVEL_KEPT)
            self.owner.append(torch.full((len(keep),), len(self.shares) - 1))
            self.pixels.append(emb[b, keep])

    def finish(self) -> None:
        self.share = torch.tensor(self.shares, dtype=torch.float64)
        self.kept = torch.tensor([len(p) for p in self.pixels], dtype=torch.float64)
        self.all_pixels = torch.cat(self.pixels) if self.pixels else torch.empty(0)
        self.all_owner = torch.cat(self.owner).long() if self.owner else torch.empty(0).long()
        self.alive = torch.ones(len(self.all_owner), dtype=torch.bool)

    def current(self) -> torch.Tensor:
        """Each candidate's novel share, scaled by how many of its kept pixels are
        still novel."""
        still = torch.zeros_like(self.kept).index_add_(0, self.all_owner, self.alive.double())
        return torch.where(self.kept > 0, self.share * still / self.kept.clamp_min(1), 0.0)

    def pick(self, i: int) -> None:
        mine = self.all_owner == i
        self.model.add_references(self.all_pixels[mine])
        self.alive[mine] = False
        if bool(mine.any()) and bool(self.alive.any()):
            idx = self.alive.nonzero().flatten()
            d = nearest_distance(self.all_pixels[idx], self.all_pixels[mine])
            self.alive[idx] = d / self.model.scale > 1.0


def _check_weights(weights: Any) -> tuple[float, float, float, float]:
    """``weights`` as 4 finite floats >= 0 (numpy numbers too); a ValueError otherwise."""
    bad = ValueError(
        "weights must be 4 numbers >= 0 (uncertainty, coverage, diversity, novelty), "
        f"got {weights!r:.80}"
    )
    if isinstance(weights, (str, bytes, dict)) or not hasattr(weights, "__len__"):
        raise bad
    try:
        values = [check_number(w, "weights", low=0.0) for w in list(weights)]
    except (TypeError, ValueError):
        raise bad from None
    if len(values) != 4:
        raise bad
    if not any(values):  # every gain 0: the picks would be the pool's first candidates
        raise ValueError(
            "weights are all 0: give at least one weight > 0 (uncertainty, coverage, "
            "diversity, novelty)"
        )
    return values[0], values[1], values[2], values[3]


def _relative_weights(weights: Any) -> tuple[float, float, float, float]:
    """Checked ``weights`` divided by the largest: the picks depend only on their ratios,
    and 1e308 would overflow the gains to inf (written as ``Infinity`` to JSON)."""
    values = _check_weights(weights)
    top = max(values)
    w_u, w_c, w_d, w_n = (v / top for v in values)
    return w_u, w_c, w_d, w_n


def _check_labeler(labeler: Any) -> None:
    """A labeler whose picks can be written as an annotation folder; checked before the
    pool is scored, not in :func:`write_suggestions`."""
    if not isinstance(labeler, Labeler):
        raise TypeError(f"labeler must be a Labeler, got {type(labeler).__name__}")
    if labeler.noise != "const":
        raise ValueError(
            f"labeler.noise is {labeler.noise!r}: suggestions are written as an annotation "
            "folder, whose images must regenerate from their latents; build the Labeler "
            "with noise='const'"
        )
    suggestion_crop(labeler)


def _check_existing(labeler: Labeler, existing: Any) -> Annotations | None:
    """``existing`` as Annotations of the labeler's generator and classes."""
    if existing is None:
        return None
    if not isinstance(existing, Annotations):
        hint = (
            " (a folder: load it with Annotations.load(folder))"
            if isinstance(existing, (str, os.PathLike))
            else " (use Annotations.load(folder) or Annotations.from_arrays)"
        )
        raise TypeError(f"existing must be Annotations, got {type(existing).__name__}{hint}")
    names = list(labeler.class_names)
    if list(existing.class_names) != names:
        raise ValueError(
            f"the existing annotations' classes {list(existing.class_names)} are not the "
            f"interpreter's {names}"
        )
    recorded = existing.generator_fingerprint
    fingerprint = labeler.fingerprints()[0] if recorded is not None else None
    if recorded is not None and recorded != fingerprint:
        where = existing.root if existing.root is not None else "the existing annotations"
        raise ValueError(
            f"{where} were made with generator {recorded}, the "
            f"labeler's generator is {fingerprint}: their latents would regenerate other images"
        )
    return existing


def _held_by(labeler: Labeler, seeds: list[int], existing: Annotations) -> torch.Tensor:
    """(pool,) bool: which candidates ``existing`` already holds, by seed or, when it
    stores no seeds, by an equal z or w (as the labeler maps the candidate's seed)."""
    known = set(existing.seeds or ())
    held = torch.tensor([s in known for s in seeds], dtype=torch.bool)
    if existing.seeds is not None or not seeds:
        return held
    G = labeler.G
    for start in range(0, len(seeds), 256):
        chunk = seeds[start : start + 256]
        z = z_from_seeds(chunk, G.z_dim)
        if existing.z is not None and existing.z.shape[1] == z.shape[1]:
            for row in existing.z:
                held[start : start + len(chunk)] |= (z - row).abs().amax(1) <= _SAME_LATENT_ATOL
        if existing.w is not None and tuple(existing.w.shape[1:]) == (G.num_ws, G.w_dim):
            with torch.no_grad():
                w = G.mapping(
                    z.to(labeler.device), labeler.truncation_psi, labeler.truncation_cutoff
                )
            w = w.float().cpu().flatten(1)
            for row in existing.w.flatten(1):
                held[start : start + len(chunk)] |= (w - row).abs().amax(1) <= _SAME_LATENT_ATOL
    return held


def _diversity_scale(desc: torch.Tensor, seed: int) -> float:
    """The median distance of up to ``_SCALE_SAMPLE`` sampled candidates to their nearest
    *other* candidate of the pool (computed in chunks of the pool); 1.0, logged, when it
    is 0 (most descriptors identical) or the pool holds one candidate."""
    pool = len(desc)
    idx = torch.randperm(pool, generator=torch.Generator().manual_seed(seed))
    idx = idx[: min(pool, _SCALE_SAMPLE)]
    rows = desc[idx]
    best = torch.full((len(idx),), float("inf"), dtype=desc.dtype)
    chunk = max(1, _CDIST_ELEMENTS // max(1, len(idx)))
    for start in range(0, pool, chunk):
        d = torch.cdist(rows, desc[start : start + chunk])
        own = ((idx >= start) & (idx < start + d.shape[1])).nonzero().flatten()
        d[own, idx[own] - start] = float("inf")  # not its own nearest neighbour
        best = torch.minimum(best, d.min(1).values)
    # the median proper: torch's median() is the lower of the two middle values of an
    # even count, which every default pool (256 sampled candidates) has
    median = float(best.double().quantile(0.5)) if pool > 1 else 0.0
    if not math.isfinite(median) or median <= 0.0:
        log.info(
            "diversity scale: the median distance to the nearest other candidate is %s "
            "(most candidates look alike): distances are used unscaled",
            median,
        )
        return 1.0
    return median


@keyword_hints
def suggest_annotations(
    labeler: Labeler,
    num: int,
    pool: int = 2000,
    seed: int = 0,
    existing: Annotations | None = None,
    coverage_target: int = DEFAULT_COVERAGE_TARGET,
    batch_size: int = 32,
    weights: tuple[float, float, float, float] = (1.0, 1.0, 0.5, 1.0),
    coverage_by: str = DEFAULT_COVERAGE_BY,
    exclude_seeds: Iterable[int] = (),
) -> SuggestionReport:
    """Choose ``num`` of ``pool`` generated candidates to annotate (see the module).

    ``existing``: annotations already made (their masks count for coverage and
    distance, their features for novelty; the candidates they hold are left out).
    ``exclude_seeds``: seeds of samples listed but not drawn yet (a folder loaded with
    ``skip_unannotated``), left out of the pool too.
    ``weights``: (uncertainty, coverage, diversity, novelty). ``coverage_by``: "peak",
    "mass" or "labels", how a candidate's classes are counted for coverage. Every
    argument is checked before the pool is scored: ValueError when the pool (less the
    candidates ``existing`` holds) is smaller than ``num``, when the labeler's noise is
    not "const" or its crop cannot be written to a folder, or when ``existing`` was
    made with another generator; TypeError when ``existing`` is not Annotations.
    """
    if not isinstance(coverage_by, str) or coverage_by not in COVERAGE_BY:
        raise ValueError(f"coverage_by must be one of {COVERAGE_BY}, got {coverage_by!r:.80}")
    seed = check_seed(seed)
    w_u, w_c, w_d, w_n = _relative_weights(weights)
    num = check_int(num, "num", 1)
    pool = check_int(pool, "pool", 1, MAX_POOL)
    batch_size = check_int(batch_size, "batch_size", 1, MAX_BATCH)
    coverage_target = check_int(coverage_target, "coverage_target", 1)
    if pool < num:
        raise ValueError(f"the pool ({pool}) must hold at least as many candidates as num ({num})")
    _check_labeler(labeler)
    existing = _check_existing(labeler, existing)
    names = list(labeler.class_names)
    K = len(names)
    seeds = candidate_seeds(seed, pool)
    held_already = (
        _held_by(labeler, seeds, existing)
        if existing is not None
        else torch.zeros(pool, dtype=torch.bool)
    )
    try:  # a float seed (from JSON) matched no candidate, so nothing was left out
        skipped = set(check_seeds(exclude_seeds))  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise type(err)(f"exclude_seeds: {err}") from None
    held = int(held_already.sum())
    if skipped:
        listed = torch.tensor([v in skipped for v in seeds], dtype=torch.bool)
        held_already = held_already | listed.to(held_already.device)
    excluded = int(held_already.sum())
    if pool - excluded < num:
        why = [f"the existing annotations already hold {held}"] if held else []
        if excluded > held:
            why.append(f"exclude_seeds names {excluded - held}{' more' if held else ''}")
        raise ValueError(
            f"{' and '.join(why)} of the pool's {pool} candidates, leaving "
            f"{pool - excluded}, fewer than num ({num}): use a larger pool or another seed"
        )
    if excluded:
        log.info("%d pool candidates are already annotated: left out", excluded)
    tracker = None
    if w_n > 0 and existing is not None:
        feats = annotation_features(labeler, existing)
        if feats is not None:
            tracker = _NoveltyTracker(FeatureNovelty(feats, seed=seed))
    if tracker is None and not (w_u or w_c or w_d):
        raise ValueError(
            "only the novelty weight is > 0, and novelty needs existing annotations: give "
            "them, or a weight > 0 for uncertainty, coverage or diversity"
        )
    if coverage_by != "labels":  # the ensemble's probabilities live per batch: bound them
        per_image = K * labeler.frame[0] * labeler.frame[1] * 4
        batch_size = max(1, min(batch_size, _PROBABILITY_BYTES // per_image))
    scores, descs, counts, held_parts = [], [], [], []
    for start in range(0, pool, batch_size):
        chunk = seeds[start : start + batch_size]
        img, feats = labeler.synthesize(chunk)
        batch = labeler.label_synthesized(
            img,
            feats,
            chunk,
            class_mass=coverage_by == "mass",
            class_peak=MIN_CLASS_PIXELS if coverage_by == "peak" else 0,
        )
        if tracker is not None:
            tracker.add(feats)
        values = batch.image_uncertainty.tolist()
        batch.check_finite(values)
        scores += values
        d, c = _descriptor(batch.masks, K)
        descs.append(d)
        counts.append(c)
        if batch.class_mass is not None:  # expected presence min(1, mass / MIN_CLASS_PIXELS)
            held_parts.append((batch.class_mass.cpu().double() / MIN_CLASS_PIXELS).clamp(max=1.0))
        if batch.class_peak is not None:  # mean of its MIN_CLASS_PIXELS likeliest pixels
            held_parts.append(batch.class_peak.cpu().double())
    score = torch.tensor(scores, dtype=torch.float64)
    desc = torch.cat(descs)
    present = torch.cat(counts) >= MIN_CLASS_PIXELS  # (pool, K)
    # How much each candidate holds each class: from the probabilities, or label presence.
    held = torch.cat(held_parts) if held_parts else present.double()
    rank = _mean_rank(score)  # 1 = most uncertain; ties share their mean rank
    if pool > 1 and bool((score == score[0]).all()):
        log.warning(
            "every candidate has the same uncertainty score (%.4g): the uncertainty term "
            "cannot rank them (an ensemble of one model?)",
            float(score[0]),
        )

    have = torch.zeros(K, dtype=torch.float64)
    known = torch.empty(0, desc.shape[1])
    if existing is not None:
        ex_desc, ex_counts = _descriptor(existing.masks.long(), K)
        have += (ex_counts >= MIN_CLASS_PIXELS).double().sum(0)
        known = ex_desc
    before = dict(zip(names, [int(v) for v in have.tolist()]))
    count = have.long()
    scale = _diversity_scale(desc, seed)
    if tracker is not None:
        tracker.finish()
    chosen: list[int] = []
    suggestions: list[Suggestion] = []
    available = ~held_already
    for _ in range(num):
        need = (coverage_target - have).clamp_min(0).double() / coverage_target
        coverage = (held * need).sum(1)
        dist = nearest_distance(desc, known).double()
        closeness = (dist / scale).clamp(max=1.0)
        gain = w_u * rank + w_c * coverage + w_d * closeness
        novelty = tracker.current() if tracker is not None else torch.zeros(pool).double()
        if tracker is not None:
            gain = gain + w_n * _mean_rank(novelty)
        gain[~available] = -float("inf")
        i = int(gain.argmax())  # ties: the lower index
        available[i] = False
        classes = [names[k] for k in range(K) if present[i, k]]
        new = [names[k] for k in range(K) if held[i, k] >= 0.5 and need[k] > 0]
        below = [names[k] for k in range(K) if need[k] > 0]
        d = float(dist[i])
        share_below = float((score < score[i]).double().mean())
        if new:
            coverage_text = (
                f"adds {', '.join(new)} (still below {coverage_target} annotated images); "
            )
        elif below:
            coverage_text = (
                f"adds no class below its coverage target (still below: {', '.join(below)}); "
            )
        else:
            coverage_text = f"every class has its {coverage_target} annotated images; "
        reason = (
            f"uncertainty {score[i]:.4f} (more than {100 * share_below:.0f} % of the pool); "
            + coverage_text
            + ("first pick" if d == float("inf") else f"distance {d / scale:.2f} to the nearest")
            + (
                f"; new features in {100 * novelty[i]:.1f} % of its pixels"
                if tracker is not None
                else ""
            )
        )
        suggestions.append(
            Suggestion(
                pool_index=i,
                seed=seeds[i],
                uncertainty=float(score[i]),
                uncertainty_rank=float(rank[i]),
                classes=classes,
                new_classes=new,
                distance=d if d != float("inf") else -1.0,
                gain=float(gain[i]),
                reason=reason,
                novelty=float(novelty[i]),
            )
        )
        if tracker is not None:
            tracker.pick(i)
        chosen.append(i)
        have += held[i]
        count += present[i].long()
        known = torch.cat([known, desc[i : i + 1]])
    report = SuggestionReport(
        suggestions=suggestions,
        pool=pool,
        seed=seed,
        class_names=names,
        class_image_counts_before=before,
        class_image_counts_after=dict(zip(names, count.tolist())),
        pool_class_rates=dict(zip(names, present.double().mean(0).tolist())),
        weights={
            "uncertainty": w_u,
            "coverage": w_c,
            "diversity": w_d,
            "novelty": w_n if tracker is not None else 0.0,
        },
        class_images_expected_after=dict(zip(names, have.tolist())),
        coverage_by=coverage_by,
        excluded=excluded,
        diversity_scale=scale,
        labeler_settings=_labeler_settings(labeler),
    )
    return report


def _labeler_settings(labeler: Labeler) -> dict[str, Any]:
    """What decides the images and labels a labeler makes of a seed, as JSON values."""
    return {
        "truncation_psi": float(labeler.truncation_psi),
        "truncation_cutoff": labeler.truncation_cutoff,
        "noise": labeler.noise if isinstance(labeler.noise, str) else "tensors",
        "frame": list(labeler.frame),
        "class_names": list(labeler.class_names),
        "generator_fingerprint": labeler.fingerprints()[0],
        "interpreter_fingerprint": labeler.fingerprints()[1],
    }


def suggestion_conflicts(labeler: Labeler, existing: Annotations) -> list[str]:
    """What would keep the folder :func:`write_suggestions` writes with ``labeler`` from
    merging with ``existing``: the header of that folder (classes, generator,
    truncation, noise, crop, stored images, latent kinds w and seeds, no truncation
    centre) compared by the code ``Annotations.merge`` runs
    (:func:`~dgan_data.annotations.folder.merge_header_problems`), so the check is done
    before the pool is scored, not after the picks are annotated."""
    G = labeler.G
    written: dict[str, Any] = {
        "class_names": list(labeler.class_names),
        "generator fingerprint": labeler.fingerprints()[0],
        "truncation_psi": labeler.truncation_psi,
        "truncation_cutoff": labeler.truncation_cutoff,
        "noise": labeler.noise,
        "crop": suggestion_crop(labeler),
        "stored images": True,
        "latents": ("w", "seeds"),
        "truncation_center": None,
        "w shape": (int(G.num_ws), int(G.w_dim)),
    }  # no mask resolution: the annotator has not drawn the masks yet
    where = str(existing.root) if existing.root is not None else "the annotations"
    headers = [merge_header(existing), written]
    problems = [text for _, text in merge_header_problems(headers, [where, "the suggestions"])]
    return [
        f"{text} (the suggestions store their images: regenerate {where}'s with "
        "Annotations.load(folder).with_generated_images(G).save(new_folder))"
        if text.startswith("stored images")
        else text
        for text in problems
    ]


def suggestion_crop(labeler: Labeler) -> tuple[int, int, int, int] | None:
    """The labeler's crop as an annotation folder records it (in image pixels, masks at
    the crop's size): an interpreter fitted on cropped annotations labels that window, so
    its suggestions are annotated in it too."""
    if labeler.crop is None:
        return None
    if tuple(labeler.frame) != tuple(labeler.G.resolution):
        raise ValueError(
            f"the interpreter crops {tuple(labeler.crop)} out of a {tuple(labeler.frame)} label "
            f"frame, not the generator's {tuple(labeler.G.resolution)} image: an annotation "
            "folder cannot record that crop"
        )
    return tuple(int(v) for v in labeler.crop)


def free_id_prefix(existing: Annotations | Iterable[str] | None, num: int, base: str = "s") -> str:
    """``base``, or ``base2``, ``base3``... : the first prefix whose ids
    ``f"{prefix}{i:05d}"`` for ``i < num`` are not in ``existing`` (annotations, or the
    ids taken; a second round of suggestions merges with the first without clashing
    ids)."""
    ids = existing.ids if isinstance(existing, Annotations) else existing
    taken = set(ids or ())
    round_ = 1
    while True:
        prefix = base if round_ == 1 else f"{base}{round_}"
        if not any(f"{prefix}{i:05d}" in taken for i in range(num)):
            return prefix
        round_ += 1


def _check_out_dir(root: Path, seeds: list[int]) -> None:
    """``root`` is absent, empty, or an earlier (maybe interrupted) write of the same
    suggestions, which the write resumes; anything else, such as an annotation folder
    with drawn masks, is a ValueError naming it: its manifest and images were rewritten."""
    if not root.is_dir() or not any(root.iterdir()):
        return  # absent, or a file (the folder writer names it), or empty
    try:
        listed = [entry.get("seed") for entry in read_json(root / MANIFEST)["samples"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        listed = None
    if listed is None or not set(listed) <= set(seeds):
        raise ValueError(
            f"{root}: is not empty and holds no earlier write of these suggestions; write "
            "them into a new folder (merge it with yours by dgan-data merge-annotations)"
        )


@keyword_hints
def write_suggestions(
    labeler: Labeler,
    report: SuggestionReport,
    out_dir: str | os.PathLike,
    *,
    id_prefix: str = "s",
    preview: bool = True,
) -> SampledFolder:
    """Write the chosen samples as an annotation folder (images, latents, manifest; the
    masks are left to the annotator), ``suggestions.json`` with the reasons, and
    ``suggestions.png`` (image, interpreter labels, uncertainty) to show the choice."""
    if not isinstance(report, SuggestionReport):
        raise TypeError(
            f"report must be the SuggestionReport suggest_annotations returned, got "
            f"{type(report).__name__}"
        )
    root = nonempty_path(out_dir, "out_dir")
    preview = check_bool(preview, "preview")
    scored, now = report.labeler_settings, _labeler_settings(labeler)
    differ = [k for k in scored if k in now and scored[k] != now[k]]
    if differ:  # the folder would hold other images than the ones the report describes
        raise ValueError(
            "the labeler differs from the one that scored the report in "
            + ", ".join(f"{k} ({scored[k]!r:.40} then, {now[k]!r:.40} now)" for k in differ)
            + "; write with the labeler that made the suggestions"
        )
    with folder_lock(root, "annotation folder"):  # sample, suggest: one writer at a time
        return _write_suggestions(labeler, report, root, id_prefix, preview)


def _write_suggestions(
    labeler: Labeler, report: SuggestionReport, root: Path, id_prefix: str, preview: bool
) -> SampledFolder:
    """:func:`write_suggestions` once the folder is held."""
    seeds = [s.seed for s in report.suggestions]
    _check_out_dir(root, seeds)
    folder = sample_annotation_folder(
        labeler.G,
        len(seeds),
        root,
        truncation_psi=labeler.truncation_psi,
        truncation_cutoff=labeler.truncation_cutoff,
        class_names=labeler.class_names,
        palette=labeler.palette,
        noise=labeler.noise,
        seeds=seeds,
        id_prefix=id_prefix,
        crop=suggestion_crop(labeler),
        mask_resolution=labeler.label_size,  # the interpreter's label size, as it was fit
    )
    doc = report.to_dict()
    for entry, sample_id in zip(doc["suggestions"], folder.ids):
        entry["id"] = sample_id
    write_json(root / "suggestions.json", doc)
    if preview:
        batch = labeler.label(seeds)
        preview_grid(
            batch.images.cpu(),
            batch.masks.cpu(),
            batch.pixel_uncertainty.cpu(),
            labeler.class_names,
            labeler.palette,
            root / "suggestions.png",
        )
    return folder
