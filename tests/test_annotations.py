"""Annotation folders: in-memory checks, save/load, sampling, validation, release import."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dgan_data.annotations import (
    CROPS,
    AnnotationError,
    Annotations,
    import_datasetgan_release,
    sample_annotation_folder,
)
from dgan_data.conventions import generator_to_uint8 as to_uint8_image
from dgan_data.generators.base import Generator
from dgan_data.seeds import z_from_seeds

CLASSES = ["background", "body", "wheel"]


class TinyGenerator(Generator):
    """A linear-ish generator with the protocol's attributes: w -> tanh(A w) image."""

    arch = "tiny-test"

    def __init__(
        self,
        z_dim: int = 8,
        w_dim: int = 6,
        num_ws: int = 3,
        height: int = 12,
        width: int = 16,
        seed: int = 0,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.resolution = (height, width)
        self.feature_channels = [3]
        self.feature_resolutions = [(height, width)]
        self._seed = seed
        g = torch.Generator().manual_seed(seed)
        self.map = nn.Parameter(torch.randn(z_dim, w_dim, generator=g) / math.sqrt(z_dim))
        self.layer_scale = nn.Parameter(1 + 0.1 * torch.randn(num_ws, 1, generator=g))
        out = 3 * height * width
        self.synth = nn.Parameter(torch.randn(num_ws * w_dim, out, generator=g) / math.sqrt(w_dim))
        self.register_buffer("w_avg", 0.1 * torch.randn(w_dim, generator=g))

    def _mapping(self, z: torch.Tensor) -> torch.Tensor:
        w = torch.tanh(z @ self.map)
        return w.unsqueeze(1) * self.layer_scale

    def average_w(self) -> torch.Tensor:
        return self.w_avg

    def synthesize(self, w, noise="const", generator=None):
        w = self.check_w(w)
        x = torch.tanh(w.flatten(1) @ self.synth).view(-1, 3, *self.resolution)
        return x, [x]

    @property
    def config(self) -> dict[str, Any]:
        h, w = self.resolution
        return {
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "num_ws": self.num_ws,
            "height": h,
            "width": w,
            "seed": self._seed,
        }


@pytest.fixture
def G() -> TinyGenerator:  # noqa: N802 - the paper's name for the generator
    return TinyGenerator()


def random_masks(n: int, h: int, w: int, k: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, k, size=(n, h, w)).astype(np.uint8)
    masks[:, 0, 0] = 255  # every mask has an ignored pixel
    return masks


def annotate(folder: Path, h: int, w: int, seed: int = 0) -> None:
    """Play annotator: write a mask for every image listed in the manifest."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for k, entry in enumerate(manifest["samples"]):
        mask = random_masks(1, h, w, seed=seed + k)[0]
        Image.fromarray(mask, mode="L").save(folder / entry["mask"])


def sampled_folder(G: TinyGenerator, folder: Path, num: int = 4, **kwargs) -> Path:
    sample_annotation_folder(
        G, num, folder, seed=10, truncation_psi=0.7, class_names=CLASSES, batch_size=3, **kwargs
    )
    annotate(folder, *G.resolution)
    return folder


def problems_of(err: pytest.ExceptionInfo) -> str:
    assert isinstance(err.value, AnnotationError)
    return "\n".join(err.value.problems)


# ------------------------------------------------------------------ latents
def test_z_from_seeds_independent_of_batch():
    together = z_from_seeds([5, 7, 2**40], 16)
    assert together.shape == (3, 16) and together.dtype == torch.float32
    alone = torch.cat([z_from_seeds([s], 16) for s in (5, 7, 2**40)])
    assert torch.equal(together, alone)
    reordered = z_from_seeds(torch.tensor([2**40, 5]), 16)
    assert torch.equal(reordered[0], together[2]) and torch.equal(reordered[1], together[0])
    expected = torch.randn(16, generator=torch.Generator().manual_seed(7))
    assert torch.equal(together[1], expected)
    assert not torch.equal(together[0], together[1])


@pytest.mark.parametrize("bad", [[-1], [2**63], [1.5], [True], torch.tensor([0.5])])
def test_z_from_seeds_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError)):
        z_from_seeds(bad, 4)


def test_to_uint8_image_matches_release_conversion():
    x = torch.tensor([-1.5, -1.0, -0.99, 0.0, 0.5, 1.0, 2.0]).view(1, 1, 1, 7).expand(1, 3, 1, 7)
    out = to_uint8_image(x)
    assert out.shape == (1, 1, 7, 3) and out.dtype == torch.uint8
    # floor(x * 127.5 + 128) clipped: the NVIDIA / DatasetGAN release conversion.
    assert out[0, 0, :, 0].tolist() == [0, 0, 1, 128, 191, 255, 255]


# --------------------------------------------------------------- in memory
def test_from_arrays_normalises_and_validates():
    masks = random_masks(2, 4, 6).astype(np.int64)
    ann = Annotations.from_arrays(masks=masks, class_names=CLASSES, seeds=[3, 4])
    assert ann.masks.dtype == torch.uint8 and ann.crop is None
    assert ann.ids == ["00000", "00001"] and ann.latent_kind == "seed" and len(ann) == 2

    car = Annotations.from_arrays(
        masks=random_masks(1, 384, 512), class_names=CLASSES, seeds=[0], crop="car"
    )
    assert car.crop == CROPS["car"] == (64, 0, 384, 512)

    bad = masks.copy()
    bad[1, 2, 2] = 7
    with pytest.raises(AnnotationError) as err:
        Annotations.from_arrays(masks=bad, class_names=CLASSES, seeds=[3, 4])
    assert "masks/00001.png" in problems_of(err) and "7" in problems_of(err)

    # Several problems at once, each reported.
    with pytest.raises(AnnotationError) as err:
        Annotations.from_arrays(masks=bad, class_names=CLASSES, w=torch.zeros(3, 2, 4))
    text = problems_of(err)
    assert "masks/00001.png" in text and "w must be (N=2" in text

    cases = [
        ({"masks": masks.astype(np.float32), "seeds": [1, 2]}, "integer class ids"),
        ({"masks": masks[0], "seeds": [1]}, "(N, H, W)"),
        ({"masks": masks}, "no latents"),
        ({"masks": masks, "seeds": [1]}, "seeds has 1 entries"),
        ({"masks": masks, "z": torch.zeros(2, 4), "seeds": [1, 2]}, "z differs"),
        ({"masks": masks, "seeds": [1, 2], "images": torch.zeros(2, 3, 4, 6)}, "uint8"),
        (
            {"masks": masks, "seeds": [1, 2], "images": torch.zeros(2, 3, 5, 6, dtype=torch.uint8)},
            "mask size 4x6",
        ),
        ({"masks": masks, "seeds": [1, 2], "crop": (0, 0, 4, 5)}, "mask size"),
        ({"masks": masks, "seeds": [1, 2], "noise": "random"}, "noise"),
        ({"masks": masks, "seeds": [1, 2], "palette": [[0, 0, 0]]}, "palette"),
        ({"masks": masks, "seeds": [1, 2], "ids": ["a", "a"]}, "duplicate ids"),
    ]
    for kwargs, message in cases:
        with pytest.raises(AnnotationError) as err:
            Annotations.from_arrays(class_names=CLASSES, **kwargs)
        assert message in str(err.value), (kwargs.keys(), str(err.value))
    with pytest.raises(AnnotationError, match="duplicate class names a"):
        Annotations.from_arrays(masks=masks, class_names=["a", "a", "b"], seeds=[1, 2])


def test_masks_may_be_a_uniform_downscale_of_the_frame():
    masks = random_masks(1, 6, 8)
    images = torch.zeros(1, 3, 12, 16, dtype=torch.uint8)
    Annotations.from_arrays(masks=masks, class_names=CLASSES, seeds=[0], images=images)
    with pytest.raises(AnnotationError, match="mask size 6x8"):
        Annotations.from_arrays(
            masks=masks, class_names=CLASSES, seeds=[0], images=images[..., :14]
        )


def test_latents_w_from_seeds_z_and_truncation_center(G):
    masks = random_masks(3, 12, 16)
    seeds = [1, 2, 3]
    by_seed = Annotations.from_arrays(
        masks=masks, class_names=CLASSES, seeds=seeds, truncation_psi=0.5, truncation_cutoff=2
    )
    expected = G.mapping(z_from_seeds(seeds, G.z_dim), 0.5, 2)
    assert torch.allclose(by_seed.latents_w(G), expected)
    assert torch.allclose(expected[:, 2], G.mapping(z_from_seeds(seeds, G.z_dim))[:, 2])

    by_w = Annotations.from_arrays(masks=masks, class_names=CLASSES, w=expected)
    assert torch.equal(by_w.latents_w(G), expected)

    center = torch.full((G.num_ws, G.w_dim), 0.25)
    by_center = Annotations.from_arrays(
        masks=masks, class_names=CLASSES, seeds=seeds, truncation_psi=0.5, truncation_center=center
    )
    raw = G.mapping(z_from_seeds(seeds, G.z_dim))
    assert torch.allclose(by_center.latents_w(G), center + 0.5 * (raw - center))

    wrong = Annotations.from_arrays(masks=masks, class_names=CLASSES, w=torch.zeros(3, 2, 6))
    with pytest.raises(AnnotationError, match="generator expects"):
        wrong.latents_w(G)


# ------------------------------------------------------------------ on disk
def test_save_load_round_trip(tmp_path, G):
    masks = random_masks(3, 6, 8)
    ann = Annotations.from_arrays(
        masks=masks,
        class_names=CLASSES,
        seeds=[4, 5, 6],
        truncation_psi=0.7,
        truncation_cutoff=2,
        truncation_center=torch.randn(3, 6),
        generator_fingerprint=G.fingerprint(),
        generator_description=G.describe(),
        crop=(2, 0, 6, 8),
        palette=[(0, 0, 0), (255, 0, 0), (0, 255, 0)],
        ids=["car-a", "car-b", "car-c"],
    ).with_generated_images(G)
    ann = Annotations.from_arrays(
        **{
            **{
                k: getattr(ann, k)
                for k in (
                    "masks",
                    "class_names",
                    "seeds",
                    "truncation_psi",
                    "truncation_cutoff",
                    "truncation_center",
                    "images",
                    "generator_fingerprint",
                    "generator_description",
                    "crop",
                    "palette",
                    "ids",
                )
            },
            "w": ann.latents_w(G),
        }
    )
    ann.save(tmp_path / "ann")
    back = Annotations.load(tmp_path / "ann")

    assert torch.equal(back.masks, ann.masks)
    assert torch.equal(back.w, ann.w) and back.w.dtype == torch.float32
    assert torch.equal(back.images, ann.images)
    assert torch.equal(back.truncation_center, ann.truncation_center)
    assert back.seeds == [4, 5, 6] and back.ids == ["car-a", "car-b", "car-c"]
    assert back.class_names == CLASSES and back.palette == ann.palette
    assert back.crop == (2, 0, 6, 8)
    assert (back.truncation_psi, back.truncation_cutoff) == (0.7, 2)
    assert back.generator_fingerprint == G.fingerprint()
    assert back.generator_description == json.loads(json.dumps(G.describe()))
    back.validate(G)

    manifest = json.loads((tmp_path / "ann" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["mask_resolution"] == [6, 8]
    assert manifest["samples"][1] == {
        "id": "car-b",
        "image": "images/car-b.png",
        "mask": "masks/car-b.png",
        "seed": 5,
        "latent": "latents/car-b.npy",
        "latent_kind": "w",
    }
    with Image.open(tmp_path / "ann" / "masks" / "car-a.png") as im:
        assert im.mode == "L"
    assert not list((tmp_path / "ann").rglob("*.tmp"))


def test_round_trip_z_only_without_images(tmp_path):
    z = torch.randn(2, 8)
    ann = Annotations.from_arrays(masks=random_masks(2, 5, 5), class_names=CLASSES, z=z)
    ann.save(tmp_path)
    back = Annotations.load(tmp_path)
    assert torch.equal(back.z, z) and back.w is None and back.images is None
    assert back.seeds is None and back.latent_kind == "z"


def test_palette_mode_mask_is_read_as_class_ids(tmp_path):
    ann = Annotations.from_arrays(masks=random_masks(1, 5, 5), class_names=CLASSES, seeds=[0])
    ann.save(tmp_path)
    p_mode = Image.fromarray(ann.masks[0].numpy(), mode="L").convert("P")
    p_mode.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [9] * (3 * 253))
    p_mode.save(tmp_path / "masks" / "00000.png")
    assert torch.equal(Annotations.load(tmp_path).masks, ann.masks)


def test_sample_folder_regenerates_and_validates(tmp_path, G):
    folder = tmp_path / "s"
    result = sample_annotation_folder(
        G, 5, folder, seed=10, truncation_psi=0.7, class_names=CLASSES, batch_size=2
    )
    assert result.ids == ["00000", "00001", "00002", "00003", "00004"]
    assert result.seeds == [10, 11, 12, 13, 14] and result.written == result.ids
    assert sorted(p.name for p in (folder / "images").iterdir()) == [f"{i}.png" for i in result.ids]
    assert (folder / "masks").is_dir() and not any((folder / "masks").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "masks/<id>.png" in manifest["note"]
    assert manifest["generator"]["fingerprint"] == G.fingerprint()
    assert manifest["truncation"] == {"psi": 0.7, "cutoff": None, "center": None}
    w = np.load(folder / "latents" / "00003.npy")
    expected = G.mapping(z_from_seeds([13], G.z_dim), 0.7)[0]
    assert w.dtype == np.float32 and torch.allclose(torch.from_numpy(w), expected)

    annotate(folder, *G.resolution)
    ann = Annotations.load(folder)
    assert ann.seeds == result.seeds and ann.latent_kind == "w"
    checks = ann.validate(G)
    assert len(checks) == 5 and all(c.ok and c.max_diff <= 1 for c in checks)

    # Seeds alone regenerate the same images as the stored w.
    by_seed = Annotations.from_arrays(
        masks=ann.masks, class_names=CLASSES, seeds=ann.seeds, truncation_psi=0.7, images=ann.images
    )
    by_seed.validate(G, tolerance=0)


def test_validate_names_a_tampered_image(tmp_path, G):
    folder = sampled_folder(G, tmp_path / "s")
    path = folder / "images" / "00002.png"
    pixels = np.array(Image.open(path))
    pixels[3, 4, 1] = (int(pixels[3, 4, 1]) + 128) % 256
    Image.fromarray(pixels).save(path)
    ann = Annotations.load(folder)
    with pytest.raises(AnnotationError) as err:
        ann.validate(G)
    assert problems_of(err).count("images/") == 1 and "images/00002.png" in problems_of(err)
    assert "max abs diff 128" in problems_of(err) and err.value.where == str(folder)
    ann.validate(G, tolerance=128)  # the tolerance is configurable
    with pytest.raises(AnnotationError):
        ann.validate(G, tolerance=255, mean_tolerance=0.0)


def test_validate_detects_a_different_generator(tmp_path, G):
    folder = sampled_folder(G, tmp_path / "s")
    other = TinyGenerator(seed=1)
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder).validate(other)
    assert "manifest.json" in problems_of(err) and "fingerprint" in problems_of(err)
    with pytest.raises(AnnotationError, match="generator makes"):
        Annotations.load(folder).validate(TinyGenerator(height=24, width=32))


def _break_mask_size(folder: Path) -> str:
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "masks" / "00001.png")
    return "masks/00001.png"


def _break_class_id(folder: Path) -> str:
    mask = np.array(Image.open(folder / "masks" / "00002.png"))
    mask[1, 1] = 3
    Image.fromarray(mask).save(folder / "masks" / "00002.png")
    return "masks/00002.png"


def _break_missing_mask(folder: Path) -> str:
    (folder / "masks" / "00003.png").unlink()
    return "masks/00003.png"


def _break_rgb_mask(folder: Path) -> str:
    Image.open(folder / "masks" / "00000.png").convert("RGB").save(folder / "masks" / "00000.png")
    return "masks/00000.png"


def _break_corrupt_png(folder: Path) -> str:
    path = folder / "images" / "00001.png"
    path.write_bytes(path.read_bytes()[:60])
    return "images/00001.png"


def _break_latent_shape(folder: Path) -> str:
    np.save(folder / "latents" / "00002.npy", np.zeros((2, 6), np.float32))
    return "latents/00002.npy"


def _break_latent_dtype(folder: Path) -> str:
    np.save(folder / "latents" / "00000.npy", np.zeros((3, 6), np.float64))
    return "latents/00000.npy"


def _break_latent_file(folder: Path) -> str:
    (folder / "latents" / "00003.npy").write_bytes(b"not numpy")
    return "latents/00003.npy"


def _break_duplicate_id(folder: Path) -> str:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["samples"][1]["id"] = "00000"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return "duplicate id"


def _break_manifest_field(folder: Path) -> str:
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["class_names"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return "'class_names' is missing"


BREAKERS = [
    _break_mask_size,
    _break_class_id,
    _break_missing_mask,
    _break_rgb_mask,
    _break_corrupt_png,
    _break_latent_shape,
    _break_latent_dtype,
    _break_latent_file,
    _break_duplicate_id,
    _break_manifest_field,
]


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory) -> Path:
    return sampled_folder(TinyGenerator(), tmp_path_factory.mktemp("good") / "s")


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__[7:])
def test_load_names_the_broken_file(tmp_path, good_folder, breaker):
    folder = tmp_path / "s"
    shutil.copytree(good_folder, folder)
    Annotations.load(folder)  # intact copy loads
    expected = breaker(folder)
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder)
    assert expected in problems_of(err)
    assert str(folder) in str(err.value)


def test_load_reports_every_problem_at_once(tmp_path, good_folder):
    folder = tmp_path / "s"
    shutil.copytree(good_folder, folder)
    broken = [
        _break_mask_size(folder),
        _break_latent_shape(folder),
        _break_missing_mask(folder),
        _break_corrupt_png(folder),
    ]
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder)
    text = problems_of(err)
    for name in broken:
        assert name in text
    assert len(err.value.problems) >= len(broken)


def test_load_before_masks_lists_every_missing_mask(tmp_path, G):
    folder = tmp_path / "s"
    sample_annotation_folder(G, 3, folder, class_names=CLASSES)
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder)
    assert err.value.problems[:3] == [f"masks/0000{i}.png: missing" for i in range(3)]
    assert len(err.value.problems) == 3  # the advice is not counted as a fourth problem
    assert "3 of 3 masks missing" in err.value.advice
    assert "3 problems with the annotations" in str(err.value)
    assert str(err.value).endswith(err.value.advice)

    sample_annotation_folder(G, 2, tmp_path / "t")  # no class names yet
    annotate(tmp_path / "t", *G.resolution)
    with pytest.raises(AnnotationError, match="class_names"):
        Annotations.load(tmp_path / "t")


def test_load_refuses_paths_outside_the_folder(tmp_path, good_folder):
    folder = tmp_path / "s"
    shutil.copytree(good_folder, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["samples"][0]["mask"] = "../elsewhere.png"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AnnotationError, match="must stay inside"):
        Annotations.load(folder)


def test_sample_folder_resumes(tmp_path, G):
    folder = tmp_path / "s"
    sample_annotation_folder(G, 4, folder, seed=3, class_names=CLASSES)
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    (folder / "images" / "00001.png").unlink()
    (folder / "latents" / "00002.npy").write_bytes(b"")  # an interrupted write
    np.save(folder / "latents" / "00003.npy", np.zeros((G.num_ws, G.w_dim), np.float32))
    again = sample_annotation_folder(G, 4, folder, seed=3)
    assert again.written == ["00001", "00002", "00003"] and again.skipped == ["00000"]
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before

    more = sample_annotation_folder(G, 6, folder, seed=3)
    assert more.written == ["00004", "00005"] and more.seeds == [3, 4, 5, 6, 7, 8]
    with pytest.raises(AnnotationError, match="truncation psi"):
        sample_annotation_folder(G, 4, folder, seed=3, truncation_psi=0.5)
    with pytest.raises(ValueError, match="palette needs class_names"):
        sample_annotation_folder(G, 4, tmp_path / "p", palette=[(0, 0, 0)])
    with pytest.raises(AnnotationError, match="seed"):
        sample_annotation_folder(G, 4, folder, seed=4)
    with pytest.raises(AnnotationError, match="fingerprint"):
        sample_annotation_folder(TinyGenerator(seed=2), 4, folder, seed=3)


def test_sample_folder_with_crop(tmp_path, G):
    folder = tmp_path / "s"
    sample_annotation_folder(G, 2, folder, class_names=CLASSES, crop=(2, 0, 8, 16))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["mask_resolution"] == [8, 16] and manifest["image_resolution"] == [12, 16]
    annotate(folder, 8, 16)
    ann = Annotations.load(folder)
    assert ann.crop == (2, 0, 8, 16)
    ann.validate(G)
    with pytest.raises(ValueError, match="does not fit"):
        sample_annotation_folder(G, 2, tmp_path / "t", crop="car")


# -------------------------------------------------------- DatasetGAN release
def write_release(
    folder: Path,
    masks: list[np.ndarray],
    latents: np.ndarray,
    avg: np.ndarray | None = None,
    ext: str = "jpg",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, mask in enumerate(masks):
        np.save(folder / f"image_mask{i}.npy", mask)
        pixels = rng.integers(0, 256, size=(*mask.shape, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image_{i}.{ext}")
    np.save(folder / "latent_stylegan1.npy", latents)
    if avg is not None:
        np.save(folder / "avg_latent_stylegan1.npy", avg)
    return folder


def test_import_release_car_layout_and_small_classes(tmp_path, G):
    # Car convention: 384x512 labels, rows 64..448 of the 512x512 image.
    masks = [np.zeros((384, 512), np.int64) for _ in range(3)]
    masks[0][2:12, 2:12] = 1  # 100 px: kept
    masks[0][20:22, 0:5] = 2  # 10 px: tiny
    masks[1][:, 16:] = 2  # 384 * 496 px
    masks[1][0, 0:3] = 1  # 3 px: tiny
    masks[2][5:10, 5:10] = 255  # ignore stays ignore
    latents = np.random.default_rng(1).standard_normal((4, G.z_dim))  # float64, one extra
    avg = np.random.default_rng(2).standard_normal((G.num_ws, G.w_dim)).astype(np.float32)
    folder = write_release(tmp_path / "car", masks, latents, avg)

    raw = import_datasetgan_release(folder, class_names=CLASSES, crop="car")
    assert len(raw) == 3 and raw.latent_kind == "z" and raw.crop == (64, 0, 384, 512)
    assert raw.truncation_psi == 0.7 and raw.truncation_cutoff is None
    assert raw.images is None and raw.z.dtype == torch.float32
    assert torch.allclose(raw.z, torch.from_numpy(latents[:3]).float())
    assert torch.equal(raw.truncation_center, torch.from_numpy(avg))
    for i in range(3):
        assert np.array_equal(raw.masks[i].numpy(), masks[i])

    cleaned = import_datasetgan_release(
        folder, class_names=CLASSES, crop="car", min_class_pixels=30
    )
    expected0 = masks[0].copy()
    expected0[20:22, 0:5] = 0  # the release relabels to background
    assert np.array_equal(cleaned.masks[0].numpy(), expected0)
    assert (cleaned.masks[1] == 1).sum() == 0 and (cleaned.masks[1] == 2).sum() == 384 * 496
    assert np.array_equal(cleaned.masks[2].numpy(), masks[2])

    ignored = import_datasetgan_release(
        folder, class_names=CLASSES, crop="car", min_class_pixels=30, small_class_value=255
    )
    assert (ignored.masks[0][20:22, 0:5] == 255).all()
    assert (ignored.masks[1][0, 0:3] == 255).all()

    two = import_datasetgan_release(
        folder, class_names=CLASSES, num_images=2, crop=(1, 2, 384, 512)
    )
    assert len(two) == 2 and two.crop == (1, 2, 384, 512)
    with pytest.raises(AnnotationError, match="does not match the crop 3x4") as err:
        import_datasetgan_release(folder, class_names=CLASSES, crop=(1, 2, 3, 4))
    assert err.value.where == str(folder)
    with pytest.raises(ValueError, match="small_class_value"):
        import_datasetgan_release(
            folder, class_names=CLASSES, min_class_pixels=30, small_class_value=7
        )


def test_import_release_mask_resize_and_png_images(tmp_path):
    mask = np.zeros((8, 8), np.int64)
    mask[:4] = 1
    folder = write_release(tmp_path / "r", [mask], np.zeros((1, 8)), ext="png")
    ann = import_datasetgan_release(folder, class_names=CLASSES, mask_size=(4, 4))
    assert ann.mask_resolution == (4, 4)
    assert ann.masks[0].tolist() == [[1] * 4, [1] * 4, [0] * 4, [0] * 4]


def test_import_release_reports_every_problem(tmp_path, G):
    masks = [np.zeros((6, 8), np.int64) for _ in range(4)]
    masks[1][0, 0] = 9  # out of range for 3 classes
    folder = write_release(tmp_path / "bad", masks, np.zeros((3, G.z_dim)))
    np.save(folder / "image_mask2.npy", np.zeros((6, 9), np.int64))  # size differs from image
    (folder / "image_3.jpg").unlink()
    with pytest.raises(AnnotationError) as err:
        import_datasetgan_release(folder, class_names=CLASSES)
    text = problems_of(err)
    assert "image_mask1.npy: class ids 9" in text
    assert "image_mask2.npy: mask is 6x9 but image_2.jpg is 6x8" in text
    assert "image_3.jpg: missing" in text
    assert "latent_stylegan1.npy: holds 3 latents for 4 masks" in text

    (folder / "image_mask1.npy").unlink()
    with pytest.raises(AnnotationError, match=r"image_mask1\.npy"):
        import_datasetgan_release(folder, class_names=CLASSES, require_images=False)


def test_import_release_then_save_validates(tmp_path, G):
    masks = [np.random.default_rng(i).integers(0, 3, (12, 16)) for i in range(2)]
    z = np.random.default_rng(5).standard_normal((2, G.z_dim)).astype(np.float32)
    folder = write_release(tmp_path / "r", masks, z, avg=np.zeros((G.num_ws, G.w_dim), np.float32))
    ann = import_datasetgan_release(folder, class_names=CLASSES).with_generated_images(G)
    ann.save(tmp_path / "ours")
    back = Annotations.load(tmp_path / "ours")
    assert torch.equal(back.z, torch.from_numpy(z)) and back.truncation_psi == 0.7
    checks = back.validate(G, tolerance=0)
    assert len(checks) == 2
    # The stored truncation centre (the release's avg_latent) is what regenerates them.
    w = back.latents_w(G)
    raw = G.mapping(torch.from_numpy(z))
    assert torch.allclose(w, 0.7 * raw)


def test_import_reference_fixture_latents(tmp_path, reference_dir):
    prefix = reference_dir / "datasetgan_stylegan1_64px"
    z = np.load(f"{prefix}.latent_stylegan1.npy")
    masks = [np.zeros((64, 64), np.int64), np.ones((64, 64), np.int64)]
    folder = write_release(tmp_path / "ref", masks, np.zeros((1, 1)))
    ann = import_datasetgan_release(
        folder,
        class_names=["background", "object"],
        latents=f"{prefix}.latent_stylegan1.npy",
        avg_latent=f"{prefix}.avg_latent_stylegan1.npy",
    )
    # The fixture's latent size is 128 (tests/fixtures/reference/README.md).
    assert ann.z.shape == (2, 128) and torch.equal(ann.z, torch.from_numpy(z))
    assert ann.truncation_center.shape == (18, 128)

    # With the DatasetGAN StyleGAN1 port, the latents truncate exactly as the release did
    # (psi 0.7 towards avg_latent on the first max_layer = 7 layers).
    stylegan1 = pytest.importorskip("dgan_data.generators.stylegan1")
    state = torch.load(f"{prefix}.for_g_all.pt", weights_only=True)
    G1 = stylegan1.StyleGAN1Generator.from_datasetgan_state_dict(
        state, np.load(f"{prefix}.avg_latent_stylegan1.npy"), source="fixture"
    )
    expected = torch.load(f"{prefix}.expected.pt", weights_only=True)["w_truncated"]
    w = ann.latents_w(G1)
    assert w.shape == (2, G1.num_ws, 128)
    assert torch.allclose(w, expected[:, : G1.num_ws], atol=1e-4)


# ------------------------------------------------------------------ StyleGAN2
def test_stylegan2_round_trip(tmp_path):
    stylegan2 = pytest.importorskip("dgan_data.generators.stylegan2")
    torch.manual_seed(0)
    G = stylegan2.StyleGAN2Generator(16, style_dim=32, n_mlp=2, channels={4: 16, 8: 16, 16: 8})
    folder = tmp_path / "sg2"
    sample_annotation_folder(
        G, 3, folder, seed=0, truncation_psi=1.0, class_names=CLASSES, batch_size=2
    )
    annotate(folder, 16, 16)
    ann = Annotations.load(folder)
    assert ann.w.shape == (3, G.num_ws, 32)
    checks = ann.validate(G)
    assert all(c.ok for c in checks)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_folder_written_on_cpu_validates_on_cuda(tmp_path):
    stylegan2 = pytest.importorskip("dgan_data.generators.stylegan2")
    torch.manual_seed(0)
    G = stylegan2.StyleGAN2Generator(
        32, style_dim=64, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16}
    )
    folder = tmp_path / "sg2"
    sample_annotation_folder(G, 8, folder, seed=0, truncation_psi=0.7, class_names=CLASSES)
    annotate(folder, 32, 32)
    checks = Annotations.load(folder).validate(G.cuda(), batch_size=3)
    assert len(checks) == 8 and max(c.max_diff for c in checks) <= 2
