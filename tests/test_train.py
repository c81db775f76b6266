"""Downstream training: the DeepLab builder, the training loop, evaluation, labeled batch
sources, and the DeepLab examples (single process, and DDP with 2 CPU ranks under torchrun)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from example_scripts import load_example
from stub_models import Constant
from torch import nn

pytest.importorskip("segmentation_models_pytorch")

import dgan_data.downstream.train as train_mod
from dgan_data.cli.common import UsageError
from dgan_data.downstream.realdata import write_labeled_folder
from dgan_data.downstream.train import (
    IGNORE_INDEX,
    build_deeplab,
    default_atrous_rates,
    evaluate,
    load_segmentation_model,
    lr_at,
    real_batches,
    render_batches,
    render_labeled,
    train_segmentation,
)
from dgan_data.generators import StyleGAN2Generator
from dgan_data.interpreter import Interpreter, feature_layout
from dgan_data.metrics import five_fold_protocol
from dgan_data.toy import CLASS_NAMES, PALETTE

REPO = Path(__file__).resolve().parents[1]
K = len(CLASS_NAMES)


def interrupt_at_batch(n: int):
    """A ``train._next_batch`` that raises KeyboardInterrupt (Ctrl-C) when the training
    loop asks for its ``n``-th batch."""
    next_batch = train_mod._next_batch

    def interrupted(it, source, state):
        if state["taken"] == n:
            raise KeyboardInterrupt
        return next_batch(it, source, state)

    return interrupted


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


# ------------------------------------------------------------------ helpers
def make_tiny_models(folder: Path, size: int = 32, num_models: int = 2) -> tuple[Path, Path]:
    """A random StyleGAN2 at ``size`` px and a random interpreter over the 14 toy classes
    (labels at ``size``), saved as generator/interpreter.safetensors in ``folder``.

    The interpreter's BatchNorm statistics and last layer are rescaled so its labels and
    uncertainty scores vary over pixels and images (the default init is near-constant).
    """
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    channels = {r: c for r, c in {4: 16, 8: 16, 16: 8, 32: 8, 64: 8}.items() if r <= size}
    G = StyleGAN2Generator(size, style_dim=16, n_mlp=1, channels=channels).eval()
    interp = Interpreter(
        feature_layout(G),
        K,
        num_models=num_models,
        label_size=(size, size),
        class_names=list(CLASS_NAMES),
        palette=PALETTE.tolist(),
        seed=0,
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, scale in (("bn1", 0.1), ("bn2", 0.3)):
            mean, var = getattr(interp, f"{name}_mean"), getattr(interp, f"{name}_var")
            mean.copy_(torch.randn(mean.shape, generator=g) * scale * 0.5)
            var.copy_((torch.rand(var.shape, generator=g) + 0.5) * scale**2)
        interp.w3.mul_(50)
        interp.b3.copy_(torch.randn(interp.b3.shape, generator=g))
    return (
        G.save(folder / "generator.safetensors"),
        interp.eval().save(folder / "interpreter.safetensors"),
    )


class Oracle(nn.Module):
    """Predicts the class id written into the red channel as id / 100 (a perfect model
    for images made by :func:`encode_masks`)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        ids = (images[:, 0] * 100).round().long().clamp(0, self.num_classes - 1)
        return nn.functional.one_hot(ids, self.num_classes).permute(0, 3, 1, 2).float()


def encode_masks(masks: torch.Tensor) -> torch.Tensor:
    images = torch.rand(masks.shape[0], 3, *masks.shape[-2:])
    images[:, 0] = torch.where(masks == IGNORE_INDEX, 0, masks).float() / 100
    return images


def random_masks(n: int, size: int = 16, num_classes: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, num_classes, (n, size, size), generator=g)
    masks[:, :2] = IGNORE_INDEX
    return masks


# ------------------------------------------------------------------ the model
def test_build_deeplab_output_shape_at_64_px():
    torch.manual_seed(0)
    for arch in ("deeplabv3plus", "deeplabv3"):
        model = build_deeplab(K, arch).eval()
        with torch.no_grad():
            out = model(torch.rand(2, 3, 64, 64))
        assert out.shape == (2, K, 64, 64)
        assert model.config["atrous_rates"] == [1, 2, 3]
        assert model.config["arch"] == arch


