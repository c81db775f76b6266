"""Generator quality metrics of the toy world: KID, part validity, the evaluation script."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("segmentation_models_pytorch")

from dgan_data.generators.stylegan2 import StyleGAN2Generator
from dgan_data.toy import CLASS_NAMES, SPLITS, render_faces
from dgan_data.toy.annotator import load_annotator
from dgan_data.toy.quality import (
    REAL_EVAL_SEEDS,
    annotator_features,
    connected_components,
    evaluate_generator,
    kid,
    part_validity,
    reason_counts,
)

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "toy" / "evaluate_gan.py"
C = {name: i for i, name in enumerate(CLASS_NAMES)}


@pytest.fixture(scope="module")
def annotator():
    return load_annotator()


def tiny_generator(seed: int = 0) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    channels = {4: 16, 8: 16, 16: 8, 32: 8, 64: 8}
    return StyleGAN2Generator(64, style_dim=32, n_mlp=1, channels=channels).eval()


# ----------------------------------------------------------------------- KID
def _mmd_by_loops(x: list[list[float]], y: list[list[float]]) -> float:
    """The unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out term by term."""
    d = len(x[0])

    def k(a: list[float], b: list[float]) -> float:
        return (sum(ai * bi for ai, bi in zip(a, b)) / d + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_matches_hand_computed_mmd() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(5, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5
    expected = _mmd_by_loops(a.tolist(), b.tolist())
    # subsets as large as the sets: every subset is the whole set, permuted
    mean, std = kid(a, b, num_subsets=3, subset_size=100)
    assert mean == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-10)
    # on true subsets (3 of 5 rows): the value is the loop MMD of some pair of 3-subsets
    sub = kid(a, b, num_subsets=1, subset_size=3, seed=5)[0]
    candidates = [
        _mmd_by_loops(a[list(i)].tolist(), b[list(j)].tolist())
        for i in itertools.combinations(range(5), 3)
        for j in itertools.combinations(range(5), 3)
    ]
    assert min(abs(sub - c) for c in candidates) < 1e-10


def test_kid_same_vs_shifted_distribution() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g)
    same_mean, same_std = kid(x, y, num_subsets=10, subset_size=200)
    shifted_mean, _ = kid(x, y + 0.5, num_subsets=10, subset_size=200)
    assert abs(same_mean) < 0.02
    assert shifted_mean > 0.3
    assert shifted_mean > 20 * max(abs(same_mean), same_std)
    # the very same rows on both sides: the k(x_i, x_i) terms enter only the cross term,
    # so the unbiased estimate is slightly negative, but tiny next to a real shift
    identical = kid(x, x.clone(), num_subsets=4, subset_size=400)[0]
    assert -0.05 * shifted_mean < identical <= 0


def test_kid_deterministic_with_seed() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 8, generator=g), torch.randn(250, 8, generator=g) + 0.2
    assert kid(x, y, 5, 100, seed=7) == kid(x, y, 5, 100, seed=7)
    assert kid(x, y, 5, 100, seed=7) != kid(x, y, 5, 100, seed=8)
    with pytest.raises(ValueError, match="equal d"):
        kid(x, torch.randn(10, 9))


# ------------------------------------------------------- connected components
@pytest.mark.parametrize("connectivity", [4, 8])
def test_connected_components_match_scipy(connectivity: int) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    import numpy as np

    g = torch.Generator().manual_seed(connectivity)
    fg = torch.rand(6, 24, 24, generator=g) < 0.45
    labels = connected_components(fg, connectivity)
    structure = np.ones((3, 3)) if connectivity == 8 else None
    for i in range(len(fg)):
        ref, n = ndimage.label(fg[i].numpy(), structure=structure)
        ours = labels[i].numpy()
        assert ((ours > 0) == fg[i].numpy()).all()
        # same partition: a one-to-one map between the two labelings
        pairs = {(int(a), int(b)) for a, b in zip(ours[ours > 0], ref[ref > 0])}
        assert len(pairs) == n == len({a for a, _ in pairs})


# ------------------------------------------------------------- part validity
def synthetic_face() -> torch.Tensor:
    """A 64 x 64 mask drawn with rectangles: skin, two eyes, a nose and a mouth."""
    m = torch.zeros(64, 64, dtype=torch.long)
    m[15:50, 17:47] = C["skin"]  # 1050 px = 25.6 %
    m[24:28, 21:28] = C["eye_white"]
    m[25:27, 23:25] = C["iris"]
    m[24:28, 36:43] = C["eye_white"]
    m[25:27, 39:41] = C["pupil"]
    m[30:36, 30:34] = C["nose"]
    m[34:36, 31:33] = C["nostril"]
    m[40:44, 26:38] = C["mouth"]
    m[40:42, 28:36] = C["teeth"]
    return m


def test_part_validity_synthetic_faces() -> None:
    good = synthetic_face()
    one_eye = good.clone()
    one_eye[24:28, 36:43] = C["skin"]
    merged = good.clone()
    merged[25:27, 28:36] = C["eye_white"]  # a bridge joins the eyes into one component
    tiny_head = torch.zeros(64, 64, dtype=torch.long)
    tiny_head[28:36, 28:36] = C["skin"]  # 64 px = 1.6 %
    no_mouth = good.clone()
    no_mouth[40:44, 26:38] = C["skin"]
    speck = good.clone()
    speck[10, 10] = C["eye_white"]  # a 1 px speck is ignored
    masks = torch.stack([good, one_eye, merged, tiny_head, no_mouth, speck])
    rate, valid, reasons = part_validity(masks)
    assert valid.tolist() == [True, False, False, False, False, True]
    assert rate == pytest.approx(2 / 6)
    assert reasons[0] == [] and reasons[5] == []
    assert any(r.startswith("eyes: 1 component") for r in reasons[1])
    assert any(r.startswith("eyes: 1 component") for r in reasons[2])
    assert any(r.startswith("head:") for r in reasons[3])
    assert any(r.startswith("mouth:") for r in reasons[4])
    assert reason_counts(reasons) == {"eyes": 3, "head": 1, "nose": 1, "mouth": 2}


def test_part_validity_real_exact_masks() -> None:
    _, masks = render_faces(SPLITS["test"][:12])
    rate, _, reasons = part_validity(masks)
    assert rate == 1.0, reasons


# ------------------------------------------------------------------ features
def test_annotator_features(annotator) -> None:
    images, _ = render_faces(SPLITS["test"][:4])
    f = annotator_features(annotator, images, batch_size=4)
    assert f.shape == (4, 128) and f.dtype == torch.float32
    assert torch.isfinite(f).all()
    assert torch.equal(f, annotator_features(annotator, images, batch_size=4))
    assert torch.allclose(f, annotator_features(annotator, images, batch_size=1), atol=1e-5)
    with pytest.raises(ValueError, match="N, 3, H, W"):
        annotator_features(annotator, images[:, 0])


# ---------------------------------------------------------------- evaluation
def test_evaluate_generator_tiny(annotator) -> None:
    result = evaluate_generator(tiny_generator(), annotator, num=8, num_subsets=2)
    for key in (
        "kid_mean",
        "kid_std",
        "kid_real_mean",
        "kid_real_std",
        "validity_generated",
        "validity_real",
        "validity_real_exact",
    ):
        assert math.isfinite(result[key]), key
    assert result["validity_real_exact"] == 1.0
    assert 0.0 <= result["validity_generated"] <= 1.0
    # a random generator is far from the renders; two real sets are close
    assert result["kid_mean"] > result["kid_real_mean"]
    assert result["real_seeds"] == [REAL_EVAL_SEEDS[0], REAL_EVAL_SEEDS[8]]
    assert result["real_seeds_second"] == [REAL_EVAL_SEEDS[8], REAL_EVAL_SEEDS[16]]
    assert result["subset_size"] == 8 and result["feature_dim"] == 128
    json.dumps(result)
    with pytest.raises(ValueError, match="real seeds"):
        evaluate_generator(tiny_generator(), annotator, num=8, real_seeds=range(10))


def test_evaluate_generator_compares_with_the_named_worlds_renders(annotator) -> None:
    """The real side comes from the chosen toy world: the same seeds rendered wide spread
    their faces further, and the result says which world it was."""
    base = evaluate_generator(tiny_generator(), annotator, num=32, num_subsets=2)
    wide = evaluate_generator(tiny_generator(), annotator, num=32, num_subsets=2, variation="wide")
    assert (base["world"], wide["world"]) == ("base", "wide")
    spread = "face_centre_spread"
    assert wide["diversity_real_exact"][spread] > 1.3 * base["diversity_real_exact"][spread]
    assert wide["kid_mean"] != base["kid_mean"]  # the generated side is the same
    from dgan_data.toy import VARIATIONS
    from dgan_data.toy.quality import render_images

    for name in ("base", "wide"):
        images, _ = render_images(REAL_EVAL_SEEDS[:4], variation=VARIATIONS[name])
        again, _ = render_images(REAL_EVAL_SEEDS[:4], variation=name)
        assert torch.equal(images, again)


def test_evaluate_script(tmp_path: Path) -> None:
    gen_path = tiny_generator(1).save(tmp_path / "g.safetensors")
    spec = importlib.util.spec_from_file_location("evaluate_gan", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out_json, out_png = tmp_path / "q.json", tmp_path / "q.png"
    result = script.main(
        [
            "--generator",
            str(gen_path),
            "--num",
            "6",
            "--num-subsets",
            "2",
            "--json",
            str(out_json),
            "--grid",
            str(out_png),
            "--grid-count",
            "4",
            "--threads",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert json.loads(out_json.read_text())["kid_mean"] == pytest.approx(result["kid_mean"])
    from PIL import Image

    with Image.open(out_png) as im:
        w, h = im.size
    assert (w, h) == (2 * (4 * 66 + 2) + 8, 68)  # one row of 4 per side, 8 px gap
    assert "KID x1000" in script.format_table(result)
    assert result["world"] == "base"
    # --world wide: the real half of the grid is the wide world's renders
    wide_png = tmp_path / "wide.png"
    wide = script.main(
        ["--generator", str(gen_path), "--num", "6", "--num-subsets", "2", "--world", "wide",
         "--grid", str(wide_png), "--grid-count", "4", "--threads", "1", "--device", "cpu"]
    )  # fmt: skip
    assert wide["world"] == "wide" and "world wide" in script.format_table(wide)
    with Image.open(out_png) as a, Image.open(wide_png) as b:
        real_a = np.asarray(a)[:, : 4 * 66 + 2]
        real_b = np.asarray(b)[:, : 4 * 66 + 2]
        fake_a = np.asarray(a)[:, -(4 * 66 + 2) :]
        fake_b = np.asarray(b)[:, -(4 * 66 + 2) :]
    assert not np.array_equal(real_a, real_b) and np.array_equal(fake_a, fake_b)
