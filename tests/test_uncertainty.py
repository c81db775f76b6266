"""Jensen-Shannon divergence, image scores and the streaming quantile filter."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from dgan_data.uncertainty import StreamingQuantile, image_scores, js_divergence


def _entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def _softmax(logits: list[float]) -> list[float]:
    e = [math.exp(v) for v in logits]
    return [v / sum(e) for v in e]


# ---------------------------------------------------------------- JS divergence
def test_js_hand_computed_probs():
    # Two models, two classes, one pixel: p1 = (1, 0), p2 = (0.5, 0.5).
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]]).view(2, 1, 2, 1, 1)  # (M, B, K, H, W)
    expected = _entropy([0.75, 0.25]) - (0.0 + math.log(2)) / 2
    js = js_divergence(probs)
    assert js.shape == (1, 1, 1)
    assert js.item() == pytest.approx(expected, rel=1e-6)


def test_js_softmax_before_averaging():
    # Logits whose average would give a different distribution than the mean softmax.
    l1, l2, l3 = [3.0, 0.0, 0.0], [0.0, 0.0, 3.0], [1.0, 2.0, 0.5]
    ps = [_softmax(v) for v in (l1, l2, l3)]
    mean = [sum(p[k] for p in ps) / 3 for k in range(3)]
    expected = _entropy(mean) - sum(_entropy(p) for p in ps) / 3
    buggy = (
        _entropy(_softmax([sum(v[k] for v in (l1, l2, l3)) / 3 for k in range(3)]))
        - sum(_entropy(p) for p in ps) / 3
    )
    assert abs(expected - buggy) > 1e-2  # the example does tell the two apart
    logits = torch.tensor([l1, l2, l3]).view(3, 1, 3, 1, 1)
    assert js_divergence(logits, logits=True).item() == pytest.approx(expected, rel=1e-5)
    probs = torch.tensor(ps).view(3, 1, 3, 1, 1)
    assert js_divergence(probs).item() == pytest.approx(expected, rel=1e-5)


def test_js_nonnegative_and_zero_when_models_agree():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 2, 7, 6, 4, generator=g) * 3
    js = js_divergence(logits, logits=True)
    assert js.shape == (2, 6, 4)
    assert (js >= 0).all()
    assert js.max() > 0.01
    same = torch.softmax(logits[:1], dim=2).expand(5, -1, -1, -1, -1)
    assert torch.allclose(js_divergence(same), torch.zeros(2, 6, 4), atol=1e-6)
    # One-hot agreement (0 log 0 terms): exactly zero, no NaN.
    onehot = torch.zeros(3, 1, 4, 2, 2)
    onehot[:, :, 1] = 1.0
    out = js_divergence(onehot)
    assert torch.isfinite(out).all() and (out == 0).all()
    # JS is bounded by log(M).
    assert js.max() <= math.log(5) + 1e-5


def test_js_other_layouts_and_dtypes():
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(4, 3, 5, generator=g), dim=1)  # (M, K, N)
    ref = js_divergence(p.reshape(4, 1, 3, 5, 1))  # default (M, B, K, H, W) layout
    out = js_divergence(p, model_dim=0, class_dim=1)
    assert out.shape == (5,)
    assert torch.allclose(out, ref.flatten(), atol=1e-6)
    # class dim before the model dim: (K, N, M)
    assert torch.allclose(js_divergence(p.permute(1, 2, 0), model_dim=2, class_dim=0), out)
    half = js_divergence(p.half(), model_dim=0, class_dim=1)
    assert half.dtype == torch.float32
    assert torch.allclose(half, out, atol=2e-3)
    with pytest.raises(ValueError, match="differ"):
        js_divergence(p, model_dim=1, class_dim=1)


# ----------------------------------------------------------------- image scores
def test_image_scores_top_fraction():
    u = torch.arange(100, dtype=torch.float32).view(1, 10, 10)
    u = torch.cat([u, u.flip(-1) * 2])  # second image: values 0..198 step 2, shuffled
    assert image_scores(u).tolist() == pytest.approx([94.5, 189.0])  # mean of the top 10
    assert image_scores(u, top_fraction=0.02).tolist() == pytest.approx([98.5, 197.0])
    assert image_scores(u[:, :1, :3], top_fraction=0.1).tolist() == pytest.approx([2.0, 18.0])


def test_image_scores_valid_mask():
    u = torch.arange(100, dtype=torch.float32).view(1, 10, 10).repeat(2, 1, 1)
    valid = torch.zeros(2, 10, 10, dtype=torch.bool)
    valid[0].view(-1)[:50] = True  # values 0..49 count: top 5 = 45..49
    assert image_scores(u, valid=valid).tolist() == pytest.approx([47.0, 0.0])
    valid[1, 0, 0] = True  # a single valid pixel of value 0
    assert image_scores(u, valid=valid).tolist() == pytest.approx([47.0, 0.0])
    valid[1, 9, 9] = True  # {0, 99}: k = 1 -> 99
    assert image_scores(u, valid=valid).tolist() == pytest.approx([47.0, 99.0])


# ------------------------------------------------------------ streaming quantile
def _run(filt: StreamingQuantile, scores: list[float]) -> list[bool]:
    return [filt.update(s) for s in scores]


def test_streaming_quantile_iid_kept_fraction():
    rng = random.Random(0)
    for drop in (0.1, 0.3):
        filt = StreamingQuantile(drop_fraction=drop, window=1000)
        keep = _run(filt, [rng.random() for _ in range(20_000)])
        assert sum(keep) / len(keep) == pytest.approx(1 - drop, abs=0.02)
        # Dropped scores are the high ones.
        assert filt.threshold() == pytest.approx(1 - drop, abs=0.05)


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_streaming_quantile_drifting(direction: float):
    rng = random.Random(1)
    n = 30_000
    # Mean moves by 3 standard deviations over the run, in either direction.
    scores = [rng.gauss(0.0, 1.0) + direction * 3.0 * i / n for i in range(n)]
    filt = StreamingQuantile(drop_fraction=0.1, window=1000)
    keep = _run(filt, scores)
    assert sum(keep) / n == pytest.approx(0.9, abs=0.02)
    # A global threshold would fail here: it drops mostly from one end of the run.
    global_thr = sorted(scores)[int(0.9 * n)]
    late = [s > global_thr for s in scores[-5000:]]
    assert abs(sum(late) / 5000 - 0.1) > 0.05
    late_kept = keep[-5000:]
    assert sum(late_kept) / 5000 == pytest.approx(0.9, abs=0.03)


def test_streaming_quantile_threshold_is_window_quantile():
    rng = random.Random(2)
    scores = [rng.random() for _ in range(777)]
    filt = StreamingQuantile(drop_fraction=0.2, window=100)
    keep = _run(filt, scores)
    last = sorted(scores[-100:])
    assert filt.threshold() == last[math.ceil(0.8 * 100) - 1]
    # The last decision: dropped iff at least 80 of the last 100 are strictly smaller.
    below = sum(v < scores[-1] for v in scores[-100:])
    assert keep[-1] == (below < 80)


def test_streaming_quantile_warmup_and_ties():
    filt = StreamingQuantile(drop_fraction=0.1, window=50)
    # The first score is always kept; with < 10 scores nothing can rank in the top 10 %.
    assert _run(filt, [5.0, 6.0, 7.0, 8.0, 9.0]) == [True] * 5
    filt = StreamingQuantile(drop_fraction=0.1)
    assert all(filt.keep([0.5] * 200).tolist())  # equal scores are never "more uncertain"
    assert filt.update(float("nan")) is False
    assert filt.seen == 201 and filt.kept == 200


def test_streaming_quantile_resume_is_exact():
    rng = random.Random(3)
    scores = [rng.expovariate(1.0) for _ in range(6000)]
    a = StreamingQuantile(drop_fraction=0.15, window=500)
    first = _run(a, scores[:3000])
    state = json.loads(json.dumps(a.state_dict()))  # survives JSON
    rest_a = _run(a, scores[3000:])
    b = StreamingQuantile()
    b.load_state_dict(state)
    rest_b = _run(b, scores[3000:])
    assert rest_a == rest_b
    assert (b.seen, b.kept, b.drop_fraction, b.window) == (a.seen, a.kept, 0.15, 500)
    # And deterministic from scratch.
    c = StreamingQuantile(drop_fraction=0.15, window=500)
    assert _run(c, scores) == first + rest_a


def test_streaming_quantile_batch_api_and_errors():
    filt = StreamingQuantile(drop_fraction=0.5, window=10)
    mask = filt.keep(torch.tensor([1.0, 2.0, 3.0, 0.5]))
    assert mask.dtype == torch.bool and mask.tolist() == [True, False, False, True]
    with pytest.raises(ValueError):
        StreamingQuantile(drop_fraction=1.0)
    with pytest.raises(ValueError):
        StreamingQuantile().load_state_dict({"window": 3})