def test_build_deeplab_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="deeplabv3plus"):
        build_deeplab(K, "unet")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_deeplab(K, encoder_weights="imagenet")
    model = build_deeplab(K)
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.rand(1, 3, 40, 40))


def test_default_atrous_rates_scale_with_image_size():
    assert default_atrous_rates(64, 16) == (1, 2, 3)
    assert default_atrous_rates(513, 16) == (6, 12, 18)
    assert default_atrous_rates(513, 8) == (12, 24, 36)
    assert default_atrous_rates(16, 16) == (1, 1, 1)


def test_local_encoder_weights_load_and_head_is_dropped(tmp_path):
    torch.manual_seed(1)
    donor = build_deeplab(K).net.encoder
    state = {k: v for k, v in donor.state_dict().items()}
    state["fc.weight"] = torch.zeros(10, 512)  # a torchvision classifier head: ignored
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    torch.manual_seed(2)
    model = build_deeplab(K, encoder_weights=path)
    for k, v in donor.state_dict().items():
        assert torch.equal(model.net.encoder.state_dict()[k], v), k
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="do not fit"):
        build_deeplab(K, encoder_weights=tmp_path / "bad.pth")


# -------------------------------------------------------------------- training
def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 1e-3) for s in range(100)]
    assert lrs[0] < lrs[4] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))
    assert lrs[-1] == pytest.approx(1e-5)


@pytest.mark.parametrize("steps, warmup", [(10, 0.9), (10, 0.96), (2, 0.5), (3, 0.99)])
def test_a_long_warm_up_still_ends_at_the_final_rate(steps, warmup):
    lrs = [lr_at(s, steps, 1e-3, warmup) for s in range(steps)]
    assert lrs[-1] == pytest.approx(1e-5)  # the last step decays, whatever the warm-up
    assert max(lrs) == pytest.approx(1e-3)  # and the warm-up still reaches the base rate
    assert lrs[:-1] == sorted(lrs[:-1])


def test_a_single_step_run_uses_the_base_rate():
    assert lr_at(0, 1, 1e-3) == pytest.approx(1e-3)
    assert lr_at(0, 1, 1e-3, warmup=0.0) == pytest.approx(1e-3)


def test_a_few_steps_decrease_the_loss_on_a_fixed_batch():
    images, masks = render_labeled("pool", 2, size=32)
    masks[:, :3] = IGNORE_INDEX  # ignored pixels must not break the loss
    torch.manual_seed(0)
    model = build_deeplab(K, image_size=32)
    history = train_segmentation(
        model, itertools.repeat((images, masks)), 12, lr=2e-3, warmup=0.0, progress=False
    )
    assert len(history.loss) == 12 and not np.isnan(history.loss).any()
    assert np.mean(history.loss[-3:]) < 0.8 * history.loss[0]
    assert len(history.data_seconds) == len(history.optim_seconds) == 12
    timing = history.timing()
    assert 0 <= timing["data_fraction"] <= 1
    assert timing["optim_seconds_per_step"] > 0


def test_timing_separates_waiting_for_data_from_optimisation():
    images, masks = render_labeled("pool", 2, size=32)

    def slow():
        while True:
            time.sleep(0.05)
            yield images, masks

    model = build_deeplab(K, image_size=32)
    history = train_segmentation(model, slow(), 3, progress=False)
    assert min(history.data_seconds) >= 0.045
    assert history.timing()["data_seconds_per_step"] >= 0.045


def test_all_ignored_batch_is_skipped_not_nan():
    images = torch.rand(2, 3, 32, 32)
    masks = torch.full((2, 32, 32), IGNORE_INDEX)
    model = build_deeplab(K, image_size=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = train_segmentation(model, itertools.repeat((images, masks)), 2, progress=False)
    assert history.skipped_steps == 2
    for k, v in model.state_dict().items():
        if v.dtype.is_floating_point and "running" not in k:
            assert torch.equal(v, before[k]), k


def test_finite_sources_restart_and_one_shot_iterators_fail():
    images, masks = render_labeled("pool", 2, size=32)

    class Epochs:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, e):
            self.epochs.append(e)

        def __iter__(self):
            return iter([(images, masks)] * 2)

    source = Epochs()
    model = build_deeplab(K, image_size=32)
    train_segmentation(model, source, 5, progress=False)
    assert source.epochs == [1, 2]
    with pytest.raises(RuntimeError, match="ended after 2 batches"):
        train_segmentation(model, iter([(images, masks)] * 2), 3, progress=False)


