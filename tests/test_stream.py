"""DatasetGANStream: determinism, sharding over ranks and workers, exact resume, filtering,
pixel ignoring, augmentation alignment, DDP, parity with the offline labeling path."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda
from lightning_utilities.core.imports import RequirementCache
from torch.utils.data import DataLoader

import dgan_data.stream.workers as workers_mod
from dgan_data import load_generator
from dgan_data.augment import BatchAugment
from dgan_data.generators import Generator, StyleGAN2Generator
from dgan_data.interpreter import Interpreter, feature_layout
from dgan_data.presets import PresetFilesMissing, resolve_preset_file
from dgan_data.seeds import sample_seed, z_from_seeds
from dgan_data.stream import IGNORE_INDEX, DatasetGANStream

K = 5  # classes of the random interpreter and of the label painter


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


# ----------------------------------------------------------------- models
def random_interpreter(G: Generator, num_classes: int = K, label_size=(16, 16), **kw):
    """A random 3-model ensemble whose labels and scores vary across pixels and images.

    The default init (N(0, 0.02) weights, BN identity) gives near-constant tiny logits;
    BN running statistics matched to the hidden activations' scale and a larger last
    layer make the models confident and different from each other.
    """
    interp = Interpreter(
        feature_layout(G), num_classes, num_models=3, label_size=label_size, seed=0, **kw
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, scale in (("bn1", 0.1), ("bn2", 0.3)):
            mean = getattr(interp, f"{name}_mean")
            var = getattr(interp, f"{name}_var")
            mean.copy_(torch.randn(mean.shape, generator=g) * scale * 0.5)
            var.copy_((torch.rand(var.shape, generator=g) + 0.5) * scale**2)
        interp.w3.mul_(50)
        interp.b3.copy_(torch.randn(interp.b3.shape, generator=g))
    return interp.eval()


def tiny_generator() -> StyleGAN2Generator:
    torch.manual_seed(0)
    return StyleGAN2Generator(16, style_dim=32, n_mlp=1, channels={4: 16, 8: 16, 16: 8}).eval()


@pytest.fixture(scope="module")
def tiny():
    """(G, interpreter): 16 px StyleGAN2 with random weights, K=5, labels at 16 px."""
    G = tiny_generator()
    return G, random_interpreter(G)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, tiny):
    """The tiny models saved to disk, so streams can be built from paths."""
    G, interp = tiny
    d = tmp_path_factory.mktemp("models")
    return G.save(d / "generator.safetensors"), interp.save(d / "interpreter.safetensors")


def stream(models, **kw) -> DatasetGANStream:
    G, interp = models
    kw.setdefault("batch_size", 4)
    kw.setdefault("device", "cpu")
    return DatasetGANStream(generator=G, interpreter=interp, **kw)


def take(ds, n: int) -> list:
    it = iter(ds)
    return [next(it) for _ in range(n)]


def check_masks(masks: torch.Tensor, num_classes: int = K) -> None:
    assert masks.dtype == torch.int64
    valid = (masks >= 0) & (masks < num_classes) | (masks == IGNORE_INDEX)
    assert bool(valid.all()), f"mask values {masks.unique().tolist()}"


# --------------------------------------------------------- determinism
def test_same_config_same_batches_other_seed_differs(tiny):
    kw = {"output": "dict", "drop_uncertain": 0.25, "augment": "default", "generation_batch": 3}
    a, b = take(stream(tiny, **kw), 3), take(stream(tiny, **kw), 3)
    for x, y in zip(a, b):
        for key in ("image", "mask", "seed", "uncertainty"):
            assert torch.equal(x[key], y[key]), key
        assert x["image"].shape == (4, 3, 16, 16) and x["mask"].shape == (4, 16, 16)
        check_masks(x["mask"])
    c = take(stream(tiny, seed=1, **kw), 3)
    seeds_a = torch.cat([x["seed"] for x in a])
    seeds_c = torch.cat([x["seed"] for x in c])
    assert not set(seeds_a.tolist()) & set(seeds_c.tolist())
    assert not torch.equal(a[0]["image"], c[0]["image"])
    # The masks are genuinely varied (the random interpreter is not degenerate).
    assert len(torch.cat([x["mask"] for x in a]).unique()) >= 3


# ------------------------------------------------- ranks and workers
def test_disjoint_seeds_over_ranks_and_workers(tiny, monkeypatch):
    seeds: dict[tuple[int, int], set[int]] = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        ds = stream(tiny, output="dict", batch_size=2, samples_per_epoch=8, drop_uncertain=0.2)
        loader = DataLoader(ds, batch_size=None, num_workers=2)
        assert len(loader) == 4
        batches = list(loader)
        assert len(batches) == 4  # per rank, summed over the 2 workers
        # Batches alternate between workers 0 and 1; recover which worker made each from
        # the seed formula (the worker's candidate index modulo the 4 shards).
        for b in batches:
            assert b["image"].shape == (2, 3, 16, 16)
        shard_of = {}
        for i in range(64):
            for w in (0, 1):
                shard_of[sample_seed(0, 0, i * 4 + rank * 2 + w)] = w
        for b in batches:
            for s in b["seed"].tolist():
                seeds.setdefault((rank, shard_of[s]), set()).add(s)
    assert sorted(seeds) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    everything = [s for group in seeds.values() for s in group]
    assert len(everything) == len(set(everything)) == 16


# ---------------------------------------------------------------- resume
def test_resume_yields_exactly_the_same_batches(tiny):
    kw = {
        "output": "dict",
        "drop_uncertain": 0.3,
        "augment": "default",
        "generation_batch": 3,  # not a multiple of batch_size: left-overs are buffered
    }
    ds = stream(tiny, **kw)
    it = iter(ds)
    for _ in range(6):
        next(it)
    state = ds.state_dict()
    assert state["buffer"]["seed"].numel() > 0, "the test must cover buffered left-overs"
    assert state["quantile"]["seen"] > state["quantile"]["kept"] > 0
    expected = [next(it) for _ in range(6)]
    # Through torch.save / torch.load(weights_only=True), as in a training checkpoint.
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    resumed = stream(tiny, **kw)
    resumed.load_state_dict(state)
    assert resumed.state_dict()["items"] == 6  # pending state reads back
    got = take(resumed, 6)
    for x, y in zip(expected, got):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
        assert torch.equal(x["seed"], y["seed"])
    with pytest.raises(ValueError, match="batch_size"):
        stream(tiny, **{**kw, "batch_size": 2}).load_state_dict(state)


def test_resume_in_dataloader_workers_through_torchdata(tiny):
    """torchdata's StatefulDataLoader (the test extra has it) snapshots every worker's
    stream state with each batch; loaded into a new loader, the workers continue exactly
    where they stopped."""
    kw = {"output": "dict", "drop_uncertain": 0.3, "generation_batch": 3}

    def loader():
        return workers_mod.stateful_loader(stream(tiny, **kw), 2, batch_size=None)

    reference = take(loader(), 7)
    first = loader()
    it = iter(first)
    for _ in range(3):
        next(it)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)  # as in a training checkpoint
    buf.seek(0)
    resumed = loader()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    got = take(resumed, 4)
    assert [b["seed"].tolist() for b in got] == [b["seed"].tolist() for b in reference[3:]]
    for x, y in zip(reference[3:], got):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
    seeds = [s for b in reference for s in b["seed"].tolist()]
    assert len(seeds) == len(set(seeds))  # the two workers' streams are disjoint


def test_stateful_loader_without_torchdata_says_what_it_needs(tiny, monkeypatch):
    missing = RequirementCache("torchdata>=999")  # as when it is not installed
    monkeypatch.setattr(workers_mod, "TORCHDATA", missing)
    with pytest.raises(ModuleNotFoundError, match="stateful_loader needs torchdata"):
        workers_mod.stateful_loader(stream(tiny), 2, batch_size=None)


def test_a_worker_state_in_another_shard_is_refused_with_the_fix(tiny):
    ds = stream(tiny, output="dict")
    take(ds, 2)
    state = ds.state_dict()
    state["shard"] = [0, 1, 1, 2]  # worker 1 of 2, as a StatefulDataLoader worker saves it
    other = stream(tiny, output="dict")
    other.load_state_dict(state)
    with pytest.raises(ValueError, match=r"belongs to shard \[0, 1, 1, 2\].*StatefulDataLoader"):
        take(other, 1)


def test_resume_across_epoch_boundary(tiny):
    ds = stream(tiny, output="dict", samples_per_epoch=8, drop_uncertain=0.1)
    first = list(ds)
    assert len(first) == 2
    state = ds.state_dict()  # the finished epoch 0 (the stream itself moved on to 1)
    assert not state.get("fresh") and state["epoch"] == 0 and ds.epoch == 1
    second = list(ds)
    other = stream(tiny, output="dict", samples_per_epoch=8, drop_uncertain=0.1)
    other.load_state_dict(state)
    assert list(other) == []  # nothing of epoch 0 is left; then it goes on with epoch 1
    again = list(other)
    assert [torch.equal(a["image"], b["image"]) for a, b in zip(second, again)] == [True, True]
    ds.set_epoch(2)  # an explicit move gives that epoch's fresh state
    assert ds.state_dict()["fresh"] and ds.state_dict()["epoch"] == 2


# -------------------------------------------------------------- filtering
def test_filter_keeps_one_minus_drop_and_drops_the_uncertain(tiny):
    drop = 0.25
    G = tiny[0]
    fast = random_interpreter(G, label_size=(8, 8), hidden=(16, 8))  # ~530 candidates
    ds = stream((G, fast), output="dict", batch_size=16, generation_batch=64, drop_uncertain=drop)
    it = iter(ds)
    batches = [next(it) for _ in range(25)]
    assert all(b["image"].shape[0] == 16 and b["mask"].shape[0] == 16 for b in batches)
    state = ds.state_dict()
    candidates = state["candidates"]
    kept = 25 * 16 + state["buffer"]["seed"].numel()
    assert candidates >= 500
    assert abs(kept / candidates - (1 - drop)) < 0.03, (kept, candidates)
    # The dropped ones are the uncertain ones: score every candidate offline.
    seeds = [sample_seed(0, 0, i) for i in range(candidates)]
    scores = ds.generate(seeds)["uncertainty"]
    kept_seeds = set(torch.cat([b["seed"] for b in batches]).tolist())
    kept_seeds |= set(state["buffer"]["seed"].tolist())
    is_kept = torch.tensor([s in kept_seeds for s in seeds])
    assert int(is_kept.sum()) == kept
    top = scores >= scores.quantile(1 - drop)
    assert (~is_kept[top]).float().mean() > 0.8  # most of the top-25 % were dropped
    assert scores[~is_kept].min() > scores.median()


def test_non_finite_model_is_an_error_at_the_first_batch(tiny):
    import copy

    from dgan_data.labeler import NonFiniteOutputError

    G, interp = tiny
    broken = copy.deepcopy(interp)
    with torch.no_grad():
        broken.w3[0, 0, 0] = float("nan")  # one NaN weight poisons every label
    ds = DatasetGANStream(generator=G, interpreter=broken, batch_size=2, device="cpu")
    with pytest.raises(NonFiniteOutputError, match="NaN/inf for 2 of 2 samples"):
        next(iter(ds))
    generated = ds.state_dict()
    assert generated.get("candidates", 0) <= 2  # refused at the first generation step


def test_ignore_uncertain_pixels_marks_exactly_those_above(tiny):
    G, interp = tiny
    seeds = [sample_seed(0, 0, i) for i in range(8)]
    with torch.no_grad():
        _, feats = G(z_from_seeds(seeds, G.z_dim))
        pred = interp.predict(feats, output_size=(16, 16))
    threshold = float(pred.pixel_uncertainty.median())
    ds = stream(tiny, batch_size=8, drop_uncertain=0.0, ignore_uncertain_pixels=threshold)
    _, masks = next(iter(ds))
    expected = pred.labels.masked_fill(pred.pixel_uncertainty > threshold, IGNORE_INDEX)
    assert torch.equal(masks, expected)
    ignored = (masks == IGNORE_INDEX).float().mean()
    assert 0.3 < ignored < 0.7


# ---------------------------------------------------- offline parity
def test_stream_labels_equal_interpreter_predict(reference_dir):
    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    interp = random_interpreter(G, num_classes=6, label_size=(16, 16))
    ds = DatasetGANStream(
        generator=G,
        interpreter=interp,
        batch_size=3,
        truncation_psi=0.7,
        drop_uncertain=0.0,
        output="dict",
        device="cpu",
    )
    batch = next(iter(ds))
    seeds = batch["seed"].tolist()
    assert seeds == [sample_seed(0, 0, i) for i in range(3)]
    with torch.no_grad():
        w = G.mapping(z_from_seeds(seeds, G.z_dim), truncation_psi=0.7)
        img, feats = G.synthesize(w, noise="const")
        pred = interp.predict(feats, output_size=(16, 16))
    assert torch.equal(batch["mask"], pred.labels)
    assert len(pred.labels.unique()) >= 3
    assert torch.equal(batch["uncertainty"], pred.image_uncertainty)
    expected = F.interpolate((img.clamp(-1, 1) + 1) / 2, size=(16, 16), mode="area")
    assert torch.allclose(batch["image"], expected, atol=1e-6)


def test_cropped_interpreter_images_and_masks_share_the_crop(reference_dir):
    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    crop = (4, 2, 24, 28)  # (top, left, height, width) of the 32x32 label frame
    interp = random_interpreter(G, num_classes=4, label_size=(32, 32), crop=crop)
    ds = DatasetGANStream(
        generator=G, interpreter=interp, batch_size=2, drop_uncertain=0.0, output="dict"
    )
    batch = next(iter(ds))
    assert batch["image"].shape == (2, 3, 24, 28) and batch["mask"].shape == (2, 24, 28)
    with torch.no_grad():
        img, feats = G(z_from_seeds(batch["seed"], G.z_dim))
        pred = interp.predict(feats)  # the interpreter's own frame and crop
    assert torch.equal(batch["mask"], pred.labels)
    expected = ((img.clamp(-1, 1) + 1) / 2)[..., 4:28, 2:30]
    assert torch.allclose(batch["image"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="crops"):
        next(iter(DatasetGANStream(generator=G, interpreter=interp, label_size=(16, 16))))


# --------------------------------------------------------- augmentation
class LabelPainter(Generator):
    """A stand-in generator whose image and only feature map both encode a label map.

    w[:, 0, :16] picks a 4x4 grid of labels (8 px blocks at 32 px); the feature map is
    the one-hot label map, the image's red channel is label / (K - 1), green is 0.5 (so
    zero padding after a warp reads as "outside the frame") and blue 0.25.
    """

    arch = "label-painter"

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = self.w_dim = 16
        self.num_ws = 1
        self.resolution = (32, 32)
        self.feature_channels = [K]
        self.feature_resolutions = [(32, 32)]
        self.register_buffer("w_avg", torch.zeros(16))

    def _mapping(self, z: torch.Tensor) -> torch.Tensor:
        return z.unsqueeze(1)

    def average_w(self) -> torch.Tensor:
        return self.w_avg

    def synthesize(self, w, noise="const", generator=None):
        coarse = (torch.sigmoid(w[:, 0, :16]) * K).long().clamp_max(K - 1).view(-1, 4, 4)
        labels = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)
        feats = F.one_hot(labels, K).permute(0, 3, 1, 2).float()
        img = torch.stack(
            [labels.float() / (K - 1), torch.full_like(feats[:, 0], 0.5), feats[:, 0] * 0 + 0.25],
            1,
        )
        return img * 2 - 1, [feats]

    @property
    def config(self):
        return {}


def one_hot_interpreter() -> Interpreter:
    """An ensemble whose every model outputs 10 x the one-hot input: labels = the map."""
    interp = Interpreter([(K, 32, 32)], K, num_models=3, label_size=(32, 32))
    with torch.no_grad():
        for name in ("w1", "w2", "w3"):
            w = getattr(interp, name)
            w.zero_()
            w[:, torch.arange(K), torch.arange(K)] = 10.0 if name == "w3" else 1.0
    return interp.eval()


def kornia_geometry():
    KA = pytest.importorskip("kornia.augmentation")
    return KA.AugmentationSequential(
        KA.RandomHorizontalFlip(p=0.5),
        KA.RandomAffine(degrees=15, translate=(0.15, 0.15), scale=(0.8, 1.25), p=1.0),
        data_keys=["input", "mask"],
    )


def albumentations_geometry():
    A = pytest.importorskip("albumentations")
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-15, 15), translate_percent=0.15, scale=(0.8, 1.25), p=1.0),
        ]
    )


def builtin_geometry():
    return BatchAugment(
        brightness=None, contrast=None, saturation=None, hue=None, rotate=15, translate=0.15
    )


@pytest.mark.parametrize(
    "make",
    [builtin_geometry, kornia_geometry, albumentations_geometry],
    ids=["builtin", "kornia", "albumentations"],
)
def test_augment_keeps_image_and_mask_aligned(make):
    models = (LabelPainter(), one_hot_interpreter())
    kw = {"batch_size": 4, "drop_uncertain": 0.0, "output": "dict"}
    plain = take(stream(models, **kw), 3)
    augmented = take(stream(models, augment=make(), **kw), 3)
    agree = total = control = 0
    for p, a in zip(plain, augmented):
        assert torch.equal(p["seed"], a["seed"])
        # Without augmentation the painter's labels come back exactly.
        assert torch.equal(p["mask"], (p["image"][:, 0] * (K - 1)).round().long())
        check_masks(a["mask"])
        v = a["image"][:, 0] * (K - 1)
        decoded = v.round().long()
        inside = ((a["image"][:, 1] - 0.5).abs() < 0.02) & ((v - v.round()).abs() < 0.05)
        sel = inside & (a["mask"] != IGNORE_INDEX)
        agree += int((decoded[sel] == a["mask"][sel]).sum())
        control += int((decoded[sel] == p["mask"][sel]).sum())
        total += int(sel.sum())
    assert total > 0.5 * 3 * 4 * 32 * 32
    assert agree / total > 0.99, agree / total
    # The augmentation moved things: the un-augmented mask no longer matches the image.
    assert control / total < 0.9, control / total


# ------------------------------------------------------------------- DDP
@contextlib.contextmanager
def gloo_rank(rank: int, init_file: str, world_size: int = 2) -> Iterator[None]:
    """This process as ``rank`` of a CPU (gloo) process group, for the DDP tests."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def _ddp_worker(rank: int, init_file: str, out_dir: str, generator: str, interpreter: str):
    with gloo_rank(rank, init_file):
        ds = DatasetGANStream(
            generator=generator,
            interpreter=interpreter,
            batch_size=2,
            samples_per_epoch=4,
            output="dict",
            device="cpu",
        )
        seeds = torch.cat([b["seed"] for b in DataLoader(ds, batch_size=None)])
        torch.save(seeds, Path(out_dir) / f"rank{rank}.pt")
        torch.distributed.barrier()


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ({"normalize": ((0.5,) * 3, (float("nan"),) * 3)}, "std must be finite"),
        ({"normalize": ((0.5,) * 3, (0.0,) * 3)}, "every std must be > 0"),
        ({"normalize": ("a", "b")}, "mean must be a sequence of numbers"),
        ({"normalize": ((0.5,) * 3, (0.5,) * 2)}, "3 means but 2 stds"),
        ({"noise": "bogus"}, "noise must be 'const' or 'random'"),
        ({"label_size": (100_000, 100_000)}, "exceeds 8192 px per side"),
        ({"seed": 2**70}, "seed must be in [0, 2**63), got 2**70".replace("2**70", str(2**70))),
        ({"seed": -1}, "seed must be in [0, 2**63), got -1"),
        ({"seed": 1.5}, "seed must be an int in [0, 2**63), got 1.5"),
        ({"seed": True}, "seed must be an int in [0, 2**63), got True"),
    ],
)
def test_nonsense_settings_are_refused_when_the_stream_is_built(tiny, option, words):
    """At construction, not at the first batch (nor, for NaN, never: NaN images)."""
    with pytest.raises(ValueError, match=re.escape(words)):
        stream(tiny, **option)


