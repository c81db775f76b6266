"""Metrics and evaluation protocols: hand-computed expectations, smp as an independent check."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from dgan_data.metrics import (
    ConfusionMatrix,
    auroc,
    confusion_matrix,
    cross_validation_folds,
    five_fold_protocol,
    format_iou_table,
    holdout_protocol,
    metrics_from_confusion,
    per_image_confusion,
)

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def batch(*rows: list[int]) -> torch.Tensor:
    """A (1, len(rows), len(row)) int64 tensor from literal rows."""
    return torch.tensor([list(rows)], dtype=torch.int64)


def assert_iou(actual: torch.Tensor, expected: list[float]) -> None:
    exp = torch.tensor(expected, dtype=torch.float64)
    assert torch.allclose(actual, exp, equal_nan=True, atol=1e-12), (actual, exp)


# ------------------------------------------------------------------ hand-made confusion cases
def test_perfect_prediction() -> None:
    target = batch([0, 1], [2, 2])
    cm = ConfusionMatrix(3)
    cm.update(target.clone(), target)
    r = cm.compute()
    assert r["confusion"].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 2]]
    assert_iou(r["iou"], [1.0, 1.0, 1.0])
    assert r["miou"] == 1.0
    assert r["pixel_accuracy"] == 1.0
    assert r["support"].tolist() == [1, 1, 2]


def test_one_class_entirely_wrong() -> None:
    # class 1 is always predicted as class 2
    target = batch([0, 0, 1, 1, 2, 2])
    pred = batch([0, 0, 2, 2, 2, 2])
    r = metrics_from_confusion(confusion_matrix(pred, target, 3))
    assert r["confusion"].tolist() == [[2, 0, 0], [0, 0, 2], [0, 0, 2]]
    # class 0: 2 / 2; class 1: 0 / 2; class 2: 2 / (2 + 4 - 2)
    assert_iou(r["iou"], [1.0, 0.0, 0.5])
    assert r["miou"] == pytest.approx(1.5 / 3)
    assert r["pixel_accuracy"] == pytest.approx(4 / 6)
    assert_iou(r["per_class_accuracy"], [1.0, 0.0, 1.0])
    # leaving class 0 out of the mean: (0 + 0.5) / 2
    assert metrics_from_confusion(r["confusion"], exclude=[0])["miou"] == pytest.approx(0.25)


def test_ignored_pixels_are_not_counted() -> None:
    target = batch([0, 255, 1], [255, 1, 0])
    pred_a = batch([0, 0, 1], [0, 1, 1])
    pred_b = batch([0, 1, 1], [1, 1, 1])  # differs only where the target is 255
    ca = confusion_matrix(pred_a, target, 2)
    cb = confusion_matrix(pred_b, target, 2)
    assert torch.equal(ca, cb)
    # counted pixels: (0,0) (1,1) (1,1) (0,1)
    assert ca.tolist() == [[1, 1], [0, 2]]
    assert ca.sum().item() == 4
    # with ignore_index=None the 255 targets are an error, not silently dropped
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(pred_a, target, 2, ignore_index=None)


def test_class_absent_from_target_and_prediction_is_nan_and_left_out() -> None:
    target = batch([0, 0, 1, 2])
    pred = batch([0, 1, 1, 2])  # class 3 appears nowhere
    r = metrics_from_confusion(confusion_matrix(pred, target, 4))
    # class 0: 1 / 2; class 1: 1 / 2; class 2: 1 / 1; class 3: 0 / 0
    assert_iou(r["iou"], [0.5, 0.5, 1.0, math.nan])
    assert r["miou"] == pytest.approx(2.0 / 3)
    # the release code's convention counts it as 0
    zero = metrics_from_confusion(r["confusion"], absent="zero")
    assert zero["miou"] == pytest.approx(2.0 / 4)


def test_class_predicted_but_absent_from_target_has_iou_zero() -> None:
    target = batch([0, 0, 0, 1])
    pred = batch([0, 0, 2, 1])
    r = metrics_from_confusion(confusion_matrix(pred, target, 3))
    # class 0: 2 / 3; class 1: 1 / 1; class 2: 0 / 1
    assert_iou(r["iou"], [2 / 3, 1.0, 0.0])
    assert r["miou"] == pytest.approx((2 / 3 + 1) / 3)
    assert r["support"].tolist() == [3, 1, 0]
    assert math.isnan(float(r["per_class_accuracy"][2]))


def test_accumulating_batches_equals_one_big_batch() -> None:
    g = torch.Generator().manual_seed(1)
    pred = torch.randint(0, 5, (6, 9, 7), generator=g)
    target = torch.randint(0, 5, (6, 9, 7), generator=g)
    target[torch.rand(6, 9, 7, generator=g) < 0.2] = 255
    whole = ConfusionMatrix(5)
    whole.update(pred, target)
    parts = ConfusionMatrix(5)
    for lo, hi in [(0, 1), (1, 4), (4, 6)]:
        parts.update(pred[lo:hi], target[lo:hi])
    assert torch.equal(whole.matrix, parts.matrix)
    merged = ConfusionMatrix(5)
    other = ConfusionMatrix(5)
    merged.update(pred[:2], target[:2])
    other.update(pred[2:], target[2:])
    assert torch.equal(merged.merge(other).matrix, whole.matrix)
    # the counted pixels are exactly the non-ignored ones
    assert whole.matrix.sum().item() == int((target != 255).sum())


def test_per_image_matrices_sum_to_the_total() -> None:
    target = torch.tensor([[[0, 1]], [[1, 1]]])
    pred = torch.tensor([[[0, 0]], [[1, 0]]])
    per = per_image_confusion(pred, target, 2)
    assert per.tolist() == [[[1, 0], [1, 0]], [[0, 0], [1, 1]]]
    cm = ConfusionMatrix(2, keep_per_image=True)
    cm.update(pred[:1], target[:1])
    cm.update(pred[1:], target[1:])
    assert torch.equal(cm.per_image(), per)
    assert cm.matrix.tolist() == [[1, 0], [2, 1]]


def test_logits_equal_argmax() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 4, 5, 6, generator=g)
    target = torch.randint(0, 4, (3, 5, 6), generator=g)
    a, b = ConfusionMatrix(4), ConfusionMatrix(4)
    a.update(logits, target)
    b.update(logits.argmax(1), target)
    assert torch.equal(a.matrix, b.matrix)
    with pytest.raises(ValueError, match="channels"):
        a.update(torch.randn(3, 3, 5, 6), target)


def smp_iou(pred: torch.Tensor, target: torch.Tensor, K: int) -> torch.Tensor:
    """Dataset-level per-class IoU computed by segmentation-models-pytorch (a reference)."""
    from segmentation_models_pytorch.metrics import get_stats, iou_score

    tp, fp, fn, tn = get_stats(pred, target, mode="multiclass", num_classes=K, ignore_index=255)
    stats = [s.sum(0, keepdim=True).to(torch.float64) for s in (tp, fp, fn, tn)]
    return iou_score(*stats, reduction="none", zero_division=math.nan)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_smp_on_random_data(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    K = 6
    pred = torch.randint(0, K - 1, (4, 16, 12), generator=g)  # class K-1 never predicted
    target = torch.randint(0, K - 2, (4, 16, 12), generator=g)  # K-2, K-1 never in target
    target[torch.rand(4, 16, 12, generator=g) < 0.15] = 255
    pred[0, 0, 0] = K - 2  # so class K-2 is predicted at least once (IoU 0)
    if target[0, 0, 0] == 255:
        target[0, 0, 0] = 0
    cm = ConfusionMatrix(K)
    cm.update(pred, target)
    ours = cm.compute()["iou"]
    theirs = smp_iou(pred, target, K)
    assert math.isnan(float(ours[K - 1])) and math.isnan(float(theirs[K - 1]))
    assert float(ours[K - 2]) == 0.0
    assert torch.allclose(ours, theirs.to(torch.float64), equal_nan=True, atol=1e-6)


def test_bad_inputs_raise_clear_errors() -> None:
    target = batch([0, 1])
    with pytest.raises(ValueError, match=r"pred has 1 counted pixels with class ids 3"):
        confusion_matrix(batch([0, 3]), target, 2)
    with pytest.raises(ValueError, match=r"target has 1 pixels with class ids 7"):
        confusion_matrix(batch([0, 1]), batch([0, 7]), 2)
    with pytest.raises(ValueError, match="ignore_index=0 is a class id"):
        ConfusionMatrix(3, ignore_index=0)
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(
            torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 3, 2, dtype=torch.long), 2
        )
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        confusion_matrix(
            torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), 2
        )
    with pytest.raises(ValueError, match="integer class"):
        confusion_matrix(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3, dtype=torch.long), 2)
    # a prediction at an ignored pixel may be anything
    assert confusion_matrix(batch([0, 99]), batch([0, 255]), 2).tolist() == [[1, 0], [0, 0]]


def test_reset_and_state_dict_round_trip() -> None:
    target = batch([0, 1, 1])
    pred = batch([0, 0, 1])
    cm = ConfusionMatrix(2, keep_per_image=True)
    cm.update(pred, target)
    state = cm.state_dict()
    fresh = ConfusionMatrix(2, keep_per_image=True)
    fresh.load_state_dict(state)
    assert fresh.matrix.tolist() == [[1, 0], [1, 1]]
    assert torch.equal(fresh.per_image(), cm.per_image())
    cm.reset()
    assert cm.matrix.sum().item() == 0 and cm.per_image().shape == (0, 2, 2)
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(3).load_state_dict(state)


def test_all_reduce_without_process_group_is_a_no_op() -> None:
    cm = ConfusionMatrix(2)
    cm.update(batch([0, 1]), batch([0, 1]))
    assert cm.all_reduce().matrix.tolist() == [[1, 0], [0, 1]]


_DDP_WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    torch.set_num_threads(1)
    from dgan_data.metrics import ConfusionMatrix
    rank, init, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    cm = ConfusionMatrix(2)
    if rank == 0:
        cm.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 0]]]))
    else:
        cm.update(torch.tensor([[[1, 1, 1]]]), torch.tensor([[[1, 1, 0]]]))
    cm.all_reduce()
    torch.save(cm.matrix, out)
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_all_reduce_sums_over_two_gloo_ranks(tmp_path) -> None:
    init = f"file://{tmp_path / 'rendezvous'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DDP_WORKER, str(r), init, str(tmp_path / f"r{r}.pt")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode(errors="replace")
    # rank 0: (0->0), (0->1); rank 1: (1->1), (1->1), (0->1)
    expected = [[1, 2], [0, 2]]
    for r in range(2):
        assert torch.load(tmp_path / f"r{r}.pt").tolist() == expected


@requires_cuda
def test_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(3)
    pred = torch.randint(0, 4, (2, 8, 8), generator=g)
    target = torch.randint(0, 4, (2, 8, 8), generator=g)
    target[:, 0] = 255
    gpu = ConfusionMatrix(4)
    gpu.update(pred.cuda(), target.cuda())
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.matrix.cpu(), confusion_matrix(pred, target, 4))
    fixed = ConfusionMatrix(4, device="cuda")
    fixed.update(pred, target)
    assert torch.equal(fixed.matrix.cpu(), gpu.matrix.cpu())


# ------------------------------------------------------------------ folds
@pytest.mark.parametrize(("n", "k"), [(5, 5), (10, 5), (12, 5), (7, 3), (101, 5)])
def test_folds_disjoint_covering_balanced(n: int, k: int) -> None:
    folds = cross_validation_folds(n, k, seed=0)
    assert len(folds) == k
    flat = np.concatenate(folds)
    assert sorted(flat.tolist()) == list(range(n))  # covering and disjoint
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_folds_deterministic_and_seeded() -> None:
    a = cross_validation_folds(30, 5, seed=7)
    b = cross_validation_folds(30, 5, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = cross_validation_folds(30, 5, seed=8)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    # shuffled: not simply contiguous slices
    assert not all(np.array_equal(f, np.arange(f[0], f[0] + len(f))) for f in a)


def test_folds_without_seed_are_contiguous() -> None:
    folds = cross_validation_folds(7, 3, seed=None)
    assert [f.tolist() for f in folds] == [[0, 1, 2], [3, 4], [5, 6]]


def test_fold_hash_is_splitmix64() -> None:
    from dgan_data.seeds import splitmix64 as _splitmix64

    # published first output of SplitMix64 from state 0
    assert int(_splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF


def test_fold_errors() -> None:
    with pytest.raises(ValueError, match="non-empty folds"):
        cross_validation_folds(3, 5)
    with pytest.raises(ValueError, match="num_folds"):
        cross_validation_folds(10, 1)


# ------------------------------------------------------------------ protocols
PERFECT = [[1, 0], [0, 1]]  # one pixel of each class, both right: mIoU 1
SWAPPED = [[0, 1], [1, 0]]  # both wrong: mIoU 0


def per_image(pattern: str) -> np.ndarray:
    """(N, 2, 2) per-image matrices from a string like 'PPPSS'."""
    return np.array([PERFECT if c == "P" else SWAPPED for c in pattern], dtype=np.int64)


def test_five_fold_protocol_hand_case() -> None:
    # A is right on images 0-2, B on images 3-4; folds are single images.
    confusions = {"A": per_image("PPPSS"), "B": per_image("SSSPP")}
    r = five_fold_protocol(confusions, seed=None)
    assert [f.tolist() for f in r.folds] == [[0], [1], [2], [3], [4]]
    assert r.chosen == ["A", "A", "A", "B", "B"]
    assert r.selection_miou == [1.0, 1.0, 1.0, 1.0, 1.0]
    # A on 4 images (2 P, 2 S): confusion [[2, 2], [2, 2]] -> IoU 2 / 6 per class
    # B on 4 images (1 P, 3 S): confusion [[1, 3], [3, 1]] -> IoU 1 / 7 per class
    assert r.fold_miou == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1 / 7, 1 / 7])
    assert r.mean == pytest.approx((3 * (1 / 3) + 2 * (1 / 7)) / 5)
    assert r.mean == pytest.approx(9 / 35)
    dev = [8 / 105] * 3 + [-12 / 105] * 2  # 1/3 - 9/35 and 1/7 - 9/35
    assert r.std == pytest.approx(math.sqrt(sum(d * d for d in dev) / 5))
    assert r.per_class_iou.shape == (5, 2)
    assert r.per_class_iou[3].tolist() == pytest.approx([1 / 7, 1 / 7])
    assert r.selection_table.tolist() == [[1, 1, 1, 0, 0], [0, 0, 0, 1, 1]]


def test_five_fold_protocol_ties_callables_and_partial_folds() -> None:
    a = per_image("PPPSS")
    # ties go to the first checkpoint in mapping order
    r1 = five_fold_protocol({"A": a, "A2": a.copy(), "B": per_image("SSSPP")}, seed=None)
    assert r1.chosen == ["A", "A", "A", "B", "B"]
    r2 = five_fold_protocol({"A2": a.copy(), "A": a}, seed=None)
    assert r2.chosen == ["A2"] * 5

    # a callable source gives the same result; it is called once per fold
    calls: list[list[int]] = []

    def source(idx: np.ndarray) -> np.ndarray:
        calls.append(idx.tolist())
        return a[idx].sum(0)

    r3 = five_fold_protocol({"A": source}, num_items=5, seed=3)
    r4 = five_fold_protocol({"A": a}, seed=3)
    assert r3.fold_miou == pytest.approx(r4.fold_miou)
    assert len(calls) == 5

    # folds need not cover every image; uncovered ones are always in the test part
    r5 = five_fold_protocol({"A": per_image("PPS")}, folds=[[0], [1]])
    # test parts: {1, 2} and {0, 2}, each P + S -> [[1, 1], [1, 1]] -> IoU 1 / 3
    assert r5.fold_miou == pytest.approx([1 / 3, 1 / 3])
    assert r5.std == 0.0
    with pytest.raises(ValueError, match="overlap"):
        five_fold_protocol({"A": a}, folds=[[0, 1], [1, 2]])


def test_five_fold_protocol_uses_dataset_level_miou_and_exclude() -> None:
    # 3 classes; checkpoint always right on classes 0 and 1, never on class 2
    img = [[2, 0, 0], [0, 1, 0], [0, 1, 0]]  # class 2's pixel predicted as 1
    arr = np.array([img] * 10)
    r = five_fold_protocol({"s": arr}, num_folds=5, seed=0)
    # test part of 8 images: [[16,0,0],[0,8,0],[0,8,0]]: IoU 1, 8/16, 0
    assert r.mean == pytest.approx((1 + 0.5 + 0) / 3)
    r_ex = five_fold_protocol({"s": arr}, num_folds=5, seed=0, exclude=[0])
    assert r_ex.mean == pytest.approx(0.25)


def test_holdout_protocol() -> None:
    perfect = np.array(PERFECT)
    evaluated: list[int] = []

    def test_conf(step: int) -> np.ndarray:
        evaluated.append(step)
        return perfect if step == 20 else np.array(SWAPPED)

    r = holdout_protocol({10: 0.5, 20: 0.7, 30: 0.7}, test_conf)
    assert r.checkpoint == 20 and r.val_score == 0.7
    assert r.miou == 1.0
    assert evaluated == [20]
    # validation given as confusion matrices: mIoU picks the perfect one
    r2 = holdout_protocol(
        {"a": np.array(SWAPPED), "b": per_image("PP")}, {"a": perfect, "b": per_image("SP")}
    )
    assert r2.checkpoint == "b" and r2.val_score == 1.0
    # test on [[1,1],[1,1]]: IoU 1/3 per class
    assert r2.miou == pytest.approx(1 / 3)


def test_format_iou_table() -> None:
    r = metrics_from_confusion(
        [[2, 0, 0, 0], [0, 0, 2, 0], [0, 0, 2, 0], [0, 0, 0, 0]], exclude=[0]
    )
    text = format_iou_table(r, ["background", "wall", "floor", "bed"])
    lines = text.splitlines()
    assert "background" in lines[1] and "100.0" in lines[1] and "(excluded)" in lines[1]
    assert "wall" in lines[2] and " 0.0" in lines[2]
    assert "floor" in lines[3] and "50.0" in lines[3]
    assert lines[4].split() == ["3", "bed", "-", "-", "0"]
    # mean over wall (0) and floor (0.5); bed is absent, background excluded
    assert "mIoU 25.0 over 2 of 4 classes (excluded: background)" in lines[-1]
    with pytest.raises(ValueError, match="class names"):
        format_iou_table(r, ["a"])
    cv = five_fold_protocol({"A": per_image("PPPSS"), "B": per_image("SSSPP")}, seed=None)
    cv_text = format_iou_table(cv, ["bg", "fg"])
    assert f"mIoU {9 / 35 * 100:.1f} ± " in cv_text and "over 5 folds" in cv_text
    assert "'A', 'A', 'A', 'B', 'B'" in cv_text


def test_auroc_equals_pair_counting_with_ties_half():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 300).astype(float)  # many ties
    positive = rng.random(300) < 0.3
    pos, neg = scores[positive], scores[~positive]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert auroc(scores, positive) == pytest.approx(pairs, abs=1e-12)
    assert auroc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == 3.5 / 4
    assert np.isnan(auroc([1.0, 2.0], [False, False]))