def test_eval_checkpoints_and_resume(tmp_path):
    images, masks = render_labeled("pool", 4, size=32)
    test = render_labeled("test", 4, size=32)

    def eval_fn(model, step):
        return {"miou": evaluate(model, test, K)["miou"]}

    torch.manual_seed(0)
    model = build_deeplab(K, image_size=32)
    batches = real_batches(images, masks, 2, augment="default", seed=0)
    history = train_segmentation(
        model, batches, 4, eval_fn=eval_fn, eval_every=2, checkpoint_dir=tmp_path, progress=False
    )
    assert [e["step"] for e in history.evals] == [2, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.pt",
        "step_0000002.pt",
        "step_0000004.pt",
    ]
    restored = load_segmentation_model(tmp_path / "step_0000004.pt").eval()
    x = test[0]
    with torch.no_grad():
        assert torch.allclose(restored(x), model.eval()(x), atol=1e-5)
    # resume runs only the missing steps and keeps the history
    resumed = train_segmentation(
        build_deeplab(K, image_size=32),
        batches,
        6,
        eval_fn=eval_fn,
        eval_every=2,
        checkpoint_dir=tmp_path,
        resume=True,
        progress=False,
    )
    assert len(resumed.loss) == 6 and resumed.loss[:4] == history.loss
    assert [e["step"] for e in resumed.evals] == [2, 4, 6]


# ------------------------------------------------------------------ evaluation
def test_evaluate_oracle_gives_miou_one():
    masks = random_masks(6)
    result = evaluate(Oracle(4), (encode_masks(masks), masks), 4, batch_size=4, keep_per_image=True)
    assert result["miou"] == 1.0
    assert result["pixel_accuracy"] == 1.0
    assert result["num_images"] == 6
    assert result["per_image"].shape == (6, 4, 4)
    assert int(result["confusion"].sum()) == int((masks != IGNORE_INDEX).sum())


def test_evaluate_constant_predictor_gives_the_hand_computed_scores():
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    masks[0, :2] = 1  # 8 pixels of class 1, 24 of class 0; class 2 absent
    masks[1, 0, 0] = IGNORE_INDEX
    result = evaluate(Constant(3, 0), (torch.rand(2, 3, 4, 4), masks), 3)
    iou = result["iou"].tolist()
    assert iou[0] == pytest.approx(23 / 31)  # 23 labeled class-0 pixels, 31 labeled in all
    assert iou[1] == 0.0
    assert np.isnan(iou[2])  # absent from target and prediction: left out of the mean
    assert result["miou"] == pytest.approx((23 / 31) / 2)


def test_evaluate_folder_dataset_equals_tensors(tmp_path):
    masks = random_masks(5, num_classes=4)
    images = encode_masks(masks)
    images = (images * 255).round() / 255  # what a PNG stores
    write_labeled_folder(tmp_path / "f", images, masks, class_names=["a", "b", "c", "d"])
    from dgan_data.downstream.realdata import LabeledFolder

    folder = LabeledFolder(tmp_path / "f")
    a = evaluate(Constant(4, 1), folder, 4, batch_size=2, keep_per_image=True)
    b = evaluate(Constant(4, 1), (images, masks), 4, keep_per_image=True)
    assert torch.equal(a["confusion"], b["confusion"])
    assert torch.equal(a["per_image"], b["per_image"])


