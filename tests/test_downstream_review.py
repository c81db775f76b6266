"""Review findings on downstream training and the metrics: resuming an epoch-sized source,
dtype and layout rules of batches, ConfusionMatrix invariants, a non-finite loss caught
before the optimiser step, argument checks, evaluate's edge cases, auroc's inputs."""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dgan_data.downstream.train as train_module
from dgan_data.downstream.realdata import LabeledFolder, write_labeled_folder
from dgan_data.downstream.train import (
    evaluate,
    metrics_summary,
    real_batches,
    render_batches,
    render_labeled,
    train_segmentation,
)
from dgan_data.metrics import (
    ConfusionMatrix,
    auroc,
    confusion_matrix,
    metrics_from_confusion,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


class Tiny(nn.Module):
    """A 1x1 conv predicting ``k`` classes; ``config`` lets checkpoints be written."""

    config: ClassVar[dict] = {"arch": "tiny"}

    def __init__(self, k: int = 3, norm: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = nn.BatchNorm2d(3) if norm else nn.Identity()
        self.c = nn.Conv2d(3, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.norm(x))


def _pair(n: int = 2, k: int = 3, size: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(
        0, k, (n, size, size), generator=g
    )


def _repeat(*batch):
    while True:
        yield batch[0] if len(batch) == 1 else batch


# ------------------------------------------------- 1. resume on an epoch-sized source
class EpochSource:
    """An epoch-sized re-iterable source that behaves like DatasetGANStream with
    samples_per_epoch: batches seeded by (epoch, index), ``epoch`` advanced by the
    iterator when its epoch ends, its position in ``state_dict``."""

    def __init__(self, per_epoch: int) -> None:
        self.per_epoch = per_epoch
        self.epoch = 0
        self.drawn: list[tuple[int, int]] = []
        self._resume: int | None = None
        self._state = {"epoch": 0, "pos": 0}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict:
        return dict(self._state)

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self._resume = state["epoch"], state["pos"]
        self._state = dict(state)

    def __iter__(self):
        epoch, pos = self.epoch, self._resume or 0
        self._resume = None
        while pos < self.per_epoch:
            self.drawn.append((epoch, pos))
            g = torch.Generator().manual_seed(1000 * epoch + pos)
            pos += 1
            self._state = {"epoch": epoch, "pos": pos}
            yield torch.rand(2, 3, 4, 4, generator=g), torch.randint(0, 3, (2, 4, 4), generator=g)
        self.epoch = epoch + 1
        self._state = {"epoch": self.epoch, "pos": 0}


def _run(source, steps, ckpt=None, resume=False):
    return train_segmentation(
        Tiny(), source, steps, checkpoint_dir=ckpt, resume=resume, resumable_source=source,
        progress=False,
    )  # fmt: skip


@pytest.mark.parametrize("per_epoch", [2, 1])  # 2: cut mid epoch; 1: cut at an epoch boundary
def test_resume_on_an_epoch_sized_source_draws_what_the_uninterrupted_run_draws(
    tmp_path, per_epoch
):
    whole = EpochSource(per_epoch)
    _run(whole, 6)
    assert whole.drawn == [(e, i) for e in range(6 // per_epoch) for i in range(per_epoch)]
    first, second = EpochSource(per_epoch), EpochSource(per_epoch)
    _run(first, 3, tmp_path)
    assert (
        torch.load(tmp_path / "last.pt", weights_only=True)["loop"]["epoch"] == first.drawn[-1][0]
    )
    _run(second, 6, tmp_path, resume=True)
    assert first.drawn + second.drawn == whole.drawn


def test_an_epoch_sized_source_counts_on_from_its_own_epoch_and_old_checkpoints_load(tmp_path):
    source = EpochSource(1)
    source.set_epoch(5)
    _run(source, 2)
    assert source.drawn == [(5, 0), (6, 0)]
    # a last.pt written before the loop's epoch was kept: the restored source's epoch
    first, second = EpochSource(2), EpochSource(2)
    _run(first, 3, tmp_path)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    del state["loop"]
    torch.save(state, tmp_path / "last.pt")
    _run(second, 6, tmp_path, resume=True)
    assert second.drawn == [(1, 1), (2, 0), (2, 1)]


# ------------------------------------------------- 2./3. dtype rules of evaluate, real_batches
def test_evaluate_refuses_float_masks_and_uint8_images_before_casting():
    images, masks = _pair()
    with pytest.raises(ValueError, match=r"evaluate: .*integer masks.*float32 masks"):
        evaluate(Tiny(), (images, masks.float() / 255), 3)
    with pytest.raises(ValueError, match=r"uint8 images: pass images.float\(\) / 255"):
        evaluate(Tiny(), ((images * 255).byte(), masks), 3)
    assert evaluate(Tiny(), (images, masks), 3)["num_images"] == 2


def test_real_batches_checks_its_set_when_called():
    images, masks = _pair(4)
    with pytest.raises(ValueError, match="real_batches: masks must hold integer class ids"):
        real_batches(images, masks.float() / 255, 2, augment=None)
    with pytest.raises(ValueError, match=r"float in \[0, 1\] or uint8, got dtype torch.int32"):
        real_batches((images * 255).round().to(torch.int32), masks, 2, augment=None)
    with pytest.raises(ValueError, match="float images must be in \\[0, 1\\]"):
        real_batches(images * 255, masks, 2, augment=None)
    bad = images.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="1 non-finite values"):
        real_batches(bad, masks, 2, augment=None)
    with pytest.raises(ValueError, match="expected images \\(N, 3, H, W\\)"):
        real_batches(torch.rand(4, 8, 8), masks, 2)  # no next(): refused at the call
    img, _ = next(real_batches((images * 255).round().byte(), masks, 2, augment=None))
    assert img.dtype == torch.float32 and float(img.max()) <= 1.0


# ------------------------------------------------- 4. ConfusionMatrix invariants
def _cm(keep: bool = False) -> ConfusionMatrix:
    cm = ConfusionMatrix(2, keep_per_image=keep)
    cm.update(torch.tensor([[[0, 0, 1]]]), torch.tensor([[[0, 1, 1]]]))
    return cm


def test_confusion_merge_refuses_itself_and_a_refused_merge_changes_nothing():
    cm = _cm()
    with pytest.raises(ValueError, match="into itself"):
        cm.merge(cm)
    assert int(cm.matrix.sum()) == 3
    keep = _cm(keep=True)
    with pytest.raises(ValueError, match="keeps per-image matrices, the other does not"):
        keep.merge(_cm())
    assert int(keep.matrix.sum()) == 3 and int(keep.per_image().sum()) == 3
    assert int(_cm().merge(_cm()).matrix.sum()) == 6


def test_confusion_load_state_dict_refuses_counts_that_are_not_counts():
    state = _cm(keep=True).state_dict()
    cases = [
        ({"confusion": torch.tensor([[1.9, 0.0], [0.5, 2.0]])}, "found fractions"),
        ({"confusion": torch.tensor([[1, -3], [0, 2]])}, "cannot be negative"),
        ({"confusion": torch.zeros(3, 3, dtype=torch.long)}, r"expected a \(2, 2\) matrix"),
        ({"per_image": torch.zeros(5, 7, 7, dtype=torch.long)}, r"expected \(N, 2, 2\)"),
        ({"per_image": None}, "holds no per_image"),
        ({"per_image": torch.full((1, 2, 2), 9)}, "counts more pixels"),
    ]
    for change, words in cases:
        fresh = _cm(keep=True)
        with pytest.raises(ValueError, match=words):
            fresh.load_state_dict({**state, **change})
        assert fresh.matrix.tolist() == [[1, 0], [1, 1]]  # left as it was
    restored = ConfusionMatrix(2, keep_per_image=True)
    restored.load_state_dict(state)
    assert torch.equal(restored.per_image(), state["per_image"])


# ------------------------------------------------- 5. a non-finite loss, before the step
class NanAt(Tiny):
    """Finite logits until call ``at``, NaN from then on."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.calls, self.at = 0, at

    def forward(self, x):
        self.calls += 1
        out = super().forward(x)
        return out * math.nan if self.calls >= self.at else out


def test_a_nan_loss_leaves_the_weights_of_the_last_good_step(monkeypatch):
    # one learning rate for every step: a 2-step run's schedule ends lower than the first
    # two steps of a 5-step run
    monkeypatch.setattr(train_module, "lr_at", lambda step, steps, lr, warmup: lr)
    images, masks = _pair()
    model = NanAt(3)
    with pytest.raises(FloatingPointError, match="step 2: the loss is nan"):
        train_segmentation(model, _repeat(images, masks), 5, progress=False)
    good = NanAt(99)  # the same model, trained the two good steps only
    train_segmentation(good, _repeat(images, masks), 2, progress=False)
    for p, q in zip(model.parameters(), good.parameters()):
        assert torch.isfinite(p).all() and torch.equal(p, q)
    # non-finite images: refused before the forward, BatchNorm statistics stay finite too
    bad = images.clone()
    bad[0, 0, 0, 0] = math.nan
    normed = Tiny(norm=True)
    with pytest.raises(FloatingPointError, match="before the forward pass"):
        train_segmentation(normed, _repeat(bad, masks), 1, progress=False)
    assert all(
        torch.isfinite(t).all() for t in normed.state_dict().values() if t.is_floating_point()
    )


# ------------------------------------------------- 6. resume=True with nothing to resume
def test_resume_without_a_checkpoint_dir_is_refused_and_a_missing_last_pt_warns(tmp_path, caplog):
    images, masks = _pair()
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        train_segmentation(Tiny(), _repeat(images, masks), 2, resume=True, progress=False)
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        history = train_segmentation(
            Tiny(), _repeat(images, masks), 2, resume=True, checkpoint_dir=tmp_path / "new",
            progress=False,
        )  # fmt: skip
    assert history.steps == 2 and len(history.loss) == 2
    assert "does not exist: training starts at step 0" in caplog.text


# ------------------------------------------------- 7. metrics_summary's class names
def test_metrics_summary_refuses_class_names_of_another_length():
    target, pred = torch.tensor([[[0, 1, 2, 3]]]), torch.tensor([[[0, 1, 2, 0]]])
    m = metrics_from_confusion(confusion_matrix(pred, target, 4))
    for names, words in [
        (["bg", "eye", "nose"], "3 names for 4 classes"),
        (["bg", "eye", "nose", "mouth", "ear"], "5 names for 4 classes"),
        ("abcd", "class_names must be a sequence of names"),
    ]:
        with pytest.raises(ValueError, match=words):
            metrics_summary(m, names)
    assert list(metrics_summary(m, ["a", "b", "c", "d"])["per_class_iou"]) == ["a", "b", "c", "d"]


# ------------------------------------------------- 8. write_labeled_folder writes what reads back
def test_write_labeled_folder_refuses_what_labeled_folder_would_refuse_or_misread(tmp_path):
    images, masks = _pair(2)
    nan = images.clone()
    nan[0, :, :4] = math.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_labeled_folder(tmp_path / "nan", nan, masks)
    for names, words in [
        (["skin", "skin", "eye"], "duplicate class names skin"),
        (["skin", "", "eye"], "non-empty"),
        (["skin", " ", "eye"], "non-empty"),
        ("abc", "sequence of names"),
    ]:
        with pytest.raises(ValueError, match=words):
            write_labeled_folder(tmp_path / "names", images, masks, class_names=names)
    with pytest.raises(ValueError, match="names must be a sequence of file stems"):
        write_labeled_folder(tmp_path / "stems", images, masks, names="ab")
    with pytest.raises(ValueError, match=r"class ids 254 outside 0..253"):
        write_labeled_folder(tmp_path / "k255", images, torch.full((2, 8, 8), 254))
    assert not any(tmp_path.iterdir())  # nothing was written
    # a folder holding id 254 (another writer): refused, not read as 255 classes
    write_labeled_folder(tmp_path / "old", images, masks)
    assert LabeledFolder(tmp_path / "old").num_classes == int(masks.max()) + 1
    Image.fromarray(np.full((8, 8), 254, np.uint8)).save(tmp_path / "old" / "masks" / "00001.png")
    with pytest.raises(ValueError, match="class ids 254 out of range \\(at most 254 classes"):
        LabeledFolder(tmp_path / "old")


# ------------------------------------------------- 9. malformed training batches
@pytest.mark.parametrize(
    ("name", "batch", "options", "words"),
    [
        ("ids 3..5", lambda i, m: (i, m + 3), {}, r"step 0: mask ids 3, 4, 5 outside 0..2"),
        ("id -1", lambda i, m: (i, m - 1), {}, r"ids -1 are negative and not ignore_index=255"),
        ("ignore -100", lambda i, m: (i, torch.where(m == 0, 255, m)), {"ignore_index": -100},
         r"mask ids 255 outside 0..2 .*ignore_index=-100"),
        ("mask channel", lambda i, m: (i, m[:, None]), {}, r"masks\[:, 0\]"),
        ("channels-last", lambda i, m: (i.permute(0, 2, 3, 1), m), {}, r"permute\(0, 3, 1, 2\)"),
        ("3-tuple", lambda i, m: [i, m, m], {}, "a list of 3 items"),
        ("no mask", lambda i, m: {"image": i}, {}, "lacks 'mask'"),
    ],
)  # fmt: skip
def test_malformed_training_batches_are_refused_with_the_step_and_the_layout(
    name, batch, options, words
):
    images, masks = _pair()
    with pytest.raises(ValueError, match=words):
        train_segmentation(Tiny(), _repeat(batch(images, masks)), 2, progress=False, **options)


# ------------------------------------------------- 10. counts and num_classes are ints
@pytest.mark.parametrize(
    ("option", "words"),
    [
        ({"steps": True}, "steps must be an int >= 1"),
        ({"steps": 2.5}, "steps must be an int >= 1"),
        ({"steps": "3"}, "steps must be an int >= 1"),
        ({"eval_every": 1.5}, "eval_every must be an int >= 0"),
        ({"eval_every": True}, "eval_every must be an int >= 0"),
        ({"checkpoint_every": -1}, "checkpoint_every must be an int >= 0"),
        ({"checkpoint_every": 1.5}, "checkpoint_every must be an int >= 0"),
        ({"weight_decay": "0.1"}, "weight_decay must be a number"),
        ({"weight_decay": -1.0}, "weight_decay must be in"),
        ({"ignore_index": 255.0}, "ignore_index must be an int"),
    ],
)
def test_train_segmentation_counts_must_be_ints(option, words, tmp_path):
    images, masks = _pair()
    kwargs = {"steps": 2, **option}
    with pytest.raises(ValueError, match=words):
        train_segmentation(
            Tiny(), _repeat(images, masks), progress=False, checkpoint_dir=tmp_path, **kwargs
        )
    assert not any(tmp_path.iterdir())


def test_num_classes_and_batch_source_counts_must_be_ints():
    m = torch.zeros(1, 4, 4, dtype=torch.long)
    for k in (2.0, True, "2"):
        with pytest.raises(ValueError, match="num_classes must be an int"):
            ConfusionMatrix(k)
        with pytest.raises(ValueError, match="num_classes must be an int"):
            confusion_matrix(m, m, k)
    with pytest.raises(ValueError, match="ignore_index must be None or an int"):
        ConfusionMatrix(2, ignore_index=255.0)
    assert ConfusionMatrix(np.int64(2)).num_classes == 2
    with pytest.raises(ValueError, match="num_classes must be an int"):
        evaluate(Tiny(1), (torch.rand(1, 3, 4, 4), m), 2.0)
    images, masks = _pair(4)
    for size in (2.5, True):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            real_batches(images, masks, size, augment=None)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        render_batches("pool", 2.5)
    for count in (0, -1, 2.0):
        with pytest.raises(ValueError, match="count must be"):
            render_labeled("test", count)


def test_model_builders_do_not_truncate_num_classes():
    pytest.importorskip("segmentation_models_pytorch")
    from dgan_data.downstream.train import build_deeplab, build_unet

    for k in (2.7, True):
        with pytest.raises(ValueError, match=r"num_classes must be an int in \[1, 254\]"):
            build_unet(k)
    with pytest.raises(ValueError, match=r"num_classes must be an int in \[1, 254\]"):
        build_deeplab(3.9)


# ------------------------------------------------- 11. evaluate's edge cases
class Zero(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.zeros(x.shape[0], 2, *x.shape[2:])


def test_evaluate_refuses_no_images_mixed_sizes_and_hints_the_mask_layout(tmp_path):
    images, masks = torch.rand(3, 3, 8, 8), torch.zeros(3, 8, 8, dtype=torch.long)
    for empty in (
        (images[:0], masks[:0]),
        DataLoader(TensorDataset(images[:0], masks[:0]), batch_size=2),
        [],
    ):
        with pytest.raises(ValueError, match="evaluate: no images to score"):
            evaluate(Zero(), empty, 2)
    write_labeled_folder(tmp_path, torch.rand(1, 3, 8, 8), masks[:1], names=["a"])
    write_labeled_folder(
        tmp_path, torch.rand(1, 3, 16, 16), torch.ones(1, 16, 16, dtype=torch.long),
        names=["b"], exist_ok=True,
    )  # fmt: skip
    folder = LabeledFolder(tmp_path)
    with pytest.raises(ValueError, match=r"differ in size .*size=.*batch_size=1"):
        evaluate(Zero(), folder, 2)
    assert evaluate(Zero(), folder, 2, batch_size=1)["num_images"] == 2
    with pytest.raises(ValueError, match=r"masks\[:, 0\]"):
        evaluate(Zero(), (images, masks[:, None]), 2)
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match=r"drop it with mask\[:, 0\]"):
        cm.update(masks[:, None], masks[:, None])
    with pytest.raises(ValueError, match=r"mask\[None\]"):
        cm.update(masks[0], masks[0])


# ------------------------------------------------- 12. auroc's inputs
def test_auroc_refuses_nan_scores_odd_labels_and_a_length_mismatch():
    with pytest.raises(ValueError, match="scores must be finite"):
        auroc([np.nan, 0.2, 0.3, np.nan], [True, False, True, False])
    with pytest.raises(ValueError, match="bool or 0/1 labels, found 2"):
        auroc([0.1, 0.2, 0.3, 0.4], [1, 2, 1, 2])
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        auroc([0.1, 0.2, 0.3], [True, False])
    for labels in ([True, False, True], [1, 0, 1], [1.0, 0.0, 1.0], torch.tensor([1, 0, 1])):
        assert auroc([0.9, 0.1, 0.5], labels) == 1.0
