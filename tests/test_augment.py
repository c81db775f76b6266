"""Batch augmentation: image/mask alignment, ignore_index outside the frame, seeding, adapters."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from lightning_utilities.core.imports import RequirementCache

import dgan_data.augment.adapters as adapters_mod
from dgan_data.augment import (
    AlbumentationsAugment,
    AugmentParams,
    BatchAugment,
    KorniaAugment,
    make_augment,
    normalize,
)

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

K = 5  # classes in the synthetic label-encoding batch
IGNORE = 255
NO_COLOUR = {"brightness": None, "contrast": None, "saturation": None, "hue": None}
# Bilinear image resampling blends neighbouring labels' colours at class boundaries, and a
# 50/50 blend of labels 1 and 3 decodes as a clean 2: about 1 % of the compared pixels. A
# one-pixel shift between image and mask costs about 10 %, a half-pixel one several %.
BILINEAR_AGREE = 0.98
NO_GEOMETRY = {"hflip": None, "scale": None, "translate": None, "rotate": None}


def encoded_batch(
    batch: int = 6, size: int = 32, block: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of random ``block``-pixel squares of K classes, and images whose colour encodes
    the label: channel 0 = label / (K-1), channel 1 = 0.5 everywhere (so 0 there means
    "outside the source frame" after a zero-padded warp), channel 2 = 0.25."""
    g = torch.Generator().manual_seed(seed)
    n = size // block
    coarse = torch.randint(0, K, (batch, n, n), generator=g)
    masks = coarse.repeat_interleave(block, 1).repeat_interleave(block, 2)
    images = torch.empty(batch, 3, size, size)
    images[:, 0] = masks.float() / (K - 1)
    images[:, 1] = 0.5
    images[:, 2] = 0.25
    return images, masks


