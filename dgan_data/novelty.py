"""Feature novelty: how far a generated image's pixels lie from every annotated pixel.

The ensemble's disagreement cannot flag a class the annotations never showed: every
member maps it, confidently, to a known class. On the toy world an interpreter trained on
8 images without teeth labels the teeth of new images as mouth or skin, and the image
score of images with teeth ranks like a random draw. What does change there is the
generator's features. :class:`FeatureNovelty` measures it:

- every feature map is standardised per channel with the annotated images' statistics
  and projected to ``dims`` channels by a fixed, seeded Gaussian matrix (random
  projections keep distances, Johnson-Lindenstrauss); the projected maps are upsampled
  (bilinear) to a grid of at most ``grid`` x ``grid`` pixels and summed. Projection,
  standardisation and bilinear upsampling are linear, so this equals projecting the
  concatenated upsampled features, at a fraction of the memory;
- up to ``references`` annotated pixels (the same number from each image, and at
  least one: with more images than ``references``, one per image) are kept as
  references; a pixel's novelty is its distance to the nearest reference divided by the
  ``quantile`` of the distances of other annotated pixels to the references *of the
  other annotated images* (leave one image out: a new image is never one of the
  annotated ones, and neighbouring pixels of one image are near duplicates), so a
  pixel is *novel* above 1;
- an image's novelty is its share of novel pixels.

After an image is chosen for annotation its novel pixels become references too
(:meth:`FeatureNovelty.add_references`), so the next pick is not another image of the
same unseen thing. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .conventions import check_int, check_number, keyword_hints
from .seeds import check_seed

log = logging.getLogger(__name__)

__all__ = ["FeatureNovelty", "nearest_distance"]

#: Most projected channels (the projection matrix is channels x dims floats).
MAX_DIMS = 4096

#: Rows of candidate pixels per distance computation (bounds the cdist memory).
_CHUNK = 8192


def nearest_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance of each row of ``a`` to its nearest row of ``b`` (inf when ``b`` is
    empty), computed in chunks of rows of ``a``."""
    if len(b) == 0:
        return torch.full((len(a),), float("inf"))
    if len(a) == 0:
        return torch.empty(0)
    return torch.cat(
        [torch.cdist(a[i : i + _CHUNK], b).min(1).values for i in range(0, len(a), _CHUNK)]
    )


def _check_maps(maps: Sequence[torch.Tensor], name: str) -> list[torch.Tensor]:
    """``maps`` as a list of real (N, C, h, w) tensors, one N for all, else an error
    naming ``name`` (not an AttributeError or a broadcast error from inside torch). Not
    converted: :meth:`FeatureNovelty.embed` makes one float copy at a time."""
    if isinstance(maps, torch.Tensor) or not isinstance(maps, Sequence):
        raise TypeError(f"{name} must be a list of feature-map tensors, got {type(maps).__name__}")
    if not all(isinstance(f, torch.Tensor) for f in maps):
        kinds = sorted({type(f).__name__ for f in maps if not isinstance(f, torch.Tensor)})
        raise TypeError(f"{name} must hold torch tensors, got {', '.join(kinds)}")
    if not maps or any(f.ndim != 4 for f in maps):
        raise ValueError(f"{name} must be a non-empty list of (N, C, h, w) maps")
    if any(f.dtype == torch.bool or f.is_complex() for f in maps):
        raise TypeError(f"{name} must hold real-valued feature maps")
    counts = sorted({int(f.shape[0]) for f in maps})
    if len(counts) > 1:
        raise ValueError(f"{name} must hold one image count for every map, got {counts}")
    return list(maps)


