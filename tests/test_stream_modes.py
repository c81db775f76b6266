"""Per-sample and whole-batch streams, typed outputs, resume identity and argument checks."""

from __future__ import annotations

import io

import pytest
import torch
from test_stream import random_interpreter, tiny_generator
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from dgan_data.seeds import sample_seed
from dgan_data.stream import DatasetGANStream

K = 5


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def models():
    G = tiny_generator()
    return G, random_interpreter(G)


def make(models, **kw) -> DatasetGANStream:
    G, interp = models
    kw.setdefault("device", "cpu")
    return DatasetGANStream(generator=G, interpreter=interp, **kw)


def take(iterable, n: int) -> list:
    it = iter(iterable)
    return [next(it) for _ in range(n)]


# ---------------------------------------------------------------- per-sample mode
def test_default_items_are_single_samples_batched_by_the_dataloader(models):
    ds = make(models)
    image, mask = next(iter(ds))
    assert image.shape == (3, 16, 16) and mask.shape == (16, 16)
    images, masks = next(iter(DataLoader(ds, batch_size=6)))
    assert images.shape == (6, 3, 16, 16) and masks.shape == (6, 16, 16)
    assert masks.dtype == torch.int64
    # written exactly as in the one-line description: the default batch_size=1 adds a
    # batch axis of one sample, as for every torchvision dataset
    images, masks = next(iter(DataLoader(ds)))
    assert images.shape == (1, 3, 16, 16) and masks.shape == (1, 16, 16)


def test_per_sample_items_are_the_whole_batches_cut_into_samples(models):
    # same candidates per generation step: the same samples, in the same order
    per_sample = make(models, generation_batch=4, output="dict")
    batched = make(models, batch_size=4, output="dict")
    samples = take(per_sample, 12)
    batches = take(batched, 3)
    seeds = [int(s["seed"]) for s in samples]
    assert seeds == torch.cat([b["seed"] for b in batches]).tolist()
    images = torch.stack([s["image"] for s in samples])
    assert torch.equal(images, torch.cat([b["image"] for b in batches]))
    masks = torch.stack([s["mask"] for s in samples])
    assert torch.equal(masks, torch.cat([b["mask"] for b in batches]))


def test_default_generation_batch_is_sized_for_the_device(models):
    ds = make(models)
    assert ds.generation_size(torch.device("cpu")) == 8
    assert ds.generation_size(torch.device("cuda")) == 32
    assert make(models, batch_size=5).generation_size(torch.device("cuda")) == 5


def test_samples_per_epoch_and_len_in_both_modes(models):
    per_sample = make(models, samples_per_epoch=10, generation_batch=4)
    assert len(per_sample) == 10 and len(list(per_sample)) == 10
    batched = make(models, batch_size=4, samples_per_epoch=10)
    assert len(batched) == 2 and len(list(batched)) == 2
    loader = DataLoader(make(models, samples_per_epoch=10, generation_batch=4), batch_size=4)
    assert len(loader) == 3 and [len(m) for _, m in loader] == [4, 4, 2]


def test_workers_draw_disjoint_samples_that_cover_the_epoch(models):
    ds = make(models, samples_per_epoch=12, generation_batch=3, output="dict", drop_uncertain=0.0)
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    seeds = torch.cat([b["seed"] for b in loader]).tolist()
    assert len(seeds) == len(set(seeds)) == 12
    # without filtering, worker w of 2 yields its first 6 candidates: i * 2 + w
    expected = {sample_seed(0, 0, i * 2 + w) for i in range(6) for w in (0, 1)}
    assert set(seeds) == expected


def test_per_sample_resume_mid_unit_continues_exactly(models):
    kw = {"generation_batch": 4, "output": "dict", "augment": "default"}
    reference = [int(s["seed"]) for s in take(make(models, **kw), 11)]
    first = make(models, **kw)
    it = iter(first)
    head = [int(next(it)["seed"]) for _ in range(6)]  # stops inside the second unit
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = make(models, **kw)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    tail = [int(s["seed"]) for s in take(resumed, 5)]
    assert head + tail == reference


def test_identical_seeds_and_images_for_the_same_seed(models):
    a = take(make(models, output="dict"), 5)
    b = take(make(models, output="dict"), 5)
    for x, y in zip(a, b):
        assert int(x["seed"]) == int(y["seed"]) and torch.equal(x["image"], y["image"])


# ---------------------------------------------------------------- typed outputs
def test_outputs_are_typed_for_torchvision_transforms(models):
    sample = next(iter(make(models, output="dict")))
    assert set(sample) == {"image", "mask", "uncertainty", "seed"}
    assert isinstance(sample["image"], tv_tensors.Image)
    assert isinstance(sample["mask"], tv_tensors.Mask)
    assert sample["seed"].dtype == torch.int64 and sample["uncertainty"].ndim == 0
    image, mask = next(iter(make(models, batch_size=2)))
    assert isinstance(image, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)


