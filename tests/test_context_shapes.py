"""The context-shapes experiment: its layouts match its expansions, the shifts are the
named ones, and the library's expansion comes back afterwards."""

from __future__ import annotations

import pytest
import torch
from example_scripts import load_example

import dgan_data.interpreter.inference as inference_module
import dgan_data.interpreter.model as model_module
from dgan_data import Interpreter

shapes = load_example("toy/context_shapes", "toy_context_shapes")

LAYOUT = [(4, 4, 4), (3, 8, 8), (2, 16, 16)]


def _maps(batch: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, c, h, w, generator=g) for c, h, w in LAYOUT]


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_expansion_has_the_channels_its_layout_declares(shape):
    layout = shapes.shaped_input_layout(shape)(LAYOUT, (3, 16, 16), 1)
    maps = [*_maps(), torch.rand(2, 3, 16, 16)]
    out = shapes.shaped_expand_maps(shape)(maps, 1)
    assert [tuple(m.shape[1:]) for m in out] == [tuple(entry) for entry in layout]


def test_finest_shape_is_the_library_one():
    maps = _maps()
    ours = shapes.shaped_expand_maps("finest")(maps, 1)
    library = inference_module.expand_maps(maps, 1)
    assert len(ours) == len(library)
    for a, b in zip(ours, library, strict=True):
        torch.testing.assert_close(a, b)


def test_coarse_shape_shifts_the_second_resolution_in_its_own_pixels():
    maps = _maps()
    out = shapes.shaped_expand_maps("coarse")(maps, 1)
    assert [tuple(m.shape[1:]) for m in out[3:]] == [(3 * 8, 8, 8), (2 * 8, 16, 16)]
    # offset (0, +1) is the 5th copy (dy major, centre left out): column j reads j + 1
    fifth = out[3][:, 4 * 3 : 5 * 3]
    torch.testing.assert_close(fifth[..., :-1], maps[1][..., 1:])
    torch.testing.assert_close(fifth[..., -1], maps[1][..., -1])  # replicate padding


def test_dilated_shape_reaches_two_pixels_at_the_cost_of_one():
    assert shapes.shape_offsets("dilated", 1) == [
        (dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if dy or dx
    ]
    maps = _maps()
    out = shapes.shaped_expand_maps("dilated")(maps, 1)
    assert out[3].shape[1] == 2 * 8
    down = out[3][:, 6 * 2 : 7 * 2]  # offset (+2, 0): row i reads i + 2
    torch.testing.assert_close(down[..., :-2, :], maps[2][..., 2:, :])


def test_shaped_context_builds_interpreters_with_the_shape_and_restores_the_library():
    saved = model_module.input_layout, inference_module.expand_maps
    with shapes.shaped_context("coarse"):
        interp = Interpreter(LAYOUT, 3, num_models=1, context=1)
        assert interp.in_channels == 9 + (3 + 2) * 8
        pred = interp.predict(_maps(1), output_size=(16, 16), impl="rows")
        assert pred.labels.shape == (1, 16, 16)
    assert (model_module.input_layout, inference_module.expand_maps) == saved
    assert Interpreter(LAYOUT, 3, num_models=1, context=1).in_channels == 9 + 2 * 8
    with pytest.raises(ValueError, match="shape must be one of"), shapes.shaped_context("wide"):
        pass


def test_command_line_refuses_an_unknown_shape(capsys):
    assert shapes.main(["--shape", "wide"]) == 2
    assert "argument --shape: invalid choice: 'wide'" in capsys.readouterr().err
    assert shapes.main(["--shape"]) == 2
    assert "argument --shape: expected one argument" in capsys.readouterr().err


def test_command_line_refuses_variants_without_a_neighbourhood(capsys):
    assert shapes.main(["--shape", "coarse", "--variants", "rgb=1+patch=1", "shipped"]) == 2
    assert "'shipped' must set patch=R" in capsys.readouterr().err
    assert shapes.main(["--variants", "patch=1+selftrain=4"]) == 2
    # the --shape=NAME form is the script's option too, not passed on to the variants
    assert shapes.main(["--shape=dilated", "--variants", "shipped"]) == 2
    assert "'shipped' must set patch=R" in capsys.readouterr().err


def test_help_lists_the_shape_option_with_the_variants_options(capsys):
    """--shape is the script's own option: --help listed only interpreter_variants'."""
    with pytest.raises(SystemExit) as exit_:
        shapes.parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--shape {finest,coarse,dilated}" in out
    assert "--variants" in out and "--save-interpreters" in out


def test_the_shape_and_the_variants_options_are_both_read():
    args = shapes.parse_args(["--shape", "coarse", "--variants", "rgb=1+patch=1"])
    assert args.shape == "coarse"
    assert args.variants == ["rgb=1+patch=1"]
    assert args.variants_argv == ["--variants", "rgb=1+patch=1"]