@keyword_hints
class FeatureNovelty:
    """Pixel novelty of generator features with respect to annotated images (see module)."""

    def __init__(
        self,
        annotated_features: Sequence[torch.Tensor],
        *,
        dims: int = 32,
        grid: int = 64,
        references: int = 4096,
        quantile: float = 0.99,
        seed: int = 0,
    ) -> None:
        """``annotated_features``: the generator's feature maps (N, C_l, h_l, w_l) of the
        annotated images, as ``synthesize`` returns them."""
        dims = check_int(dims, "dims", 1, MAX_DIMS)
        grid = check_int(grid, "grid", 1)  # at most the largest map's side is used
        references = check_int(references, "references", 2)
        quantile = check_number(quantile, "quantile", low=0.0, high=1.0)
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        seed = check_seed(seed)
        maps = [f.detach().float() for f in _check_maps(annotated_features, "annotated_features")]
        if maps[0].shape[0] == 0:  # before std(), which would warn, and references // 0
            raise ValueError(
                "annotated_features need at least one annotated image, got maps with N = 0"
            )
        if not all(bool(torch.isfinite(f).all()) for f in maps):
            raise ValueError(
                "annotated_features hold NaN or inf: the annotated images' features are "
                "broken (a NaN latent?), and every distance to them would be NaN"
            )
        self.grid = grid
        self.dims = dims
        gen = torch.Generator().manual_seed(seed)
        self._mean = [f.mean((0, 2, 3)) for f in maps]
        self._inv_std = [1.0 / f.std((0, 2, 3)).clamp_min(1e-6) for f in maps]
        total = sum(f.shape[1] for f in maps)
        self._proj = [torch.randn(f.shape[1], dims, generator=gen) / total**0.5 for f in maps]
        emb = self.embed(maps).permute(0, 2, 3, 1).flatten(1, 2)  # (N, P, dims)
        N, P = emb.shape[:2]
        per_image = max(1, min(P // 2, references // N))
        refs, owners, held, held_owners = [], [], [], []
        for i in range(N):
            order = torch.randperm(P, generator=gen)
            refs.append(emb[i, order[:per_image]])
            held.append(emb[i, order[per_image : 2 * per_image]])
            owners.append(torch.full((per_image,), i))
            held_owners.append(torch.full((len(held[-1]),), i))
        self.references = torch.cat(refs)
        ref_owner, held_px, held_owner = torch.cat(owners), torch.cat(held), torch.cat(held_owners)
        if len(held_px) == 0:
            raise ValueError("annotated_features hold too few pixels to calibrate novelty")
        if N == 1:
            log.warning("feature novelty calibrated on a single annotated image")
        dist = []
        for s in range(0, len(held_px), _CHUNK):
            d = torch.cdist(held_px[s : s + _CHUNK], self.references)
            if N > 1:  # leave the pixel's own image out
                d[held_owner[s : s + _CHUNK, None] == ref_owner[None]] = float("inf")
            dist.append(d.min(1).values)
        self.scale = float(torch.cat(dist).quantile(quantile).clamp_min(1e-12))
        log.debug("feature novelty: %d references, scale %.4g", len(self.references), self.scale)

    # ------------------------------------------------------------------ embedding
    def grid_size(self, maps: Sequence[torch.Tensor]) -> tuple[int, int]:
        h = max(int(f.shape[2]) for f in maps)
        w = max(int(f.shape[3]) for f in maps)
        return min(h, self.grid), min(w, self.grid)

    @torch.no_grad()
    def embed(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, dims, gh, gw) projected, standardised features on the novelty grid."""
        maps = _check_maps(maps, "maps")
        if len(maps) != len(self._proj):
            raise ValueError(f"expected {len(self._proj)} feature maps, got {len(maps)}")
        size = self.grid_size(maps)
        out = None
        for f, mean, inv_std, proj in zip(maps, self._mean, self._inv_std, self._proj):
            if f.shape[1] != proj.shape[0]:
                raise ValueError(
                    f"a feature map has {f.shape[1]} channels, the novelty model "
                    f"{proj.shape[0]}: features of a different generator"
                )
            dev = f.device
            x = (f.float() - mean.to(dev)[:, None, None]) * inv_std.to(dev)[:, None, None]
            z = torch.einsum("bchw,cd->bdhw", x, proj.to(dev))
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
            out = z if out is None else out + z
        assert out is not None
        return out.cpu()

    def _nearest(self, pixels: torch.Tensor) -> torch.Tensor:
        """Distance of each row to its nearest reference."""
        return nearest_distance(pixels, self.references)

    # ------------------------------------------------------------------ scoring
    def pixel_novelty(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(novelty (B, gh, gw), embeddings (B, gh, gw, dims)); novel pixels are > 1."""
        z = self.embed(maps).permute(0, 2, 3, 1).contiguous()
        B, gh, gw, D = z.shape
        dist = self._nearest(z.reshape(-1, D)).reshape(B, gh, gw)
        return dist / self.scale, z

    def add_references(self, pixels: torch.Tensor) -> None:
        """Make these embedded pixels (P, dims) references too (a chosen image's).

        Pixels of another width are a ValueError naming both widths (they used to be
        reshaped to ``dims`` columns, an error from inside torch or wrong references).
        """
        if not isinstance(pixels, torch.Tensor):
            raise TypeError(f"pixels must be a torch tensor, got {type(pixels).__name__}")
        if pixels.numel() == 0:
            return
        if pixels.ndim < 1 or pixels.shape[-1] != self.dims:
            raise ValueError(
                f"pixels must be embedded pixels of shape (P, {self.dims}), got "
                f"{tuple(pixels.shape)}: embeddings of a novelty model with other dims?"
            )
        self.references = torch.cat([self.references, pixels.reshape(-1, self.dims)])

    def still_novel(self, pixels: torch.Tensor) -> torch.Tensor:
        """Which embedded pixels (P, dims) are still above the novelty threshold."""
        return self._nearest(pixels) / self.scale > 1.0