# ----------------------------------------------------------- labeled batches
def test_real_batches_visit_every_image_once_per_epoch_and_are_reproducible():
    masks = random_masks(5, size=8, num_classes=5)
    images = encode_masks(masks)
    ids = []
    for imgs, _ in itertools.islice(real_batches(images, masks, 2, augment=None, seed=3), 5):
        ids += (imgs[:, 0, 2, 0] * 100).round().long().tolist()  # row 2 is labeled
    per_image = [int(m[2, 0]) for m in masks]
    assert sorted(ids) == sorted(per_image * 2)
    a = list(itertools.islice(real_batches(images, masks, 2, seed=3), 3))
    b = list(itertools.islice(real_batches(images, masks, 2, seed=3), 3))
    for (x1, y1), (x2, y2) in zip(a, b):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_render_batches_give_exact_toy_masks():
    from dgan_data.toy import render_faces, split_seeds

    images, masks = next(render_batches("pool", 3, count=10, augment=None, size=32))
    assert images.shape == (3, 3, 32, 32) and masks.shape == (3, 32, 32)
    seeds = list(split_seeds("pool", 0, 10))
    for img, mask in zip(images, masks):
        matches = [s for s in seeds if torch.equal(render_faces([s], size=32)[1][0], mask)]
        assert len(matches) == 1
        assert torch.allclose(render_faces(matches, size=32)[0][0], img)


# -------------------------------------------------------------------- examples
def test_example_single_process_holdout_on_a_folder(tmp_path, capsys):
    gen, interp = make_tiny_models(tmp_path / "m", size=32)
    images, masks = render_labeled("test", 6, size=32)
    write_labeled_folder(tmp_path / "real", images, masks, class_names=list(CLASS_NAMES))
    example = load_example("train_deeplab")
    out = tmp_path / "r.json"
    results = example.run(
        example.parse_args(
            [
                "--generator", str(gen), "--interpreter", str(interp),
                "--eval-folder", str(tmp_path / "real"),
                "--max-steps", "4", "--batch-size", "2", "--eval-every", "2",
                "--protocol", "holdout", "--val-samples", "4",
                "--threads", "1", "--no-progress", "--json", str(out),
            ]
        )
    )  # fmt: skip
    saved = json.loads(out.read_text())
    assert saved["selection"]["protocol"] == "holdout"
    assert saved["selection"]["chosen_step"] in (2, 4)
    assert [e["step"] for e in saved["evals"]] == [2, 4]
    assert all("val_miou" in e for e in saved["evals"])
    assert set(saved["final"]["per_class_iou"]) == set(CLASS_NAMES)
    assert saved["timing"]["optim_seconds_per_step"] > 0
    assert results["final"]["num_images"] == 6
    assert "stream" in capsys.readouterr().out


def test_example_soft_labels_train_on_the_streams_probabilities(tmp_path, monkeypatch):
    gen, interp = make_tiny_models(tmp_path / "m", size=32)
    images, masks = render_labeled("test", 4, size=32)
    write_labeled_folder(tmp_path / "real", images, masks, class_names=list(CLASS_NAMES))
    example = load_example("train_deeplab")
    calls = []

    def counting(logits, probs, valid):
        calls.append(tuple(probs.shape))
        return soft_loss(logits, probs, valid)

    soft_loss = train_mod.soft_cross_entropy
    monkeypatch.setattr(train_mod, "soft_cross_entropy", counting)
    argv = [
        "--generator", str(gen), "--interpreter", str(interp), "--soft-labels",
        "--eval-folder", str(tmp_path / "real"), "--max-steps", "3", "--batch-size", "2",
        "--protocol", "last", "--threads", "1", "--no-progress", "--json", str(tmp_path / "r.json"),
    ]  # fmt: skip
    results = example.run(example.parse_args(argv))
    assert results["soft_labels"] is True
    assert len(calls) == 3 and calls[0][0] == 2 and calls[0][1] == len(CLASS_NAMES)


