"""A convolutional interpreter head on the toy preset's annotations (examples/toy/conv_head.py)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from example_scripts import load_example

conv_head = load_example("toy/conv_head", "toy_conv_head")


def _changed_pixels(kernel: int) -> torch.Tensor:
    """Which output pixels move when one input pixel (the centre) changes."""
    torch.manual_seed(0)
    net = conv_head.conv_head(5, (8, 4), kernel, 3).eval()
    x = torch.randn(1, 5, 11, 11)
    y = x.clone()
    y[0, :, 5, 5] += 3.0
    with torch.no_grad():
        return (net(x) - net(y)).abs().amax(1)[0] > 1e-6


def test_kernel_one_is_a_per_pixel_classifier():
    changed = _changed_pixels(1)
    assert changed[5, 5] and changed.sum() == 1


def test_kernel_three_sees_a_five_by_five_field():
    changed = _changed_pixels(3)
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 7, 3, 7)
    assert changed.sum() == 25


def test_stack_maps_upsamples_bilinearly_and_keeps_the_order():
    coarse = torch.randn(2, 3, 4, 4)
    fine = torch.randn(2, 2, 8, 8)
    stacked = conv_head.stack_maps([coarse, fine], (8, 8))
    assert stacked.shape == (2, 5, 8, 8) and stacked.dtype == torch.float16
    expected = F.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(stacked[:, :3].float(), expected, atol=1e-2)
    assert torch.allclose(stacked[:, 3:].float(), fine, atol=1e-2)
    # one image's maps without a batch dimension
    single = conv_head.stack_maps([coarse[0], fine[0]], (8, 8))
    assert torch.equal(single, stacked[:1])


def test_heads_learn_a_separable_task_and_average_probabilities():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, 6, 6, generator=g)
    y = (x[:, 0] > 0).long()  # the class is the sign of channel 0
    args = conv_head.parse_args(["--out", "unused", "--models", "2", "--checkpoints", "150"])
    args.hidden, args.batch, args.lr, args.kernel = [8, 4], 2, 1e-2, 1
    seen = []
    heads = conv_head.train_heads(x, y, args, lambda step, h: seen.append(step))
    assert seen == [150] and len(heads) == 2
    assert torch.equal(conv_head.head_labels(heads, x), y)
    probs = conv_head.head_probs(heads, x)
    mean = sum(h.eval()(x).softmax(1) for h in heads) / 2
    assert torch.allclose(probs, mean, atol=1e-6)


def test_runs_on_the_preset_and_resumes(tmp_path):
    argv = ["--out", str(tmp_path), "--models", "1", "--checkpoints", "2", "4", "--eval", "8"]
    assert conv_head.main(argv) == 0
    first = json.loads((tmp_path / "conv_head.json").read_text())
    assert set(first["heads"]) == {"2", "4"}
    assert 0 < first["shipped_vs_annotator"]["miou"] <= 1
    weights = (tmp_path / "heads.safetensors").read_bytes()
    assert conv_head.main(argv) == 0  # cached: the heads are not trained again
    assert (tmp_path / "heads.safetensors").read_bytes() == weights
    again = json.loads((tmp_path / "conv_head.json").read_text())
    assert again["heads"]["4"]["fit_seconds"] == first["heads"]["4"]["fit_seconds"]


def test_trains_a_student_on_the_heads_labels_once(tmp_path):
    argv = ["--out", str(tmp_path), "--models", "1", "--checkpoints", "2", "--eval", "4"]
    argv += ["--student-steps", "2", "--count", "4", "--test-count", "4", "--batch-size", "2"]
    assert conv_head.main([*argv, "--no-progress"]) == 0
    first = json.loads((tmp_path / "conv_head.json").read_text())
    student = first["student_2_4_2x2_test4"]
    assert 0 <= student["miou"] <= 1 and 0 <= student["labels_vs_annotator"] <= 1
    assert conv_head.main([*argv, "--no-progress"]) == 0
    again = json.loads((tmp_path / "conv_head.json").read_text())
    assert again["student_2_4_2x2_test4"]["train_seconds"] == student["train_seconds"]


@pytest.mark.parametrize(
    "argv",
    [["--kernel", "2"], ["--models", "0"], ["--checkpoints", "0"], ["--student-steps", "-1"]],
)
def test_refuses_bad_settings(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        conv_head.parse_args(["--out", str(tmp_path), *argv])
    assert exc.value.code == 2
    assert "conv_head.py" in capsys.readouterr().err
