"""Review of the augmentation adapters: masks are never resampled by interpolation, and
``ignore_index`` is an int (a float was truncated into a class id)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from dgan_data.augment import AlbumentationsAugment, BatchAugment, KorniaAugment

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
KA = pytest.importorskip("kornia.augmentation")
A = pytest.importorskip("albumentations")
cv2 = pytest.importorskip("cv2")


def _two_class_masks() -> torch.Tensor:
    masks = torch.zeros(2, 24, 24, dtype=torch.long)
    masks[:, :, 12:] = 4  # classes 0 and 4 only: 1, 2, 3 can only come from blending
    return masks


def test_kornia_bilinear_mask_resampling_is_refused() -> None:
    from kornia.constants import DataKey, Resample

    for extra in (
        {DataKey.MASK: {"resample": Resample.BILINEAR, "align_corners": True}},
        {"mask": {"resample": "bicubic"}},
    ):
        seq = KA.AugmentationSequential(
            KA.RandomAffine(30.0, p=1.0), data_keys=["input", "mask"], extra_args=extra
        )
        with pytest.raises(ValueError, match="resamples masks with resample="):
            KorniaAugment(seq)


def test_kornia_nearest_masks_keep_only_real_ids() -> None:
    from kornia.constants import DataKey, Resample

    seq = KA.AugmentationSequential(
        KA.RandomAffine(30.0, scale=(0.7, 1.3), p=1.0),
        data_keys=["input", "mask"],
        extra_args={DataKey.MASK: {"resample": Resample.NEAREST, "align_corners": None}},
    )
    aug = KorniaAugment(seq)  # explicit nearest is accepted
    _, masks = aug(torch.rand(2, 3, 24, 24), _two_class_masks(), torch.Generator().manual_seed(0))
    assert set(masks.unique().tolist()) <= {0, 4, 255}


@pytest.mark.parametrize("flag", [cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA])
def test_albumentations_interpolating_mask_transform_is_refused(flag: int) -> None:
    nested = A.Compose(
        [A.HorizontalFlip(p=0.5), A.OneOf([A.Rotate(limit=30, p=1.0, mask_interpolation=flag)])]
    )
    with pytest.raises(ValueError, match=r"compose\[1\]\[0\] \(Rotate\) resamples masks"):
        AlbumentationsAugment(nested)


def test_albumentations_nearest_pipeline_keeps_only_real_ids() -> None:
    compose = A.Compose(
        [
            A.Rotate(limit=30, p=1.0),  # default mask_interpolation: nearest
            A.Affine(scale=1.3, p=1.0, mask_interpolation=cv2.INTER_NEAREST),
        ]
    )
    aug = AlbumentationsAugment(compose)
    _, masks = aug(torch.rand(2, 3, 24, 24), _two_class_masks(), torch.Generator().manual_seed(0))
    assert set(masks.unique().tolist()) <= {0, 4, 255}


def test_exported_dataset_refuses_interpolating_albumentations(tmp_path, reference_dir) -> None:
    from dgan_data import load_generator
    from dgan_data.export import ExportedDataset, export_dataset
    from dgan_data.interpreter import Interpreter, feature_layout

    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    interp = Interpreter(feature_layout(G), 3, num_models=2, label_size=(32, 32), seed=0)
    models = {
        "generator": str(G.save(tmp_path / "g.safetensors")),
        "interpreter": str(interp.save(tmp_path / "i.safetensors")),
    }
    out = tmp_path / "data"
    export_dataset(None, 2, out, device="cpu", batch_size=2, progress=False, **models)
    linear = A.Compose([A.Resize(16, 16, mask_interpolation=cv2.INTER_LINEAR)])
    with pytest.raises(ValueError, match=r"ExportedDataset.*\(Resize\) resamples masks"):
        ExportedDataset(out, albumentations=linear)
    nearest = ExportedDataset(out, albumentations=A.Compose([A.Resize(16, 16)]))
    image, mask = nearest[0]
    assert image.shape == (3, 16, 16) and mask.shape == (16, 16)


@pytest.mark.parametrize("bad", [2.7, True, "255", None])
def test_ignore_index_must_be_an_int(bad: object) -> None:
    seq = KA.AugmentationSequential(KA.RandomHorizontalFlip(p=1.0), data_keys=["input", "mask"])
    for build in (
        lambda: BatchAugment(ignore_index=bad),
        lambda: KorniaAugment(seq, ignore_index=bad),
        lambda: AlbumentationsAugment(A.Compose([A.HorizontalFlip()]), ignore_index=bad),
    ):
        with pytest.raises(ValueError, match="ignore_index must be an int"):
            build()


def test_integer_ignore_index_still_marks_out_of_frame_pixels() -> None:
    aug = AlbumentationsAugment(
        A.Compose([A.Affine(translate_px={"x": 6, "y": 0}, p=1.0)]), ignore_index=np.int64(200)
    )
    _, masks = aug(torch.rand(1, 3, 16, 16), torch.zeros(1, 16, 16, dtype=torch.long))
    assert (masks[0, :, :6] == 200).all() and (masks[0, :, 6:] == 0).all()


@pytest.mark.parametrize("name", ["RandomThinPlateSpline", "RandomFisheye"])
def test_kornia_augmentations_without_mask_support_are_refused_when_built(name: str) -> None:
    if name == "RandomFisheye":
        aug = KA.RandomFisheye(
            torch.tensor([-0.3, 0.3]), torch.tensor([-0.3, 0.3]), torch.tensor([0.9, 1.0]), p=1.0
        )
    else:
        aug = KA.RandomThinPlateSpline(p=1.0)
    seq = KA.AugmentationSequential(
        KA.RandomHorizontalFlip(p=0.5), aug, data_keys=["input", "mask"]
    )
    with pytest.raises(ValueError, match=f"holds {name}, which kornia cannot apply to masks"):
        KorniaAugment(seq)