def decode(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label decoded from channel 0, and whether it is an unblended (near-integer) value."""
    v = images[:, 0].float() * (K - 1)
    return v.round().long(), (v - v.round()).abs() < 0.05


def check_alignment(
    images: torch.Tensor, masks: torch.Tensor, min_agree: float = 0.99
) -> tuple[float, int]:
    """Assert labels match the colours they were warped with; return agreement and #ignored."""
    assert masks.dtype == torch.int64
    ok_values = ((masks >= 0) & (masks < K)) | (masks == IGNORE)
    assert ok_values.all(), f"mask values outside [0, K) and {IGNORE}: {masks.unique()}"
    label, clean = decode(images)
    # channel 1 is 0.5 fully inside the source frame, 0 fully outside (tolerance: float
    # rounding of the resamplers, and uint8 quantisation in the albumentations path)
    inside = (images[:, 1].float() - 0.5).abs() < 0.01
    outside = images[:, 1].float() < 0.01
    assert (masks[outside] == IGNORE).all(), "pixels from outside the frame must be ignore_index"
    assert (masks[inside] != IGNORE).all(), "pixels fully inside the frame must keep a label"
    sel = clean & inside & (masks != IGNORE)
    assert sel.float().mean() > 0.5, "too few comparable pixels: the test lost its power"
    agree = (label[sel] == masks[sel]).float().mean().item()
    assert agree >= min_agree, f"image/mask agreement {agree:.4f} < {min_agree}"
    return agree, int((masks == IGNORE).sum())


def params_for(batch: int, **overrides: torch.Tensor) -> AugmentParams:
    """Identity parameters with some fields replaced."""
    p = {
        "flip": torch.zeros(batch, dtype=torch.bool),
        "scale": torch.ones(batch),
        "angle": torch.zeros(batch),
        "translate": torch.zeros(batch, 2),
        "brightness": torch.ones(batch),
        "contrast": torch.ones(batch),
        "saturation": torch.ones(batch),
        "hue": torch.zeros(batch),
    }
    p.update(overrides)
    return AugmentParams(**p)


# --------------------------------------------------------------------------- BatchAugment geometry


def test_alignment_nearest_image_is_exact():
    images, masks = encoded_batch()
    aug = BatchAugment(**NO_COLOUR, image_interpolation="nearest", translate=0.2, rotate=20)
    out_i, out_m = aug(images, masks, torch.Generator().manual_seed(1))
    _, n_ignored = check_alignment(out_i, out_m, min_agree=1.0)
    assert n_ignored > 0, "the draw should put some pixels outside the frame"
    # With nearest for both, the out-of-frame test must agree with the image pixel for pixel.
    assert torch.equal(out_m == IGNORE, out_i[:, 1] == 0)


def test_alignment_bilinear_image():
    images, masks = encoded_batch(seed=3)
    aug = BatchAugment(**NO_COLOUR, translate=0.2, rotate=20)
    out_i, out_m = aug(images, masks, torch.Generator().manual_seed(2))
    check_alignment(out_i, out_m, min_agree=BILINEAR_AGREE)


def test_alignment_check_has_power():
    """A one-pixel offset between image and mask, or a blended mask, must fail the check."""
    images, masks = encoded_batch(seed=3)
    aug = BatchAugment(**NO_COLOUR, translate=0.2, rotate=20)
    out_i, out_m = aug(images, masks, torch.Generator().manual_seed(2))
    check_alignment(images, masks, min_agree=1.0)
    with pytest.raises(AssertionError, match="agreement"):
        check_alignment(images, masks.roll(1, dims=2), min_agree=BILINEAR_AGREE)
    with pytest.raises(AssertionError):
        check_alignment(out_i, out_m.roll(1, dims=2), min_agree=BILINEAR_AGREE)
    nearest = BatchAugment(**NO_COLOUR, image_interpolation="nearest", translate=0.2, rotate=20)
    p = nearest.sample_params(6, torch.Generator().manual_seed(1))
    out_i, out_m = nearest.apply(images, masks, p)
    p.flip = ~p.flip  # mask warped with a different transform than the image
    with pytest.raises(AssertionError):
        check_alignment(out_i, nearest.apply(images, masks, p)[1], min_agree=1.0)


def test_exact_geometry_flip_shift_rot90():
    g = torch.Generator().manual_seed(0)
    B, H, W = 2, 8, 12
    images, masks = torch.rand(B, 3, H, W, generator=g), torch.randint(0, K, (B, H, W), generator=g)
    aug = BatchAugment(**NO_COLOUR, image_interpolation="nearest")

    x, m = aug.apply(images, masks, params_for(B, flip=torch.ones(B, dtype=torch.bool)))
    assert torch.equal(x, images.flip(-1)) and torch.equal(m, masks.flip(-1))

    # shift right by 2 px and down by 1 px: vacated pixels are ignored (image 0)
    x, m = aug.apply(images, masks, params_for(B, translate=torch.tensor([[2 / W, 1 / H]] * B)))
    assert torch.equal(m[:, 1:, 2:], masks[:, :-1, :-2])
    assert torch.equal(x[:, :, 1:, 2:], images[:, :, :-1, :-2])
    assert (m[:, 0] == IGNORE).all() and (m[:, :, :2] == IGNORE).all()
    assert (x[:, :, 0] == 0).all() and (x[:, :, :, :2] == 0).all()

    sq_i, sq_m = images[..., :8], masks[..., :8].contiguous()
    x, m = aug.apply(sq_i, sq_m, params_for(B, angle=torch.full((B,), 90.0)))
    assert torch.equal(m, torch.rot90(sq_m, 1, (1, 2)))  # counter-clockwise on screen
    assert torch.allclose(x, torch.rot90(sq_i, 1, (2, 3)))

    # zoom in by 2: the central 4x4 fills the frame, each pixel repeated twice, nothing ignored
    x, m = aug.apply(sq_i, sq_m, params_for(B, scale=torch.full((B,), 2.0)))
    assert torch.equal(m, sq_m[:, 2:6, 2:6].repeat_interleave(2, 1).repeat_interleave(2, 2))
    # zoom out by 2: the source lands in the central half, the border is ignored
    x, m = aug.apply(sq_i, sq_m, params_for(B, scale=torch.full((B,), 0.5)))
    assert (m[:, :2] == IGNORE).all() and (m[:, 6:] == IGNORE).all()
    assert (m[:, :, :2] == IGNORE).all() and (m[:, :, 6:] == IGNORE).all()
    assert (m[:, 2:6, 2:6] != IGNORE).all()


def test_reflection_padding_image_still_ignores_mask():
    images, masks = encoded_batch()
    aug = BatchAugment(**NO_COLOUR, image_padding="reflection", translate=0.3)
    p = params_for(6, translate=torch.tensor([[0.25, 0.0]] * 6))
    x, m = aug.apply(images, masks, p)
    assert (m[..., :8] == IGNORE).all() and (m[..., 8:] != IGNORE).all()
    assert (x[:, 1] == 0.5).all()  # reflected content, no black border


# --------------------------------------------------------------------------- BatchAugment colour


def test_colour_only_touches_image():
    images, masks = encoded_batch()
    images = torch.rand(images.shape, generator=torch.Generator().manual_seed(5))
    aug = BatchAugment(**NO_GEOMETRY)
    x, m = aug(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(m, masks)
    assert not torch.allclose(x, images)
    assert x.min() >= 0 and x.max() <= 1


def test_colour_ops_values():
    g = torch.Generator().manual_seed(0)
    images, masks = torch.rand(3, 3, 8, 8, generator=g), torch.zeros(3, 8, 8, dtype=torch.long)
    aug = BatchAugment(**NO_GEOMETRY)
    x, _ = aug.apply(images, masks, params_for(3, brightness=torch.tensor([0.5, 1.0, 2.0])))
    assert torch.allclose(x, (images * torch.tensor([0.5, 1.0, 2.0]).view(3, 1, 1, 1)).clamp(0, 1))
    x, _ = aug.apply(images, masks, params_for(3, saturation=torch.zeros(3)))
    grey = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    assert torch.allclose(x, grey.unsqueeze(1).expand_as(x), atol=1e-5)
    x, _ = aug.apply(images, masks, params_for(3, contrast=torch.zeros(3)))
    assert torch.allclose(x, grey.mean(dim=(1, 2)).view(3, 1, 1, 1).expand_as(x), atol=1e-5)
    x, _ = aug.apply(images, masks, params_for(3, hue=torch.full((3,), 0.1)))
    assert not torch.allclose(x, images, atol=1e-3)
    grey_x = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    unclamped = (x > 0).all(1) & (x < 1).all(1)
    assert torch.allclose(grey_x[unclamped], grey[unclamped], atol=1e-4)  # hue keeps luma


# --------------------------------------------------------------------------- seeding and params


def test_same_seed_same_output_different_seed_differs():
    images, masks = encoded_batch()
    aug = BatchAugment()
    a = aug(images, masks, torch.Generator().manual_seed(7))
    b = aug(images, masks, torch.Generator().manual_seed(7))
    c = aug(images, masks, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    g = torch.Generator().manual_seed(7)
    first, second = aug(images, masks, g), aug(images, masks, g)
    assert not torch.equal(first[0], second[0]), "the generator must advance between calls"


def test_params_per_sample_and_reproducible():
    aug = BatchAugment()
    p = aug.sample_params(8, torch.Generator().manual_seed(0))
    assert len(p) == 8
    for name in ("scale", "angle", "brightness", "contrast", "saturation", "hue"):
        assert getattr(p, name).unique().numel() == 8, name
    assert p.translate.unique(dim=0).shape[0] == 8
    assert 0 < p.flip.sum() < 8
    lo, hi = aug.scale
    assert (p.scale >= lo).all() and (p.scale <= hi).all() and (p.angle.abs() <= 10).all()
    images, masks = encoded_batch(batch=8)
    via_call = aug(images, masks, torch.Generator().manual_seed(0))
    via_apply = aug.apply(images, masks, p)
    assert torch.equal(via_call[0], via_apply[0]) and torch.equal(via_call[1], via_apply[1])
    # every sample is transformed differently
    assert len({tuple(m.flatten().tolist()) for m in via_call[1]}) == 8
    # disabling one op leaves the other draws alone
    q = BatchAugment(hue=None, rotate=None).sample_params(8, torch.Generator().manual_seed(0))
    assert torch.equal(q.flip, p.flip) and torch.equal(q.scale, p.scale)
    assert (q.hue == 0).all() and (q.angle == 0).all()
    # select/to keep the per-sample values
    assert torch.equal(p.select(slice(2, 4)).scale, p.scale[2:4]) and len(p.select(3)) == 1


def test_pickle_round_trip():
    """The stream's dataset must stay picklable (DataLoader workers, spawn)."""
    aug = BatchAugment(rotate=5.0, hue=None)
    clone = pickle.loads(pickle.dumps(aug))
    images, masks = encoded_batch()
    a = aug(images, masks, torch.Generator().manual_seed(0))
    b = clone(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_all_ops_disabled_is_identity():
    images, masks = encoded_batch()
    aug = BatchAugment(**NO_GEOMETRY, **NO_COLOUR)
    assert not aug.geometric and not aug.photometric
    x, m = aug(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(x, images) and torch.equal(m, masks)


def test_identity_params_with_ops_enabled_is_identity():
    images, masks = encoded_batch()
    x, m = BatchAugment().apply(images, masks, params_for(6))
    assert torch.allclose(x, images, atol=1e-6) and torch.equal(m, masks)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_images(dtype):
    images, masks = encoded_batch()
    aug = BatchAugment(**NO_COLOUR, image_interpolation="nearest", translate=0.2)
    x16, m16 = aug(images.to(dtype), masks, torch.Generator().manual_seed(4))
    x32, m32 = aug(images.to(dtype).float(), masks, torch.Generator().manual_seed(4))
    assert x16.dtype == dtype and m16.dtype == torch.int64
    assert torch.equal(m16, m32) and torch.equal(x16, x32.to(dtype))


def test_bad_inputs_raise_clear_errors():
    images, masks = encoded_batch()
    aug = BatchAugment()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        aug(images[:, :2], masks)
    with pytest.raises(ValueError, match="float"):
        aug((images * 255).to(torch.uint8), masks)
    with pytest.raises(ValueError, match="disagree"):
        aug(images, masks[:, :16])
    with pytest.raises(ValueError, match="integer"):
        aug(images, masks.float())
    with pytest.raises(ValueError, match="params are for 2 samples"):
        aug.apply(images, masks, aug.sample_params(2))
    with pytest.raises(ValueError, match="scale"):
        BatchAugment(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="hflip"):
        BatchAugment(hflip=2.0)


def test_normalize():
    x = torch.rand(2, 3, 4, 4)
    y = normalize(x, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    assert torch.allclose(y[:, 0], (x[:, 0] - 0.5) / 0.25) and torch.allclose(
        y[:, 2], x[:, 2] - 0.5
    )
    with pytest.raises(ValueError, match="one mean and std per channel"):
        normalize(x, mean=(0.5,), std=(0.5,))


@requires_cuda
def test_cuda_matches_cpu():
    images, masks = encoded_batch()
    aug = BatchAugment(image_interpolation="nearest")
    xc, mc = aug(images, masks, torch.Generator().manual_seed(0))
    xg, mg = aug(images.cuda(), masks.cuda(), torch.Generator().manual_seed(0))
    assert xg.is_cuda and mg.is_cuda
    assert (mg.cpu() != mc).float().mean() < 1e-3
    assert (
        torch.allclose(xg.cpu(), xc, atol=1e-4)
        or (xg.cpu() - xc).abs().gt(1e-4).float().mean() < 1e-3
    )


# --------------------------------------------------------------------------- kornia


def kornia_seq(colour: bool = False, resample: str = "bilinear"):
    KA = pytest.importorskip("kornia.augmentation")
    ops = [
        KA.RandomHorizontalFlip(p=0.5),
        KA.RandomAffine(
            degrees=20, translate=(0.15, 0.15), scale=(0.8, 1.25), p=1.0, resample=resample
        ),
        KA.RandomRotation(degrees=10.0, p=0.5, resample=resample),
    ]
    if colour:
        ops.append(KA.ColorJitter(0.2, 0.2, 0.2, 0.02, p=1.0))
    return KA.AugmentationSequential(*ops, data_keys=["input", "mask"])


@pytest.mark.parametrize(
    ("resample", "min_agree"), [("nearest", 1.0), ("bilinear", BILINEAR_AGREE)]
)
def test_kornia_alignment_and_ignore(resample, min_agree):
    images, masks = encoded_batch(seed=11)
    aug = make_augment(kornia_seq(resample=resample))
    assert isinstance(aug, KorniaAugment)
    x, m = aug(images, masks, torch.Generator().manual_seed(0))
    assert x.shape == images.shape and m.shape == masks.shape
    _, n_ignored = check_alignment(x, m, min_agree=min_agree)
    assert n_ignored > 0
    assert not torch.equal(m, masks)


def test_kornia_seeding_and_global_rng_untouched():
    images, masks = encoded_batch()
    aug = KorniaAugment(kornia_seq(colour=True))
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = aug(images, masks, torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), before)
    b = aug(images, masks, torch.Generator().manual_seed(5))
    c = aug(images, masks, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[1].dtype == torch.int64
    assert (((a[1] >= 0) & (a[1] < K)) | (a[1] == IGNORE)).all()


def test_kornia_half_precision_roundtrip():
    images, masks = encoded_batch()
    x, m = KorniaAugment(kornia_seq())(images.half(), masks, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float16 and m.dtype == torch.int64


# --------------------------------------------------------------------------- albumentations


def albu_compose(colour: bool = False, interpolation: int = 1):
    """Flip, affine (scale, shift, rotate) and rot90; ``interpolation`` is OpenCV's flag
    for the image (1 = INTER_LINEAR, 0 = INTER_NEAREST)."""
    A = pytest.importorskip("albumentations")
    ops = [
        A.HorizontalFlip(p=0.5),
        A.Affine(
            scale=(0.8, 1.25),
            translate_percent=(-0.15, 0.15),
            rotate=(-20, 20),
            interpolation=interpolation,
            p=1.0,
        ),
        A.RandomRotate90(p=0.5),
    ]
    if colour:
        ops.append(A.ColorJitter(0.2, 0.2, 0.2, 0.02, p=1.0))
    return A.Compose(ops)


@pytest.mark.parametrize(
    ("image_dtype", "interpolation", "min_agree"),
    [("float32", 0, 1.0), ("float32", 1, BILINEAR_AGREE), ("uint8", 1, BILINEAR_AGREE)],
)
def test_albumentations_alignment_and_ignore(image_dtype, interpolation, min_agree):
    images, masks = encoded_batch(seed=12)
    compose = albu_compose(interpolation=interpolation)
    aug = AlbumentationsAugment(compose, image_dtype=image_dtype)
    x, m = aug(images, masks, torch.Generator().manual_seed(0))
    assert x.shape == images.shape and x.dtype == images.dtype and m.shape == masks.shape
    _, n_ignored = check_alignment(x, m, min_agree=min_agree)
    assert n_ignored > 0
    assert not torch.equal(m, masks)


def test_albumentations_seeding_and_dispatch():
    images, masks = encoded_batch()
    aug = make_augment(albu_compose(colour=True))
    assert isinstance(aug, AlbumentationsAugment)
    a = aug(images, masks, torch.Generator().manual_seed(5))
    b = aug(images, masks, torch.Generator().manual_seed(5))
    c = aug(images, masks, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # per-sample randomness inside one batch
    assert len({tuple(s.flatten().tolist()) for s in a[1]}) == images.shape[0]


def test_albumentations_rejects_variable_sizes_and_wide_labels():
    A = pytest.importorskip("albumentations")
    images, masks = encoded_batch()
    aug = AlbumentationsAugment(
        A.Compose([A.OneOf([A.RandomCrop(16, 16), A.RandomCrop(24, 24)], p=1.0)])
    )
    with pytest.raises(ValueError, match="different sizes"):
        for s in range(10):
            aug(images, masks, torch.Generator().manual_seed(s))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        AlbumentationsAugment(albu_compose())(images, masks + 300)


# --------------------------------------------------------------------------- make_augment


def test_make_augment_dispatch():
    assert make_augment(None) is None
    assert make_augment("none") is None
    assert isinstance(make_augment("default"), BatchAugment)
    custom = BatchAugment(rotate=None)
    assert make_augment(custom) is custom

    def fn(images, masks, generator):
        return images, masks

    assert make_augment(fn) is fn
    assert make_augment(lambda i, m, generator=None: (i, m)) is not None


def test_make_augment_wraps_single_transforms():
    KA = pytest.importorskip("kornia.augmentation")
    A = pytest.importorskip("albumentations")
    k = make_augment(KA.RandomHorizontalFlip(p=1.0))
    assert isinstance(k, KorniaAugment)
    images, masks = encoded_batch()
    x, m = k(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(m, masks.flip(-1)) and torch.allclose(x, images.flip(-1))
    a = make_augment(A.HorizontalFlip(p=1.0))
    assert isinstance(a, AlbumentationsAugment)
    x, m = a(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(m, masks.flip(-1)) and torch.allclose(x, images.flip(-1))


def test_make_augment_errors():
    with pytest.raises(TypeError) as err:
        make_augment(42)
    for word in ("default", "kornia", "albumentations", "callable", "None"):
        assert word in str(err.value)
    with pytest.raises(TypeError, match=r"fn\(images, masks, generator\)"):
        make_augment(lambda images: images)
    with pytest.raises(ValueError, match="unknown augment name 'fancy'"):
        make_augment("fancy")


def test_missing_optional_dependency_message(monkeypatch):
    monkeypatch.setattr(adapters_mod, "_KORNIA", RequirementCache("kornia>=999"))
    monkeypatch.setattr(adapters_mod, "_ALBUMENTATIONS", RequirementCache("albumentations>=999"))
    with pytest.raises(ModuleNotFoundError, match=r'pip install "dgan-data\[augment\]"'):
        KorniaAugment(object())
    with pytest.raises(ModuleNotFoundError, match=r'pip install "dgan-data\[augment\]"'):
        AlbumentationsAugment(object())