def test_a_numpy_int_seed_is_the_same_seed(tiny):
    import numpy as np

    a = stream(tiny, seed=np.int64(5), output="dict", augment=None)
    b = stream(tiny, seed=5, output="dict", augment=None)
    assert a.seed == 5 and type(a.seed) is int
    assert torch.equal(take(a, 1)[0]["image"], take(b, 1)[0]["image"])


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda st: st.update(candidates=-1), "candidates must be an int >= 0"),
        (lambda st: st.update(items=1.5), "items must be an int >= 0"),
        (lambda st: st.update(offset=10**6), "offset 1000000 is past the"),
        (lambda st: st["buffer"].update(seed=3), "buffer must map names to tensors"),
        (
            lambda st: st["pending"].update(image=torch.zeros(2, 3, 5, 5)),
            "pending holds parts of different lengths",
        ),
        (
            lambda st: st["pending"].update(mask=st["pending"]["mask"][:, :5, :5]),
            "pending images are (16, 16), its masks (5, 5)",
        ),
    ],
)
def test_a_damaged_state_is_refused_when_loaded(tiny, damage, words):
    ds = stream(tiny, batch_size=None)
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    damage(state)
    with pytest.raises(ValueError, match=re.escape(words)):
        stream(tiny, batch_size=None).load_state_dict(state)