def test_transforms_v2_resize_masks_with_nearest_interpolation(models):
    compose = v2.Compose(
        [v2.RandomResizedCrop(24, scale=(0.3, 0.8), antialias=True), v2.RandomHorizontalFlip(p=1.0)]
    )
    ds = make(models, output="dict", transform=compose)
    torch.manual_seed(0)
    sample = next(iter(ds))
    assert sample["image"].shape == (3, 24, 24) and sample["mask"].shape == (24, 24)
    # nearest: every mask value is still a class id, never a blend of two ids
    original = next(iter(make(models, output="dict")))
    assert set(sample["mask"].unique().tolist()) <= set(original["mask"].unique().tolist())
    assert sample["mask"].dtype == torch.int64


# ---------------------------------------------------------------- state identity
def test_state_of_another_label_size_is_refused_naming_the_field(models):
    G, _ = models
    interp32 = random_interpreter(G, label_size=(32, 32))
    big = DatasetGANStream(generator=G, interpreter=interp32, device="cpu", batch_size=2)
    next(iter(big))
    state = big.state_dict()
    small = make(models, batch_size=2)
    with pytest.raises(ValueError, match="label_size"):
        small.load_state_dict(state)


def test_state_of_other_interpreter_weights_is_refused(models):
    G, _ = models
    ds = make(models, batch_size=2)
    next(iter(ds))
    state = ds.state_dict()
    other = random_interpreter(G)
    with torch.no_grad():
        other.w3.add_(1.0)
    stranger = DatasetGANStream(generator=G, interpreter=other, device="cpu", batch_size=2)
    with pytest.raises(ValueError, match="interpreter_fingerprint"):
        stranger.load_state_dict(state)
    with pytest.raises(ValueError, match="generation_batch"):
        make(models, batch_size=2, generation_batch=4).load_state_dict(state)


# ---------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"label_size": (0, 0)}, "label_size"),
        ({"label_size": (64,)}, "label_size"),
        ({"label_size": "64"}, "label_size"),
        ({"generation_batch": -3}, "generation_batch"),
        ({"batch_size": 0}, "batch_size"),
        ({"truncation_psi": float("nan")}, "truncation_psi"),
        ({"drop_uncertain": float("nan")}, "drop_uncertain"),
        ({"drop_uncertain": 1.0}, "drop_uncertain"),
        ({"ignore_uncertain_pixels": float("inf")}, "ignore_uncertain_pixels"),
        ({"device": "gpu"}, "device"),
        ({"device": "meta"}, "meta"),
        ({"samples_per_epoch": 0}, "samples_per_epoch"),
        ({"seed": -1}, "seed"),
        ({"normalize": (0.5,)}, "normalize"),
    ],
)
def test_bad_arguments_are_refused_at_construction(models, kw, message):
    with pytest.raises(ValueError, match=message):
        make(models, **kw)


def test_unknown_preset_or_missing_files_fail_at_construction(tmp_path):
    with pytest.raises(KeyError, match="unknown preset"):
        DatasetGANStream("no-such-preset")
    with pytest.raises(FileNotFoundError, match="no such file"):
        DatasetGANStream(generator=tmp_path / "g.pt", interpreter=tmp_path / "i.safetensors")


# ---------------------------------------------------------------- epochs (Lightning habit)
def test_a_fresh_loader_per_epoch_with_set_epoch_gives_new_reproducible_samples(models):
    """The ``train_dataloader`` contract: a new iterator per epoch, ``set_epoch(e)`` first."""
    ds = make(models, samples_per_epoch=6, generation_batch=3, output="dict")

    def epoch_seeds(stream: DatasetGANStream, epoch: int) -> list[int]:
        stream.set_epoch(epoch)
        return torch.cat([b["seed"] for b in DataLoader(stream, batch_size=3)]).tolist()

    e0, e1 = epoch_seeds(ds, 0), epoch_seeds(ds, 1)
    assert len(e0) == len(e1) == 6 and not set(e0) & set(e1)
    again = make(models, samples_per_epoch=6, generation_batch=3, output="dict")
    assert epoch_seeds(again, 1) == e1


def test_both_inference_paths_give_the_same_stream(models):
    rows = take(make(models, output="dict", impl="rows"), 6)
    interpolate = take(make(models, output="dict", impl="interpolate"), 6)
    for a, b in zip(rows, interpolate):
        assert int(a["seed"]) == int(b["seed"])
        assert torch.equal(a["mask"], b["mask"])
    with pytest.raises(ValueError, match="impl"):
        make(models, impl="gpu")
