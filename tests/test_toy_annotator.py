"""The toy reference annotator: training script smoke run, save/load, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from example_scripts import load_example

pytest.importorskip("segmentation_models_pytorch")

from dgan_data.metrics import confusion_matrix, metrics_from_confusion
from dgan_data.toy import NUM_CLASSES, render_faces
from dgan_data.toy.annotator import (
    DEFAULT_ANNOTATOR_PATH,
    annotate,
    build_annotator,
    load_annotator,
)


def _load_script():
    # load_example puts examples/toy on sys.path: the script imports train_gan's helpers
    return load_example("toy/train_annotator")


def test_build_gives_full_resolution_logits() -> None:
    model = build_annotator(NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, NUM_CLASSES, 64, 64)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        model(torch.rand(2, 64, 64))


def test_train_script_two_steps_and_load(tmp_path: Path) -> None:
    out = tmp_path / "annot.safetensors"
    script = _load_script()
    meta = script.main(
        [
            "--out", str(out), "--steps", "2", "--batch-size", "4",
            "--train-count", "8", "--test-count", "4", "--ckpt-every", "1",
        ]
    )  # fmt: skip
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert not out.with_suffix(".ckpt.pt").exists()  # removed after a finished run
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["num_classes"] == NUM_CLASSES and len(saved["class_names"]) == NUM_CLASSES
    assert 0 <= saved["test_miou"] <= 1 and saved["test_miou"] == meta["test_miou"]

    model = load_annotator(out)
    assert not model.training
    images, _ = render_faces([1, 2, 3])
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (3, NUM_CLASSES, 64, 64)
    labels = annotate(model, images, batch_size=2)
    assert labels.shape == (3, 64, 64) and labels.dtype == torch.int64
    assert torch.equal(labels, logits.argmax(1))


def test_load_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train_annotator\.py"):
        load_annotator(tmp_path / "nope.safetensors")


@pytest.mark.skipif(not DEFAULT_ANNOTATOR_PATH.is_file(), reason="shipped annotator not trained")
def test_shipped_annotator_is_small_and_accurate() -> None:
    assert DEFAULT_ANNOTATOR_PATH.stat().st_size < 8 * 2**20
    model = load_annotator()
    assert model.metadata["test_miou"] > 0.5
    images, masks = render_faces(range(2_000_000, 2_000_016))
    pred = annotate(model, images)
    miou = metrics_from_confusion(confusion_matrix(pred, masks, NUM_CLASSES))["miou"]
    assert miou > 0.5


def test_the_train_script_renders_and_scores_the_world_it_is_given() -> None:
    from dgan_data.toy import SPLITS, evaluate_annotator

    script = _load_script()
    images, masks = script.render_pool(3, "cpu", "wide")
    expected, exact = render_faces(SPLITS["pool"][:3], variation="wide")
    assert torch.equal(images, (expected * 255).round().to(torch.uint8))
    assert torch.equal(masks, exact.to(torch.uint8))
    # the shipped annotator learned the base world: wide renders score it lower
    model = load_annotator()
    base = evaluate_annotator(model, "test", 0, 64)
    wide = evaluate_annotator(model, "test", 0, 64, variation="wide")
    assert wide["num_images"] == base["num_images"] == 64
    assert wide["miou"] < base["miou"] - 0.05