@pytest.mark.parametrize(
    ("rank", "world", "words"),
    [
        ("0", "0", "WORLD_SIZE=0"),
        ("3", "2", "RANK=3"),
        ("-1", "2", "RANK=-1"),
        ("abc", "2", "RANK='abc' is not an integer"),
    ],
)
def test_nonsense_rank_environment_is_refused(tiny, monkeypatch, rank, world, words):
    """RANK/WORLD_SIZE out of range would repeat or overlap other ranks' samples."""
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(ValueError, match=re.escape(words)):
        next(iter(stream(tiny, batch_size=2)))


def test_ddp_two_ranks_draw_disjoint_streams(tiny_files, tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    generator, interpreter = (str(p) for p in tiny_files)
    # torch.multiprocessing.spawn's machinery with the cheap "fork" start (CPU only, gloo).
    torch.multiprocessing.start_processes(
        _ddp_worker,
        args=(str(tmp_path / "init"), str(tmp_path), generator, interpreter),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    s0 = torch.load(tmp_path / "rank0.pt").tolist()
    s1 = torch.load(tmp_path / "rank1.pt").tolist()
    assert len(s0) == len(s1) == 4
    assert not set(s0) & set(s1)
    # Rank 0 draws the even candidates of the global sequence (world size 2).
    assert s0[0] in {sample_seed(0, 0, 2 * i) for i in range(64)}
    assert s1[0] in {sample_seed(0, 0, 2 * i + 1) for i in range(64)}


# ------------------------------------------------------ epochs and pickling
def test_samples_per_epoch_len_and_epochs(tiny):
    ds = stream(tiny, output="dict", batch_size=4, samples_per_epoch=10)
    assert len(ds) == 2
    e0, e1 = list(ds), list(ds)  # __iter__ again: the next epoch
    assert len(e0) == len(e1) == 2
    seeds0 = {s for b in e0 for s in b["seed"].tolist()}
    seeds1 = {s for b in e1 for s in b["seed"].tolist()}
    assert not seeds0 & seeds1
    ds.set_epoch(0)
    assert torch.equal(next(iter(ds))["image"], e0[0]["image"])
    with pytest.raises(TypeError, match="samples_per_epoch"):
        len(stream(tiny))


def test_samples_per_epoch_with_two_workers(tiny):
    ds = stream(tiny, output="dict", batch_size=2, samples_per_epoch=12)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    assert len(loader) == 6
    e0 = list(loader)
    assert len(e0) == 6  # 3 per worker
    seeds0 = {s for b in e0 for s in b["seed"].tolist()}
    assert len(seeds0) == 12
    # Fresh (non-persistent) workers copy the main-process stream: set_epoch moves it on.
    ds.set_epoch(1)
    e1 = list(loader)
    assert len(e1) == 6 and not seeds0 & {s for b in e1 for s in b["seed"].tolist()}
    # Persistent workers advance their own copies at the end of each epoch.
    ds.set_epoch(0)
    persistent = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    p0, p1 = list(persistent), list(persistent)
    assert {s for b in p0 for s in b["seed"].tolist()} == seeds0
    assert not seeds0 & {s for b in p1 for s in b["seed"].tolist()}
    assert len(p1) == 6


def test_stream_from_paths_pickles_small(tiny_files):
    generator, interpreter = tiny_files
    ds = DatasetGANStream(
        generator=generator, interpreter=interpreter, batch_size=2, device="cpu", drop_uncertain=0.0
    )
    first = next(iter(ds))
    blob = pickle.dumps(ds)
    assert len(blob) < 4096, len(blob)
    copy = pickle.loads(blob)
    again = next(iter(copy))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_endless_restart_warns(tiny, caplog):
    ds = stream(tiny)
    take(ds, 1)
    with caplog.at_level(logging.WARNING, logger="dgan_data.stream"):
        take(ds, 1)
    assert "restarts the endless stream" in caplog.text
    # Continuing instead: load_state_dict(state_dict()).
    ds2 = stream(tiny, output="dict")
    a = take(ds2, 2)
    ds2.load_state_dict(ds2.state_dict())
    b = take(ds2, 1)
    ref = take(stream(tiny, output="dict"), 3)
    assert torch.equal(b[0]["seed"], ref[2]["seed"]) and torch.equal(a[1]["seed"], ref[1]["seed"])


# ------------------------------------------------------------ presets, errors
def test_preset_with_missing_files_fails_at_construction(tmp_path, monkeypatch):
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path))
    with pytest.raises(PresetFilesMissing) as info:
        DatasetGANStream("bedroom-19")
    with pytest.raises(PresetFilesMissing) as direct:
        resolve_preset_file("bedroom-19", "generator")
    assert str(info.value) == str(direct.value)
    assert str(tmp_path) in str(info.value) and "dgan-data fit" in str(info.value)


