"""Pixel context of the interpreter: the generated image and the finest maps' neighbourhood."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from dgan_data import Interpreter
from dgan_data.interpreter import InterpreterFileError
from dgan_data.interpreter.context import (
    MAX_CONTEXT,
    check_context,
    expand_maps,
    input_layout,
    map_layout,
    shifted_copies,
)

LAYOUT = [(4, 4, 4), (3, 8, 8), (2, 16, 16)]


def test_shifted_copies_refuses_an_empty_offset_list():
    m = torch.rand(3, 8, 8)
    assert shifted_copies(m, [(0, 1)]).shape == (3, 8, 8)
    with pytest.raises(ValueError, match="at least one"):
        shifted_copies(m, [])


def test_expand_maps_appends_shifted_copies_of_the_finest_maps():
    coarse = torch.rand(2, 4, 8, 8)
    fine = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    maps = expand_maps([coarse, fine], 1)
    assert len(maps) == 3 and maps[0] is coarse and maps[1] is fine
    extra = maps[2]
    assert extra.shape == (2, 3 * 8, 16, 16)  # 8 offsets of the 3 fine channels
    # offsets dy-major: (-1,-1) (-1,0) (-1,1) (0,-1) (0,1) (1,-1) (1,0) (1,1); the 5th,
    # (0, +1), at (y, x) holds the map at (y, x + 1), the last column repeated
    right = extra[:, 4 * 3 : 5 * 3]
    assert torch.equal(right[..., :, :-1], fine[..., :, 1:])
    assert torch.equal(right[..., :, -1], fine[..., :, -1])
    up_left = extra[:, 0:3]
    assert torch.equal(up_left[..., 1:, 1:], fine[..., :-1, :-1])
    assert torch.equal(up_left[..., 0, :], up_left[..., 1, :])  # first row replicated
    down = extra[:, 6 * 3 : 7 * 3]
    assert torch.equal(down[..., :-1, :], fine[..., 1:, :])
    # unbatched maps (as the fit stores them) give the same copies
    single = expand_maps([coarse[0], fine[0].half()], 1)
    assert single[2].dtype == torch.float16
    assert torch.equal(single[2].float(), extra[0].half().float())
    assert expand_maps([coarse, fine], 0) == [coarse, fine]


def test_layouts_name_what_predict_takes_and_what_the_mlp_reads():
    assert map_layout(LAYOUT, None) == LAYOUT
    assert map_layout(LAYOUT, (3, 16, 16)) == [*LAYOUT, (3, 16, 16)]
    assert input_layout(LAYOUT, None, 0) == LAYOUT
    # radius 2: 24 copies of every 16 px map (the features' 2 channels, the image's 3)
    assert input_layout(LAYOUT, (3, 16, 16), 2) == [
        *LAYOUT,
        (3, 16, 16),
        (48, 16, 16),
        (72, 16, 16),
    ]
    interp = Interpreter(LAYOUT, 5, 2, (8, 4), image_layout=(3, 16, 16), context=1)
    assert interp.in_channels == 4 + 3 + 2 + 3 + 8 * (2 + 3)
    assert interp.w1.shape == (2, 8, interp.in_channels) and interp.with_image
    for bad in (-1, MAX_CONTEXT + 1, 1.5, True):
        with pytest.raises(ValueError, match="context"):
            check_context(bad)
    with pytest.raises(ValueError, match="image_layout"):
        Interpreter(LAYOUT, 5, 2, image_layout=(3, 16))


def _maps(batch: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, h, w, generator=g) for c, h, w in [*LAYOUT, (3, 16, 16)]]


@pytest.fixture(scope="module")
def trained() -> Interpreter:
    """An interpreter with the image and radius 1, fitted on 3 random images."""
    feats = [[m[0] for m in _maps(1, i)] for i in range(3)]
    # labels follow the image's first channel at the pixel to the right: only the
    # neighbourhood and the image tell them
    masks = torch.stack([(f[-1][0].roll(-1, dims=1) > 0).long() for f in feats])
    return Interpreter.fit_features(
        feats, masks, 2, 2, hidden=(16, 8), max_steps=300, min_steps=300, seed=0,
        with_image=True, context=1, progress=False,
    )  # fmt: skip


def test_fit_with_context_learns_a_neighbours_colour(trained):
    assert trained.image_layout == (3, 16, 16) and trained.context == 1
    maps = _maps(2, 10)
    want = (maps[-1][:, 0].roll(-1, dims=2) > 0).long()
    pred = trained.predict(maps)
    inner = (slice(None), slice(None), slice(0, 15))  # the last column has no right neighbour
    accuracy = (pred.labels[inner] == want[inner]).float().mean()
    assert accuracy > 0.8  # a one-pixel MLP on these maps is near chance (0.5)
    plain = Interpreter.fit_features(
        [[m[0] for m in _maps(1, i)][:-1] for i in range(3)],
        torch.stack([(_maps(1, i)[-1][0, 0].roll(-1, dims=1) > 0).long() for i in range(3)]),
        2, 2, hidden=(16, 8), max_steps=300, min_steps=300, seed=0, progress=False,
    )  # fmt: skip
    plain_acc = (plain.predict(maps[:-1]).labels[inner] == want[inner]).float().mean()
    assert plain_acc < 0.65


def test_both_paths_and_the_reference_agree_with_context(trained):
    maps = _maps(2, 11)
    ref = trained.naive_predict(maps, return_probs=True)
    for impl in ("rows", "interpolate"):
        out = trained.predict(maps, return_probs=True, impl=impl)
        torch.testing.assert_close(out.probs, ref.probs, atol=1e-5, rtol=1e-4)
        assert torch.equal(out.labels, ref.labels)
    crop = trained.predict(maps, output_size=(32, 32), crop=(4, 8, 20, 16), impl="rows")
    full = trained.naive_predict(maps, output_size=(32, 32), crop=(4, 8, 20, 16))
    assert crop.labels.shape == (2, 20, 16) and torch.equal(crop.labels, full.labels)


def test_prediction_maps_add_the_image_only_for_an_interpreter_that_reads_it(trained):
    *feats, image = _maps(1, 0)
    maps = trained.prediction_maps(feats, image)
    assert len(maps) == len(feats) + 1 and maps[-1] is image
    assert all(a is b for a, b in zip(maps, feats))
    plain = Interpreter(LAYOUT, 2, 2, (16, 8))
    assert [id(m) for m in plain.prediction_maps(feats, image)] == [id(f) for f in feats]


def test_predict_without_the_image_says_so(trained):
    with pytest.raises(ValueError, match="takes the generated image after the feature maps"):
        trained.predict(_maps(1, 0)[:-1])


def test_save_load_keeps_the_context_and_marks_the_file_version(trained, tmp_path):
    path = trained.save(tmp_path / "ctx.safetensors")
    loaded = Interpreter.load(path)
    assert loaded.image_layout == (3, 16, 16) and loaded.context == 1
    maps = _maps(2, 12)
    assert torch.equal(loaded.predict(maps).labels, trained.predict(maps).labels)
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    assert header["format_version"] == "2"
    assert json.loads(header["interpreter"])["context"] == 1
    plain = Interpreter(LAYOUT, 2, 2, (16, 8)).save(tmp_path / "plain.safetensors")
    with safe_open(str(plain), framework="pt") as f:
        meta = json.loads(f.metadata()["interpreter"])
    assert meta["format_version"] == 1 and "context" not in meta  # older readers still read it


def _rewrite_metadata(src, dst, change) -> None:
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata())
    meta = json.loads(header["interpreter"])
    change(meta)
    header["interpreter"] = json.dumps(meta)
    save_file(load_file(str(src)), str(dst), metadata=header)


def test_files_with_a_wrong_context_are_refused_by_name(trained, tmp_path):
    path = trained.save(tmp_path / "ctx.safetensors")
    cases = {
        "big.safetensors": (lambda m: m.update(context=MAX_CONTEXT + 1), "context"),
        # radius 2 implies other weight shapes than the file holds
        "r2.safetensors": (lambda m: m.update(context=2), "does not match its metadata"),
        "noimage.safetensors": (lambda m: m.update(image_layout=None), "does not match"),
        "future.safetensors": (lambda m: m.update(format_version=3), "upgrade dgan_data"),
    }
    for name, (change, message) in cases.items():
        _rewrite_metadata(path, tmp_path / name, change)
        with pytest.raises(InterpreterFileError, match=message) as err:
            Interpreter.load(tmp_path / name)
        assert name in str(err.value)


def test_fit_from_a_generator_reads_its_image_and_the_stream_labels_with_it(tmp_path):
    from dgan_data import DatasetGANStream, load_generator
    from dgan_data.annotations import Annotations
    from dgan_data.presets import resolve_preset_file

    G = load_generator("toyface-14")
    ann = Annotations.load(resolve_preset_file("toyface-14", "interpreter").parent / "annotations")
    interp = Interpreter.fit(
        G, ann, num_models=2, max_steps=5, min_steps=1, with_image=True, context=1, progress=False
    )
    assert interp.image_layout == (3, 64, 64)
    assert interp.in_channels == 384 + 3 + 8 * (16 + 16 + 3)
    path = interp.save(tmp_path / "ctx.safetensors")
    stream = DatasetGANStream("toyface-14", interpreter=path, batch_size=4, device="cpu", seed=3)
    images, masks = next(iter(stream))
    assert images.shape == (4, 3, 64, 64) and masks.shape == (4, 64, 64)
    again = next(iter(DatasetGANStream("toyface-14", interpreter=path, batch_size=4, seed=3)))
    assert torch.equal(again[1], masks)  # seeded like any stream


def test_cli_fit_takes_the_image_and_a_radius(tmp_path, capsys):
    from dgan_data.cli import main
    from dgan_data.presets import resolve_preset_file

    ann = resolve_preset_file("toyface-14", "interpreter").parent / "annotations"
    out = tmp_path / "ctx.safetensors"
    argv = ["fit", "--generator", "toyface-14", "--annotations", str(ann), "--out", str(out),
            "--num-models", "1", "--max-steps", "2", "--skip-validation"]  # fmt: skip
    assert main([*argv, "--with-image", "--context", "2"]) == 0
    interp = Interpreter.load(out)
    assert interp.with_image and interp.context == 2
    assert interp.in_channels == 384 + 3 + 24 * (16 + 16 + 3)
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--context", str(MAX_CONTEXT + 1)])
    assert exc.value.code == 2 and "at most" in capsys.readouterr().err
