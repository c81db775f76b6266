"""Review: inputs of the downstream training and scoring refused before the work.

A non-divisible ``--eval-size`` of train_deeplab.py, a model of another class count in
``evaluate``, a ``checkpoint_dir`` that is a file, an ``eval_fn`` that returns no dict
and 0..255 float images in ``evaluate`` each failed late or not at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from example_scripts import assert_one_line, load_example

from dgan_data.downstream.train import (
    build_unet,
    evaluate,
    real_batches,
    render_labeled,
    train_segmentation,
)

deeplab = load_example("train_deeplab", "inputs_review_train_deeplab")
BASE = ["--preset", "toyface-14", "--eval-toy-test", "4", "--max-steps", "2"]


@pytest.fixture(scope="module")
def labeled() -> tuple[torch.Tensor, torch.Tensor]:
    return render_labeled("test", 2, size=32)


def _model(classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_unet(classes, image_size=32)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--eval-size", "40", "40"], ["--eval-size", "40 40", "divisible by 16", "48 48"]),
        (["--eval-size", "36", "64", "--output-stride", "8"], ["divisible by 8", "40 64"]),
    ],
)
def test_train_deeplab_refuses_an_eval_size_off_the_output_stride_when_parsed(
    extra: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """It was refused at the first evaluation, after the training, and the final
    checkpoint (written after the final evaluation) was lost."""
    with pytest.raises(SystemExit) as exc:
        deeplab.parse_args([*BASE, *extra])
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, *words)


def test_train_deeplab_accepts_eval_sizes_on_the_output_stride() -> None:
    assert deeplab.parse_args([*BASE, "--eval-size", "48", "64"]).eval_size == [48, 64]
    args = deeplab.parse_args([*BASE, "--eval-size", "40", "40", "--output-stride", "8"])
    assert args.eval_size == [40, 40]


def test_evaluate_refuses_a_model_of_another_class_count(labeled) -> None:
    images, masks = labeled
    with pytest.raises(ValueError, match=r"predicts K = 3 classes, but num_classes=14") as exc:
        evaluate(_model(3), (images, masks), 14)  # an mIoU, silently
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match=r"predicts K = 14 classes, but num_classes=3"):
        evaluate(_model(14), (images, masks.clamp(max=2)), 3)  # blamed the predicted ids
    assert evaluate(_model(14), (images, masks), 14)["num_images"] == 2


def test_evaluate_refuses_0_255_float_images(labeled) -> None:
    images, masks = labeled
    with pytest.raises(ValueError, match=r"evaluate: images 0\.\.1: float images must be in"):
        evaluate(_model(14), (images * 255, masks), 14)


def test_evaluate_takes_normalised_images_for_a_model_trained_on_them(labeled) -> None:
    """A stream made with ``normalize=`` trains on such images; evaluate must take them."""
    images, masks = labeled
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    normalised = (images - mean) / std
    assert float(normalised.min()) < 0 and float(normalised.max()) > 1
    assert evaluate(_model(14), (normalised, masks), 14)["num_images"] == 2


def _counted(source, seen: list[int]):
    for batch in source:
        seen.append(1)
        yield batch


@pytest.mark.parametrize("where", ["afile", "afile/sub"])
def test_train_segmentation_refuses_a_file_as_checkpoint_dir_before_step_0(
    tmp_path: Path, labeled, where: str
) -> None:
    images, masks = labeled
    (tmp_path / "afile").write_text("x")
    seen: list[int] = []
    with pytest.raises(ValueError, match="checkpoint_dir=") as exc:
        train_segmentation(
            _model(14),
            _counted(real_batches(images, masks, 2), seen),
            2,
            progress=False,
            checkpoint_dir=tmp_path / where,
        )
    assert "afile" in str(exc.value) and "not a folder" in str(exc.value)
    assert not seen  # no batch taken, no step run


def test_train_segmentation_refuses_an_eval_fn_that_returns_no_dict(labeled) -> None:
    images, masks = labeled
    with pytest.raises(TypeError, match=r"eval_fn must return a dict .*got float at step 1"):
        train_segmentation(
            _model(14),
            real_batches(images, masks, 2),
            1,
            progress=False,
            eval_fn=lambda m, s: 0.5,
        )
    history = train_segmentation(
        _model(14), real_batches(images, masks, 2), 1, progress=False, eval_fn=lambda m, s: None
    )
    assert history.evals == [{"step": 1}]  # None is still accepted


def test_evaluate_gives_the_model_its_mode_back_when_a_batch_is_refused(labeled) -> None:
    """A refused batch left a training model in eval mode (BatchNorm then froze)."""
    images, masks = labeled
    model = _model(14).train()
    with pytest.raises(ValueError, match="float images must be in"):
        evaluate(model, (images * 255, masks), 14)
    assert model.training
    model.eval()
    evaluate(model, (images, masks), 14)
    assert not model.training