def test_constructor_errors(tiny, tmp_path):
    G, interp = tiny
    with pytest.raises(ValueError, match="preset name, or both"):
        DatasetGANStream(generator=G)
    with pytest.raises(FileNotFoundError, match="no such file"):
        DatasetGANStream(generator=tmp_path / "nope.pt", interpreter=interp)
    with pytest.raises(ValueError, match="drop_uncertain"):
        stream(tiny, drop_uncertain=1.0)
    with pytest.raises(ValueError, match=r"augment|unknown"):
        stream(tiny, augment="sideways")


def test_unusable_device_is_refused_at_construction(tiny):
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            stream(tiny, device="cuda")
    for bad in ("gpu", "meta", "cuda:99"):
        with pytest.raises(ValueError, match="device"):
            stream(tiny, device=bad)


@requires_cuda
def test_cuda_in_forked_worker_is_refused_with_the_fix(tiny):
    ds = stream(tiny, device="cuda")
    loader = DataLoader(ds, batch_size=None, num_workers=1, multiprocessing_context="fork")
    with pytest.raises(RuntimeError, match=r"forked DataLoader worker.*spawn"):
        next(iter(loader))


def test_fork_check_fires_in_forked_workers_only(monkeypatch):
    # A spawned worker imports dgan_data afresh (same pid as at import): no refusal there.
    # (A real spawn worker costs ~30 s of imports on a loaded 2-core machine.)
    monkeypatch.setattr(workers_mod, "get_worker_info", lambda: object())
    monkeypatch.setattr(workers_mod, "_IMPORT_PID", os.getpid())
    workers_mod.check_worker_device(torch.device("cuda"))  # spawn-like: passes
    workers_mod.check_worker_device(torch.device("cpu"))
    monkeypatch.setattr(workers_mod, "_IMPORT_PID", os.getpid() + 1)  # fork-like
    workers_mod.check_worker_device(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="multiprocessing_context='spawn'"):
        workers_mod.check_worker_device(torch.device("cuda", 0))
    monkeypatch.setattr(workers_mod, "get_worker_info", lambda: None)  # main process
    workers_mod.check_worker_device(torch.device("cuda"))


