"""Interpreter: factorized inference vs the naive path, the training gather, fitting,
save/load and the errors users see.

References are computed here with plain torch (F.interpolate + concat + per-model
Linear/BatchNorm), never with the code under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dgan_data.interpreter import (
    Interpreter,
    default_hidden,
    feature_layout,
    sample_features_grid,
)
from dgan_data.interpreter import frames as interpreter_frames
from dgan_data.interpreter.fit import FeatureStore as _FeatureStore
from dgan_data.interpreter.fit import MaskedAdam as _MaskedAdam

# (channels, h, w) per map, forward order.
SG2_LAYOUT = [(12, 4, 4), (10, 8, 8), (9, 8, 8), (8, 16, 16), (7, 16, 16), (6, 32, 32), (5, 32, 32)]
SG1_LAYOUT = [(c, r, r) for c, r in [(8, 4), (8, 4), (7, 8), (7, 8), (6, 16), (6, 16)]]
SG1_LAYOUT += [(5, 32, 32), (5, 32, 32), (4, 64, 64), (4, 64, 64)]


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: threads only add contention on shared machines.
    torch.set_num_threads(1)
    yield


def _random_interpreter(layout, num_classes=5, num_models=3, seed=0, **kw) -> Interpreter:
    """Random weights everywhere, BatchNorm with random running statistics."""
    interp = Interpreter(layout, num_classes, num_models, seed=seed, **kw)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in interp.named_parameters():
            scale = 1.0 / math.sqrt(p.shape[-1]) if name.startswith("w") else 0.5
            p.copy_(torch.randn(p.shape, generator=g) * scale)
        for name in ("bn1_mean", "bn2_mean"):
            getattr(interp, name).copy_(torch.randn(getattr(interp, name).shape, generator=g))
        for name in ("bn1_var", "bn2_var"):
            getattr(interp, name).copy_(torch.rand(getattr(interp, name).shape, generator=g) + 0.3)
    return interp.eval()


def _random_features(layout, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, h, w, generator=g) for c, h, w in layout]


def _reference_pixels(feats, frame, crop=None):
    """Naive pixel features: upsample every map, concatenate, crop -> (B, C, H', W')."""
    x = torch.cat(
        [F.interpolate(f.float(), size=frame, mode="bilinear", align_corners=False) for f in feats],
        dim=1,
    )
    if crop is not None:
        t, left, h, w = crop
        x = x[:, :, t : t + h, left : left + w]
    return x


def _reference_probs(interp: Interpreter, x: torch.Tensor) -> torch.Tensor:
    """Each model as Linear-ReLU-BN-Linear-ReLU-BN-Linear on every pixel: (M, B, K, H, W)."""
    B, C, H, W = x.shape
    pix = x.permute(0, 2, 3, 1).reshape(-1, C)
    out = []
    for m in range(interp.num_models):
        h = F.linear(pix, interp.w1[m], interp.b1[m]).relu()
        h = F.batch_norm(
            h, interp.bn1_mean[m], interp.bn1_var[m], interp.bn1_weight[m], interp.bn1_bias[m]
        )
        h = F.linear(h, interp.w2[m], interp.b2[m]).relu()
        h = F.batch_norm(
            h, interp.bn2_mean[m], interp.bn2_var[m], interp.bn2_weight[m], interp.bn2_bias[m]
        )
        logits = F.linear(h, interp.w3[m], interp.b3[m])
        out.append(torch.softmax(logits, dim=1).view(B, H, W, -1).permute(0, 3, 1, 2))
    return torch.stack(out)


CASES = [
    # layout, frame (H, W), crop
    (SG2_LAYOUT, (48, 40), None),  # upsampling only, non-square frame
    (SG2_LAYOUT, (48, 40), (5, 3, 30, 33)),  # non-square crop
    (SG2_LAYOUT, (32, 24), (4, 0, 24, 24)),  # car-like: rows cut out of the frame
    (SG1_LAYOUT, (40, 48), None),  # the 64 px maps are downsampled
    (SG1_LAYOUT, (24, 20), (2, 1, 19, 17)),  # downsampled and cropped
]


@pytest.mark.parametrize(("layout", "frame", "crop"), CASES)
@torch.no_grad()
def test_factorized_equals_naive(layout, frame, crop):
    interp = _random_interpreter(layout)
    feats = _random_features(layout)
    x = _reference_pixels(feats, frame, crop)
    B, _, H, W = x.shape
    M, H1 = interp.num_models, interp.hidden[0]

    # The first layer itself, the factorized identity, to 1e-5 relative.
    ref_h1 = torch.stack(
        [F.linear(x.permute(0, 2, 3, 1), interp.w1[m], interp.b1[m]) for m in range(M)], dim=1
    ).permute(0, 1, 4, 2, 3)
    got_h1 = interp.first_layer(feats, frame, crop)
    assert got_h1.shape == (B, M, H1, H, W)
    torch.testing.assert_close(got_h1, ref_h1, rtol=1e-5, atol=1e-5 * ref_h1.abs().max().item())

    # The whole prediction.
    probs_m = _reference_probs(interp, x)
    mean_p = probs_m.mean(0)
    pred = interp.predict(feats, frame, return_probs=True, crop=crop)
    assert pred.labels.shape == (B, H, W) and pred.labels.dtype == torch.int64
    assert pred.probs.shape == (B, interp.num_classes, H, W)
    torch.testing.assert_close(pred.probs, mean_p, rtol=1e-5, atol=1e-6)
    assert torch.equal(pred.labels, mean_p.argmax(1))
    eps = 1e-12
    js_ref = -(mean_p * (mean_p + eps).log()).sum(1) + (probs_m * (probs_m + eps).log()).sum(
        2
    ).mean(0)
    torch.testing.assert_close(pred.pixel_uncertainty, js_ref.clamp_min(0), rtol=1e-4, atol=1e-5)
    k = max(1, int(0.1 * H * W))
    img_ref = js_ref.flatten(1).sort(dim=1, descending=True).values[:, :k].mean(1)
    torch.testing.assert_close(pred.image_uncertainty, img_ref, rtol=1e-4, atol=1e-5)

    # Majority vote.
    votes = F.one_hot(probs_m.argmax(2), interp.num_classes).sum(0)  # (B, H, W, K)
    maj = interp.predict(feats, frame, vote="majority", crop=crop)
    assert torch.equal(maj.labels, votes.argmax(-1))
    assert maj.probs is None

    # Row chunking does not change anything; the naive path agrees too.
    tiny = interp.predict(feats, frame, return_probs=True, crop=crop, chunk_bytes=1)
    torch.testing.assert_close(tiny.probs, pred.probs, rtol=1e-6, atol=1e-7)
    naive = interp.naive_predict(feats, frame, return_probs=True, crop=crop)
    torch.testing.assert_close(naive.probs, mean_p, rtol=1e-5, atol=1e-6)
    assert torch.equal(naive.labels, pred.labels)


def test_plan_uses_both_orders():
    # The SG1-like case must exercise project-then-resample (small maps) and
    # resample-then-project (maps larger than the frame), or the test above is weaker.
    interp = _random_interpreter(SG1_LAYOUT)
    plan = interp._plan((24, 20), (0, 0, 24, 20))
    project = {g["res"] for g in plan["project"]}
    resample = {g["res"] for g in plan["resample"]}
    assert len(project) + len(resample) == 5  # one group per distinct resolution
    assert (4, 4) in project and (64, 64) in resample


@torch.no_grad()
def test_predict_defaults_to_trained_frame_and_accepts_half_features():
    interp = _random_interpreter(SG2_LAYOUT, label_size=(32, 24), crop=(4, 0, 24, 24))
    feats = _random_features(SG2_LAYOUT)
    a = interp.predict(feats, return_probs=True)
    b = interp.predict(feats, (32, 24), return_probs=True, crop=(4, 0, 24, 24))
    assert a.labels.shape == (2, 24, 24)
    assert torch.equal(a.probs, b.probs)
    half = interp.predict([f.half() for f in feats], return_probs=True)
    ref = _reference_probs(interp, _reference_pixels([f.half() for f in feats], (32, 24)))
    torch.testing.assert_close(half.probs, ref.mean(0)[:, :, 4:28], rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_predict_under_autocast_keeps_float32_outputs():
    interp = _random_interpreter(SG2_LAYOUT)
    feats = _random_features(SG2_LAYOUT)
    ref = interp.predict(feats, (24, 20), return_probs=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = interp.predict(feats, (24, 20), return_probs=True)
    assert out.probs.dtype == torch.float32
    assert out.pixel_uncertainty.dtype == torch.float32
    assert out.image_uncertainty.dtype == torch.float32
    assert (out.pixel_uncertainty >= 0).all()
    assert (out.probs - ref.probs).abs().max() < 0.1
    assert (out.labels == ref.labels).float().mean() > 0.95


# ------------------------------------------------------------ the interpolate path
FRAME_CASES = [
    *CASES,
    (SG2_LAYOUT, (37, 29), (3, 2, 31, 25)),  # ratios that are not powers of two
    (SG1_LAYOUT, (8, 6), None),  # everything but the 4 px maps downsampled
]


def _force_split(monkeypatch, split: str) -> None:
    """Make every resolution group take one order ("project" or "resample"), or let the
    cost model choose ("cost")."""
    if split != "cost":
        monkeypatch.setattr(interpreter_frames, "_project_first", lambda *_: split == "project")


@pytest.mark.parametrize("split", ["cost", "project", "resample"])
@pytest.mark.parametrize(("layout", "frame", "crop"), FRAME_CASES)
@torch.no_grad()
def test_interpolate_path_equals_reference(monkeypatch, layout, frame, crop, split):
    _force_split(monkeypatch, split)
    interp = _random_interpreter(layout)
    feats = _random_features(layout, batch=3)
    x = _reference_pixels(feats, frame, crop)
    B, _, H, W = x.shape
    probs_m = _reference_probs(interp, x)
    mean_p = probs_m.mean(0)
    eps = 1e-12
    js_ref = -(mean_p * (mean_p + eps).log()).sum(1) + (probs_m * (probs_m + eps).log()).sum(
        2
    ).mean(0)

    pred = interp.predict(feats, frame, return_probs=True, crop=crop, impl="interpolate")
    assert pred.labels.shape == (B, H, W) and pred.labels.dtype == torch.int64
    assert pred.labels.is_contiguous() and pred.probs.is_contiguous()
    torch.testing.assert_close(pred.probs, mean_p, rtol=1e-5, atol=1e-6)
    assert torch.equal(pred.labels, mean_p.argmax(1))
    torch.testing.assert_close(pred.pixel_uncertainty, js_ref.clamp_min(0), rtol=1e-4, atol=1e-5)
    k = max(1, int(0.1 * H * W))
    img_ref = js_ref.flatten(1).sort(dim=1, descending=True).values[:, :k].mean(1)
    torch.testing.assert_close(pred.image_uncertainty, img_ref, rtol=1e-4, atol=1e-5)

    votes = F.one_hot(probs_m.argmax(2), interp.num_classes).sum(0)  # (B, H, W, K)
    maj = interp.predict(feats, frame, vote="majority", crop=crop, impl="interpolate")
    assert torch.equal(maj.labels, votes.argmax(-1)) and maj.probs is None

    # Chunks of one image (and of one label row) change nothing; the rows path agrees.
    plan = interp._frames_plan(tuple(frame), interp._frame(frame, crop)[1])
    assert interp._frame_chunks(plan, B, H, W, 1) == (1, 1)
    assert interp._frame_chunks(plan, B, H, W, 2**40) == (B, H)
    for budget in (1, 2**40):
        other = interp.predict(
            feats, frame, return_probs=True, crop=crop, impl="interpolate", chunk_bytes=budget
        )
        torch.testing.assert_close(other.probs, pred.probs, rtol=1e-6, atol=1e-7)
        assert torch.equal(other.labels, pred.labels)
    rows = interp.predict(feats, frame, return_probs=True, crop=crop, impl="rows")
    torch.testing.assert_close(rows.probs, pred.probs, rtol=1e-5, atol=1e-6)
    assert torch.equal(rows.labels, pred.labels)
    torch.testing.assert_close(rows.pixel_uncertainty, pred.pixel_uncertainty)


def test_forced_splits_take_the_order_asked_for(monkeypatch):
    # Guards the test above: each split really exercises its order of operations.
    for split, projected in (("project", 5), ("resample", 0)):
        _force_split(monkeypatch, split)
        plan = _random_interpreter(SG1_LAYOUT)._frames_plan((24, 20), (0, 0, 24, 20))
        assert len(plan["project"]) == projected
        assert len(plan["resample_maps"]) == len(SG1_LAYOUT) - 2 * projected


@torch.no_grad()
def test_interpolate_path_under_autocast_and_with_half_features():
    interp = _random_interpreter(SG2_LAYOUT)
    feats = _random_features(SG2_LAYOUT)
    ref = interp.predict(feats, (24, 20), return_probs=True, impl="interpolate")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = interp.predict(feats, (24, 20), return_probs=True, impl="interpolate")
    assert out.probs.dtype == torch.float32
    assert out.pixel_uncertainty.dtype == torch.float32
    assert out.image_uncertainty.dtype == torch.float32
    assert not torch.equal(out.probs, ref.probs)  # bfloat16 products did run
    assert (out.probs - ref.probs).abs().max() < 0.1
    assert (out.labels == ref.labels).float().mean() > 0.95

    half = interp.predict(
        [f.half() for f in feats], (24, 20), return_probs=True, impl="interpolate"
    )
    expected = _reference_probs(interp, _reference_pixels([f.half() for f in feats], (24, 20)))
    torch.testing.assert_close(half.probs, expected.mean(0), rtol=1e-4, atol=1e-5)


def test_impl_setting_and_errors():
    interp = _random_interpreter(SG2_LAYOUT)
    feats = _random_features(SG2_LAYOUT)
    assert interp.impl == "auto" and interp._resolve_impl(None) == "rows"  # on the CPU
    interp.impl = "interpolate"
    assert interp._resolve_impl(None) == "interpolate" and interp._resolve_impl("rows") == "rows"
    with pytest.raises(ValueError, match="impl must be one of"):
        interp.predict(feats, (24, 20), impl="fast")
    for impl in ("rows", "interpolate"):  # an empty batch gives empty outputs
        empty = interp.predict(_random_features(SG2_LAYOUT, 0), (8, 6), True, impl=impl)
        assert empty.labels.shape == (0, 8, 6) and empty.probs.shape == (0, 5, 8, 6)


@torch.no_grad()
def test_interpolate_plan_follows_weight_updates():
    interp = _random_interpreter(SG2_LAYOUT)
    feats = _random_features(SG2_LAYOUT)
    before = interp.predict(feats, (24, 20), return_probs=True, impl="interpolate")
    interp.w1.mul_(-1.5)  # in place, as an optimizer step or load_state_dict would
    after = interp.predict(feats, (24, 20), return_probs=True, impl="interpolate")
    ref = interp.naive_predict(feats, (24, 20), return_probs=True)
    assert not torch.allclose(after.probs, before.probs)
    torch.testing.assert_close(after.probs, ref.probs, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ training gather
GATHER_CASES = [
    ((24, 20), None),  # 4..32 px maps into a 24 x 20 frame: up- and down-sampling
    ((50, 36), (7, 3, 40, 30)),
    ((8, 6), None),  # everything but the 4 px map downsampled
]


@pytest.mark.parametrize(("frame", "crop"), GATHER_CASES)
def test_gather_equals_interpolate_everywhere(frame, crop):
    layout = SG2_LAYOUT
    N = 3
    maps = _random_features(layout, batch=N, seed=5)
    ref = _reference_pixels(maps, frame, crop)  # (N, C, H, W)
    _, C, H, W = ref.shape
    n, y, x = (
        t.flatten()
        for t in torch.meshgrid(torch.arange(N), torch.arange(H), torch.arange(W), indexing="ij")
    )
    expected = ref.permute(0, 2, 3, 1).reshape(-1, C)

    got_grid = sample_features_grid(maps, n, y, x, frame, crop)
    torch.testing.assert_close(got_grid, expected, rtol=1e-5, atol=1e-5)

    crop_ = crop if crop is not None else (0, 0, *frame)
    store = _FeatureStore(layout, N, frame, crop_, torch.float32, torch.device("cpu"))
    for i in range(N):
        store.put(i, [f[i] for f in maps])
    torch.testing.assert_close(store.gather(n, y, x), expected, rtol=1e-5, atol=1e-5)

    # float16 storage: the same up to the rounding of the stored maps.
    half = _FeatureStore(layout, N, frame, crop_, torch.float16, torch.device("cpu"))
    for i in range(N):
        half.put(i, [f[i] for f in maps])
    expected_half = _reference_pixels([f.half().float() for f in maps], frame, crop)
    expected_half = expected_half.permute(0, 2, 3, 1).reshape(-1, C)
    torch.testing.assert_close(half.gather(n, y, x), expected_half, rtol=1e-5, atol=1e-5)


def test_training_forward_matches_batchnorm_modules():
    interp = _random_interpreter(SG2_LAYOUT, num_models=2)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 64, interp.in_channels, generator=g)
    modules = [mlp.train() for mlp in interp.to_modules()]
    ref = torch.stack([modules[m](x[m]) for m in range(2)])
    active = torch.tensor([True, False])
    logits = interp.train_logits(x, active)
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
    # Running statistics move like nn.BatchNorm1d's for the active model only.
    torch.testing.assert_close(interp.bn1_mean[0], modules[0][2].running_mean)
    torch.testing.assert_close(interp.bn2_var[0], modules[0][5].running_var)
    assert not torch.allclose(interp.bn1_mean[1], modules[1][2].running_mean)


def test_masked_adam_matches_adam_and_freezes_inactive():
    g = torch.Generator().manual_seed(4)
    p = torch.randn(2, 3, 4, generator=g).requires_grad_()
    opt = _MaskedAdam([p], 2, lr=1e-2)
    start = p.detach().clone()
    # Reference: Adam written out (Kingma & Ba, as torch.optim.Adam) for model 0.
    q, m, v = start[0].clone(), torch.zeros(3, 4), torch.zeros(3, 4)
    for step in range(1, 6):
        target = torch.randn(3, 4, generator=g)
        ((p - target) ** 2).sum().backward()
        grad = 2 * (q - target)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        q = q - 1e-2 * (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8)
        opt.step(torch.tensor([True, step <= 2]))
        if step == 2:
            frozen = p[1].detach().clone()
    torch.testing.assert_close(p[0].detach(), q, rtol=1e-5, atol=1e-6)
    assert torch.equal(p[1].detach(), frozen) and not torch.equal(frozen, start[1])


# ------------------------------------------------------------------------ fitting
def _learnable_problem(num_images=4, frame=(24, 20), num_classes=3, seed=0):
    """Random native maps; labels = argmax of a fixed linear map of the upsampled features."""
    layout = [(6, 4, 4), (6, 8, 8), (4, 16, 16), (4, 32, 32)]
    g = torch.Generator().manual_seed(seed)
    feats = [[torch.randn(c, h, w, generator=g) for c, h, w in layout] for _ in range(num_images)]
    proj = torch.randn(num_classes, sum(c for c, _, _ in layout), generator=g)
    masks = torch.stack(
        [
            torch.einsum(
                "kc,chw->khw", proj, _reference_pixels([f[None] for f in fl], frame)[0]
            ).argmax(0)
            for fl in feats
        ]
    )
    return layout, feats, masks


def test_fit_learns_a_learnable_labeling():
    layout, feats, masks = _learnable_problem()
    masks[0, :4] = 255  # ignored pixels must not matter
    interp = Interpreter.fit_features(
        feats,
        masks,
        3,
        num_models=3,
        batch_size=256,
        max_steps=150,
        min_steps=150,
        eval_every=50,
        seed=0,
        progress=False,
    )
    assert interp.label_size == (24, 20)
    batch = [torch.stack([fl[i] for fl in feats]) for i in range(len(layout))]
    pred = interp.predict(batch)
    valid = masks != 255
    accuracy = (pred.labels[valid] == masks[valid]).float().mean().item()
    assert accuracy >= 0.99
    info = interp.training_info
    assert info["steps"] == [150, 150, 150] and min(info["final_accuracy"]) > 0.97


def test_fit_is_deterministic_and_seeded():
    _, feats, masks = _learnable_problem(num_images=2)
    kw = dict(num_models=2, batch_size=64, max_steps=15, eval_every=5, progress=False)
    a = Interpreter.fit_features(feats, masks, 3, seed=7, **kw)
    b = Interpreter.fit_features(lambda i: feats[i], masks, 3, seed=7, **kw)
    c = Interpreter.fit_features(feats, masks, 3, seed=8, **kw)
    for name, t in a.state_dict().items():
        assert torch.equal(t, b.state_dict()[name]), name
    assert not torch.equal(a.w1, c.w1)
    # Every model has its own initialisation and data.
    assert not torch.equal(a.w1[0], a.w1[1])


def test_fit_stops_on_plateau():
    g = torch.Generator().manual_seed(1)
    layout = [(4, 4, 4), (4, 8, 8)]
    feats = [[torch.randn(c, h, w, generator=g) for c, h, w in layout] for _ in range(2)]
    masks = torch.randint(0, 3, (2, 8, 8), generator=g)  # noise: nothing to learn
    interp = Interpreter.fit_features(
        feats,
        masks,
        3,
        num_models=2,
        batch_size=32,
        max_steps=3000,
        min_steps=40,
        eval_every=10,
        patience=3,
        min_delta=0.05,
        progress=False,
    )
    steps = interp.training_info["steps"]
    assert all(40 <= s < 3000 for s in steps), steps


def test_fit_with_crop_and_errors():
    layout, feats, masks = _learnable_problem(num_images=2, frame=(32, 24))
    cropped = masks[:, 4:28, :]  # label frame 32 x 24, rows 4..27 annotated
    interp = Interpreter.fit_features(
        feats,
        cropped,
        3,
        num_models=2,
        output_size=(32, 24),
        crop=(4, 0, 24, 24),
        max_steps=5,
        progress=False,
    )
    assert interp.crop == (4, 0, 24, 24) and interp.label_size == (32, 24)
    batch = [torch.stack([fl[i] for fl in feats]) for i in range(len(layout))]
    assert interp.predict(batch).labels.shape == (2, 24, 24)
    with pytest.raises(ValueError, match="class id 7"):
        bad = masks.clone()
        bad[1, 2, 3] = 7
        Interpreter.fit_features(feats, bad, 3, max_steps=1, progress=False)
    with pytest.raises(ValueError, match=r"image 1's feature maps differ.*map 2 has 5 channels"):
        wrong = [feats[0], [*feats[1][:2], torch.zeros(5, 16, 16), feats[1][3]]]
        Interpreter.fit_features(wrong, masks, 3, max_steps=1, progress=False)
    with pytest.raises(ValueError, match="masks are 32 x 24"):
        Interpreter.fit_features(feats, masks, 3, output_size=(32, 24), crop=(4, 0, 24, 24))


class _ToyGenerator:
    """Just the protocol fit() uses: features are fixed functions of w."""

    def __init__(self):
        self.feature_channels = [6, 6, 4]
        self.feature_resolutions = [(4, 4), (8, 8), (16, 16)]
        self.resolution = (16, 16)
        g = torch.Generator().manual_seed(0)
        self.proj = [torch.randn(c * h * w, 8, generator=g) for c, (h, w) in self.layout()]

    def layout(self):
        return list(zip(self.feature_channels, self.feature_resolutions))

    def synthesize(self, w, noise="const"):
        assert noise == "const"
        feats = [
            (w[:, 0] @ p.t()).view(w.shape[0], c, h, wd)
            for p, (c, (h, wd)) in zip(self.proj, self.layout())
        ]
        return torch.zeros(w.shape[0], 3, 16, 16), feats

    def parameters(self):
        return iter([torch.zeros(1)])

    def fingerprint(self):
        return "toy-0001"


class _Annotations:
    def __init__(self, w, masks, crop=None):
        self.w, self.masks, self.crop = w, masks, crop
        self.class_names = ["a", "b", "c"]
        self.noise = "const"


def test_fit_from_generator_and_annotations():
    G = _ToyGenerator()
    w = torch.randn(3, 2, 8, generator=torch.Generator().manual_seed(2))
    _, feats = G.synthesize(w)
    masks = _reference_pixels(feats, (12, 16))[:, :3].argmax(1)  # learnable
    interp = Interpreter.fit(
        G,
        _Annotations(w, masks.to(torch.uint8)),
        num_models=2,
        max_steps=50,
        min_steps=50,
        eval_every=50,
        progress=False,
    )
    assert interp.fingerprint == "toy-0001" and interp.class_names == ["a", "b", "c"]
    assert interp.layout == [(6, 4, 4), (6, 8, 8), (4, 16, 16)]
    assert interp.label_size == (12, 16) and interp.crop is None
    accuracy = (interp.predict(feats).labels == masks).float().mean().item()
    assert accuracy > 0.9
    cropped = Interpreter.fit(
        G,
        _Annotations(w, masks[:, 2:10], crop=(2, 0, 8, 16)),
        num_models=1,
        max_steps=2,
        progress=False,
    )
    assert cropped.label_size == (16, 16) and cropped.crop == (2, 0, 8, 16)


# ------------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path: Path):
    interp = _random_interpreter(
        SG1_LAYOUT,
        num_classes=4,
        class_names=["bg", "x", "y", "z"],
        palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
        label_size=(24, 20),
        crop=(2, 1, 19, 17),
        fingerprint="abc123",
    )
    interp.training_info = {"batch_size": 512, "steps": [1, 2, 3]}
    path = interp.save(tmp_path / "interp.safetensors")
    loaded = Interpreter.load(path)
    feats = _random_features(SG1_LAYOUT)
    a = interp.predict(feats, return_probs=True)
    b = loaded.predict(feats, return_probs=True)
    assert torch.equal(a.probs, b.probs) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.pixel_uncertainty, b.pixel_uncertainty)
    assert loaded.metadata() == interp.metadata()
    assert loaded.crop == (2, 1, 19, 17) and loaded.class_names[1] == "x"
    # The header is plain JSON that other tools can read.
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["format"] == "dgan_data.interpreter"


def test_check_compatible_names_the_difference():
    interp = _random_interpreter(SG2_LAYOUT, fingerprint="aaaa")
    interp.check_compatible(SG2_LAYOUT)  # fine
    wrong = list(SG2_LAYOUT)
    wrong[3] = (99, 16, 16)
    with pytest.raises(ValueError, match="map 3 has 99 channels, expected 8"):
        interp.check_compatible(wrong)
    wrong[3] = (8, 16, 17)
    with pytest.raises(ValueError, match="map 3 has resolution 16x17, expected 16x16"):
        interp.check_compatible(wrong)
    with pytest.raises(ValueError, match="number of feature maps is 6, expected 7"):
        interp.check_compatible(SG2_LAYOUT[:6])
    with pytest.raises(ValueError, match="fingerprint is bbbb"):
        interp.check_compatible(SG2_LAYOUT, fingerprint="bbbb")

    class _G:
        def __init__(self):
            self.feature_channels = [c for c, _, _ in SG2_LAYOUT]
            self.feature_resolutions = [(h, w) for _, h, w in SG2_LAYOUT]

        def fingerprint(self):
            return "cccc"

    with pytest.raises(ValueError, match="fingerprint is cccc"):
        interp.check_compatible(_G())
    assert feature_layout(_G()) == SG2_LAYOUT


def test_mismatched_features_and_layout_errors(tmp_path: Path):
    interp = _random_interpreter(SG2_LAYOUT)
    path = interp.save(tmp_path / "i.safetensors")
    loaded = Interpreter.load(path)
    feats = _random_features(SG2_LAYOUT)
    feats[2] = feats[2][:, :4]
    with pytest.raises(ValueError, match=r"i\.safetensors.*map 2 has 4 channels, expected 9"):
        loaded.predict(feats, (8, 8))
    with pytest.raises(ValueError, match="number of feature maps is 6"):
        loaded.predict(_random_features(SG2_LAYOUT)[:6], (8, 8))
    with pytest.raises(ValueError, match="output_size is required"):
        loaded.predict(_random_features(SG2_LAYOUT))
    with pytest.raises(ValueError, match="does not fit"):
        loaded.predict(_random_features(SG2_LAYOUT), (8, 8), crop=(4, 0, 8, 8))


def test_missing_and_corrupt_files_name_the_file(tmp_path: Path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        Interpreter.load(missing)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 this is not safetensors" * 10)
    with pytest.raises(ValueError, match=r"garbage\.safetensors"):
        Interpreter.load(garbage)
    good = _random_interpreter(SG2_LAYOUT).save(tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"truncated\.safetensors"):
        Interpreter.load(truncated)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match=r"other\.safetensors.*not a dgan_data interpreter"):
        Interpreter.load(other)


def test_architecture_sizes():
    assert default_hidden(31) == (128, 32) and default_hidden(32) == (256, 128)
    face = Interpreter([(512, 4, 4), (16, 1024, 1024)], 34, seed=0)
    assert face.w1.shape == (10, 256, 528) and face.w3.shape == (10, 34, 128)
    small = Interpreter([(5, 4, 4)], 8, num_models=2)
    assert small.w2.shape == (2, 32, 128)
    # Per-model initialisation: N(0, 0.02), different per model, reproducible.
    assert 0.015 < face.w1.std().item() < 0.025
    assert not torch.equal(face.w1[0], face.w1[1])
    assert torch.equal(
        Interpreter([(5, 4, 4)], 8, 2, seed=3).w1, Interpreter([(5, 4, 4)], 8, 2, seed=3).w1
    )