@pytest.mark.slow
def test_ddp_example_two_cpu_ranks_agree(tmp_path):
    gen, interp = make_tiny_models(tmp_path / "m", size=32)
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(REPO / "examples" / "train_deeplab_ddp.py"),
        "--generator", str(gen), "--interpreter", str(interp), "--device", "cpu",
        "--eval-toy-test", "10", "--max-steps", "3", "--batch-size", "2", "--eval-every", "2",
        "--threads", "1", "--no-progress", "--json", str(out), "--rank-json",
        "--checkpoint-dir", str(tmp_path / "ckpt"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = json.loads(out.with_suffix(".rank0.json").read_text())
    r1 = json.loads(out.with_suffix(".rank1.json").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["final"] == r1["final"]  # all-reduced metrics: the same on both ranks
    assert r0["evals"] == r1["evals"]
    assert r0["selection"] == r1["selection"]
    assert r0["final"]["num_images"] == 10  # each rank scored 5, the counts were summed
    assert json.loads(out.read_text())["final"] == r0["final"]
    # the ranks' all-reduced counts and gathered per-image matrices equal one process
    # scoring every image with the checkpoints rank 0 wrote
    test = render_labeled("test", 10, size=32)
    per_image = {}
    for step in (2, 3):
        model = load_segmentation_model(tmp_path / "ckpt" / f"step_{step:07d}.pt")
        result = evaluate(model, test, K, keep_per_image=True)
        per_image[step] = result["per_image"]
        reported = next(e for e in r0["evals"] if e["step"] == step)
        assert result["miou"] == pytest.approx(reported["miou"], abs=2e-3)
    cv = five_fold_protocol(per_image, seed=0)
    assert cv.fold_miou == pytest.approx(r0["selection"]["fold_miou"], abs=2e-3)
    # last.pt keeps both ranks' stream positions, each on its own shard
    saved = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)["sources"]
    assert [s["workers"] for s in saved] == [0, 0]
    sources = [s["state"] for s in saved]
    assert [s["shard"][:2] for s in sources] == [[0, 2], [1, 2]]
    assert sources[0]["items"] == sources[1]["items"] == 3


def test_example_resume_needs_a_checkpoint_dir_and_more_steps(tmp_path, capsys):
    example = load_example("train_deeplab")
    base = ["--preset", "toyface-14", "--eval-toy-test", "4", "--max-steps", "4"]
    with pytest.raises(SystemExit) as exc:
        example.parse_args([*base, "--resume"])
    assert exc.value.code == 2
    assert "give --checkpoint-dir" in capsys.readouterr().err
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save({"step": 6}, ckpt / "last.pt")
    with pytest.raises(SystemExit) as exc:
        example.parse_args([*base, "--resume", "--checkpoint-dir", str(ckpt)])
    assert exc.value.code == 2
    assert "is at step 6; --max-steps must exceed it" in capsys.readouterr().err


class CountingSource:
    """Batches numbered 0, 1, 2...: (images, masks) whose mask value is the batch number
    mod 4, with a state_dict of how many were drawn (what a resumable stream offers)."""

    def __init__(self) -> None:
        self.next = 0
        self.drawn: list[int] = []

    def state_dict(self) -> dict:
        return {"next": self.next}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"next"}:
            raise ValueError("not a counting state")
        self.next = int(state["next"])

    def __iter__(self):
        while True:
            n, self.next = self.next, self.next + 1
            self.drawn.append(n)
            yield torch.full((2, 3, 32, 32), n / 10), torch.full((2, 32, 32), n % 4)


def test_resume_continues_a_resumable_source_where_it_stopped(tmp_path, caplog):
    first = CountingSource()
    train_segmentation(
        build_deeplab(K, image_size=32), first, 3, checkpoint_dir=tmp_path, checkpoint_every=2,
        resumable_source=first, progress=False,
    )  # fmt: skip
    assert first.drawn == [0, 1, 2]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["sources"] == [{"next": 3}]
    resumed = CountingSource()
    train_segmentation(
        build_deeplab(K, image_size=32), resumed, 5, checkpoint_dir=tmp_path, resume=True,
        resumable_source=resumed, progress=False,
    )  # fmt: skip
    assert resumed.drawn == [3, 4]  # not 0, 1: the batches the first run had not drawn
    # a checkpoint without a source state: the source restarts, and the log says so
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    del state["sources"]
    state["step"] = 3
    torch.save(state, tmp_path / "last.pt")
    again = CountingSource()
    with caplog.at_level("WARNING", logger="dgan_data"):
        train_segmentation(
            build_deeplab(K, image_size=32), again, 4, checkpoint_dir=tmp_path, resume=True,
            resumable_source=again, progress=False,
        )  # fmt: skip
    assert again.drawn == [0]
    assert "holds no batch-source state" in caplog.text


def _two_counted_steps(folder) -> dict:
    """Train 2 steps on a CountingSource, checkpointed in ``folder``; its ``last.pt``."""
    source = CountingSource()
    train_segmentation(
        build_deeplab(K, image_size=32), source, 2, checkpoint_dir=folder,
        resumable_source=source, progress=False,
    )  # fmt: skip
    return torch.load(folder / "last.pt", weights_only=True)