def test_bfloat16_autocast_runs_on_cpu(tiny):
    images, masks = next(iter(stream(tiny, dtype=torch.bfloat16, drop_uncertain=0.0)))
    assert images.dtype == torch.float32 and images.shape == (4, 3, 16, 16)
    check_masks(masks)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_autocast_labels_match_float32_on_cuda(dtype):
    """Reduced precision keeps the labels of a trained interpreter: >= 99.5 % equal in
    bfloat16 (measured 99.76 % on toyface-14, the changes where the ensemble disagrees),
    >= 99.9 % in float16 (measured 99.97 %): the bar a user can rely on (README)."""
    from dgan_data.presets import list_presets, preset_status

    name = "toyface-14"
    status = preset_status(name) if name in list_presets() else {}
    if not (status.get("generator_present") and status.get("interpreter_present")):
        pytest.skip(f"needs the shipped {name} preset's files (a trained interpreter)")
    kw = {"batch_size": 16, "drop_uncertain": 0.0, "device": "cuda", "output": "dict"}
    ref = take(DatasetGANStream(name, **kw), 4)
    low = take(DatasetGANStream(name, dtype=dtype, **kw), 4)
    same = total = 0
    for a, b in zip(ref, low):
        assert torch.equal(a["seed"], b["seed"])
        same += int((a["mask"] == b["mask"]).sum())
        total += a["mask"].numel()
    bar = 0.995 if dtype == torch.bfloat16 else 0.999
    assert same / total >= bar, same / total


def test_env_rank_is_read_at_iteration(tiny, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ds = stream(tiny, output="dict", drop_uncertain=0.0)
    batch = next(iter(ds))
    assert batch["seed"].tolist() == [sample_seed(0, 0, 2 * i + 1) for i in range(4)]
    assert os.environ["RANK"] == "1"
