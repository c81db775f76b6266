"""Fitting an interpreter without the generator's coarsest maps (examples/toy/coarse_maps)."""

from __future__ import annotations

import pytest
import torch
from example_scripts import load_example

coarse_maps = load_example("toy/coarse_maps", "toy_coarse_maps")


@pytest.fixture(scope="module")
def world():
    from dgan_data import load_generator
    from dgan_data.annotations import Annotations
    from dgan_data.presets import resolve_preset_file

    path = resolve_preset_file("toyface-14", "interpreter")
    return load_generator("toyface-14"), Annotations.load(path.parent / "annotations")


def test_fit_without_coarse_is_the_fit_on_zeroed_maps_folded(world):
    """The file ``build_preset.py --drop-coarse 2`` writes equals, weight for weight, the
    ``drop=2`` variant of interpreter_variants.py (fit on zeroed maps, then folded)."""
    from dgan_data import Interpreter

    G, ann = world
    settings = {"max_steps": 5, "min_steps": 5, "seed": 0, "progress": False}
    settings |= {"with_image": True, "context": 1}
    built = coarse_maps.fit_without_coarse(G, ann, 2, num_models=2, **settings)
    w = ann.latents_w(G)
    maps = []
    for i in range(len(w)):
        with torch.no_grad():
            img, feats = G.synthesize(w[i : i + 1], noise="const")
        maps.append([m[0].half() for m in coarse_maps.drop_coarse([*feats, img], 2)])
    masks = torch.stack([torch.as_tensor(m).long() for m in ann.masks])
    variant = Interpreter.fit_features(maps, masks, len(ann.class_names), 2, **settings)
    coarse_maps.fold_drop(variant, maps[0], 2)
    coarse = sum(G.feature_channels[:2])
    assert not built.w1[:, :, :coarse].any() and built.w1[:, :, coarse:].any()
    for name, tensor in variant.state_dict().items():
        assert torch.equal(built.state_dict()[name], tensor), name
    assert built.training_info["drop_coarse"] == 2
    built.check_compatible(G)  # an interpreter of the generator itself, not of the wrapper


def test_the_wrapper_zeroes_only_the_coarse_maps_and_must_leave_one(world):
    G, _ = world
    wrapped = coarse_maps.CoarseDropped(G, 3)
    w = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)))
    img, feats = wrapped.synthesize(w, noise="const")
    ref_img, ref = G.synthesize(w, noise="const")
    assert torch.equal(img, ref_img)
    assert all(not m.any() for m in feats[:3])
    assert all(torch.equal(a, b) for a, b in zip(feats[3:], ref[3:]))
    assert wrapped.fingerprint() == G.fingerprint()
    with pytest.raises(ValueError, match="must leave a feature map"):
        coarse_maps.CoarseDropped(G, len(G.feature_channels))


def test_build_preset_refuses_a_negative_drop(capsys):
    build_preset = load_example("toy/build_preset", "toy_build_preset")
    with pytest.raises(SystemExit) as exc:
        build_preset.parse_args(["--generator", "g.safetensors", "--drop-coarse", "-1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --drop-coarse: '-1' must be >= 0" in err and len(err.splitlines()) == 1


def test_build_preset_refuses_dropping_every_map_before_writing(tmp_path, capsys):
    """K >= the generator's number of maps exits 2 naming the file, and leaves no output
    folder behind (no annotation folder for a build that cannot fit)."""
    from dgan_data.presets import resolve_preset_file

    build_preset = load_example("toy/build_preset", "toy_build_preset")
    generator = resolve_preset_file("toyface-14", "generator")
    out = tmp_path / "preset"
    args = build_preset.parse_args(
        ["--generator", str(generator), "--out", str(out), "--drop-coarse", "99"]
    )
    with pytest.raises(SystemExit) as exc:
        build_preset.build(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--drop-coarse 99" in err and generator.name in err and "0.." in err
    assert not out.exists()