def test_resume_refuses_a_source_state_that_does_not_fit(tmp_path):
    state = _two_counted_steps(tmp_path)
    state["sources"] = [{"other": 1}]
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(ValueError, match=r"last.pt: the saved batch-source state does not fit"):
        train_segmentation(
            build_deeplab(K, image_size=32), CountingSource(), 3, checkpoint_dir=tmp_path,
            resume=True, resumable_source=CountingSource(), progress=False,
        )  # fmt: skip

    class AssertingSource(CountingSource):  # torchdata asserts: another num_workers
        def load_state_dict(self, state: dict) -> None:
            raise AssertionError  # a bare one, as torchdata raises

    with pytest.raises(ValueError, match=r"does not fit: AssertionError \(was it saved with"):
        train_segmentation(
            build_deeplab(K, image_size=32), CountingSource(), 3, checkpoint_dir=tmp_path,
            resume=True, resumable_source=AssertingSource(), progress=False,
        )  # fmt: skip


def test_resume_refuses_source_states_of_another_number_of_processes(tmp_path):
    """Each process owns its slice of the stream: restarting them drew the first run's
    batches again (it was a warning)."""
    state = _two_counted_steps(tmp_path)
    state["sources"] = state["sources"] * 2  # as two processes save them
    torch.save(state, tmp_path / "last.pt")
    again = CountingSource()
    with pytest.raises(ValueError, match=r"states of 2 process\(es\), this run has 1"):
        train_segmentation(
            build_deeplab(K, image_size=32), again, 3, checkpoint_dir=tmp_path,
            resume=True, resumable_source=again, progress=False,
        )  # fmt: skip
    assert again.drawn == []  # refused before any batch


def test_resume_applies_the_weight_decay_given(tmp_path):
    """The saved optimiser state overwrote it: a resumed run kept the first run's."""
    source = CountingSource()
    train_segmentation(
        build_deeplab(K, image_size=32), source, 2, checkpoint_dir=tmp_path,
        resumable_source=source, weight_decay=1e-4, progress=False,
    )  # fmt: skip
    again = CountingSource()
    train_segmentation(
        build_deeplab(K, image_size=32), again, 3, checkpoint_dir=tmp_path, resume=True,
        resumable_source=again, weight_decay=0.5, progress=False,
    )  # fmt: skip
    groups = torch.load(tmp_path / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.5] * len(groups)


@pytest.mark.parametrize("workers", [0, 2])
def test_example_resume_continues_the_stream_and_scores_every_checkpoint(
    tmp_path, monkeypatch, capsys, workers
):
    """With --workers 2 the position of each worker's stream comes back through torchdata's
    StatefulDataLoader (a plain DataLoader would restart the workers' streams)."""
    gen, interp = make_tiny_models(tmp_path / "m", size=32)
    images, masks = render_labeled("test", 5, size=32)
    write_labeled_folder(tmp_path / "real", images, masks, class_names=list(CLASS_NAMES))
    example = load_example("train_deeplab")

    def run(steps: int, name: str, *extra: str) -> dict:
        argv = [
            "--generator", str(gen), "--interpreter", str(interp),
            "--eval-folder", str(tmp_path / "real"), "--max-steps", str(steps),
            "--batch-size", "2", "--eval-every", "2", "--protocol", "five-fold",
            "--threads", "1", "--no-progress", "--checkpoint-dir", str(tmp_path / name),
            "--device", "cpu", "--workers", str(workers), *extra,
        ]  # fmt: skip
        return example.run(example.parse_args(argv))

    whole = run(6, "whole")
    with monkeypatch.context() as patch:  # the 5th batch: last.pt holds step 4
        patch.setattr(train_mod, "_next_batch", interrupt_at_batch(5))
        with pytest.raises(KeyboardInterrupt):
            run(6, "cut")
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["step"] == 4
    capsys.readouterr()
    resumed = run(6, "cut", "--resume")
    assert "restarts" not in capsys.readouterr().err
    # the same batches in the same order: the same losses and the same final model
    assert resumed["final"]["miou"] == pytest.approx(whole["final"]["miou"], abs=1e-6)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["history"]["loss"]
    ref = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["history"]["loss"]
    assert cut == pytest.approx(ref, rel=1e-5)
    # the checkpoint choice covers the checkpoints scored before the interruption
    assert resumed["selection"]["chosen_steps"] == whole["selection"]["chosen_steps"]
    assert resumed["selection"]["fold_miou"] == pytest.approx(whole["selection"]["fold_miou"])
    assert set(resumed["selection"]["chosen_steps"]) & {2, 4}  # not only the last one
    saved = torch.load(tmp_path / "cut" / "scores.pt", weights_only=True)
    assert sorted(saved["per_image"]) == [2, 4, 6]
    saved_source = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["sources"][0]
    assert saved_source["workers"] == workers
    if workers:  # the loader's state, holding each worker's stream state
        assert "_snapshot" in saved_source["state"]
    else:
        assert saved_source["state"]["items"] == 6  # the stream's own state: 6 batches
    # another worker count cannot continue the same slices of the stream: refused with the fix
    other = 1 if workers else 2
    expected = f"saved with --workers {workers}, this run has --workers {other}: resume with"
    with pytest.raises(ValueError, match=expected):
        run(8, "cut", "--resume", "--workers", str(other))


@pytest.mark.parametrize(
    "option",
    [
        ["--folds", "1"],
        ["--eval-batch-size", "0"],
        ["--eval-every", "-1"],
        ["--val-samples", "0"],
        ["--lr", "0"],
        ["--weight-decay", "-1"],
        ["--drop-uncertain", "1.5"],
        ["--workers", "-1"],
        ["--threads", "0"],
        ["--seed", str(2**63)],
        ["--max-steps", "0"],
    ],
)
def test_example_refuses_nonsense_counts_at_parse_time(option, capsys):
    example = load_example("train_deeplab")
    base = ["--preset", "toyface-14", "--eval-toy-test", "4"]
    with pytest.raises(SystemExit) as exc:
        example.parse_args([*base, *option])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option[0] in err and len(err.strip().splitlines()) == 1


def test_example_refuses_more_folds_than_eval_images_before_training(tmp_path, capsys):
    gen, interp = make_tiny_models(tmp_path / "m", size=32)
    example = load_example("train_deeplab")
    argv = [
        "--generator", str(gen), "--interpreter", str(interp), "--eval-toy-test", "3",
        "--max-steps", "4", "--eval-every", "2", "--threads", "1", "--no-progress",
        "--checkpoint-dir", str(tmp_path / "ckpt"),
    ]  # fmt: skip
    with pytest.raises(UsageError, match="--folds 5 needs >= 5 eval images, got 3"):
        example.run(example.parse_args(argv))
    assert not (tmp_path / "ckpt").exists()  # refused before the first step
    # from the command line: one line, exit 2
    assert example.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "train_deeplab.py: error: --folds 5 needs >= 5 eval images, got 3"


def test_example_refuses_an_eval_folder_whose_classes_are_in_another_order(tmp_path, capsys):
    gen, interp = make_tiny_models(tmp_path / "m", size=32)
    images, masks = render_labeled("test", 2, size=32)
    swapped = [CLASS_NAMES[1], CLASS_NAMES[0], *CLASS_NAMES[2:]]  # skin <-> background
    write_labeled_folder(tmp_path / "real", images, masks, class_names=swapped)
    example = load_example("train_deeplab")
    argv = [
        "--generator", str(gen), "--interpreter", str(interp),
        "--eval-folder", str(tmp_path / "real"), "--max-steps", "1", "--threads", "1",
        "--no-progress",
    ]  # fmt: skip
    assert example.main(argv) == 2
    err = capsys.readouterr().err
    assert "classes.json" in err and "train_deeplab.py: error:" in err


def test_stream_position_reads_an_untagged_state_as_saved_without_workers():
    """A last.pt written before the worker count was kept holds the stream's bare state."""
    position_class = load_example("train_deeplab").StreamPosition
    source = CountingSource()
    position_class(source, 0).load_state_dict({"next": 7})
    assert source.next == 7
    assert position_class(source, 0).state_dict() == {"workers": 0, "state": {"next": 7}}
    with pytest.raises(ValueError, match="saved with --workers 0, this run has --workers 2"):
        position_class(CountingSource(), 2).load_state_dict({"next": 7})
