"""Review of dgan_data/uncertainty.py (/tmp/review_uncert/report.md): non-finite pixel
scores under ``valid``, dim and label checks, the exact rounding of the streaming
quantile, its input and state checks, and the documented per-epoch warm-up bias.

Expected values come from independent computations (numpy float64, fractions), never
from the code under test.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch

from dgan_data.uncertainty import (
    StreamingQuantile,
    class_mean_scores,
    entropy,
    image_scores,
    js_divergence,
)


def _exact_drop(n: int, d: float) -> int:
    """floor(d * n) on the decimal d is written as (reference for the tests)."""
    return math.floor(Fraction(str(d)) * n)


def _np_top_mean(values: np.ndarray, frac: float = 0.1) -> float:
    """Mean of the top max(1, floor(frac * n)) values, numpy float64 (NaN sorts first)."""
    v = np.asarray(values, dtype=np.float64)
    k = max(1, math.floor(Fraction(str(frac)) * v.size))
    ordered = np.sort(v)[::-1]  # numpy sorts NaN last, so reversed: NaN first
    return float(ordered[:k].mean())


# ----------------------------------------------------------------- finding 1
def test_image_scores_valid_keeps_non_finite_pixels_of_the_counted_pixels():
    rng = np.random.default_rng(0)
    u = rng.random((3, 8, 8)).astype(np.float32)
    u[0, 2, 3] = np.nan  # a broken pixel in image 0
    u[1, 4, 4] = np.inf  # an overflowed pixel in image 1
    u[2] = np.nan  # image 2 entirely broken
    t = torch.from_numpy(u)
    ones = torch.ones(3, 8, 8, dtype=torch.bool)
    got = image_scores(t, valid=ones)
    plain = image_scores(t)
    expected = [_np_top_mean(u[i].ravel()) for i in range(3)]
    assert math.isnan(expected[0]) and expected[1] == math.inf and math.isnan(expected[2])
    for g, p, e in zip(got.tolist(), plain.tolist(), expected):
        assert (math.isnan(g) and math.isnan(e)) or g == e
        assert (math.isnan(p) and math.isnan(e)) or p == e
    # an all-NaN image never looks certain
    assert math.isnan(image_scores(torch.full((1, 4, 4), math.nan), valid=ones[:1, :4, :4])[0])


def test_image_scores_valid_ignores_non_finite_pixels_outside_valid():
    rng = np.random.default_rng(1)
    u = rng.random((2, 10, 10)).astype(np.float32)
    valid = rng.random((2, 10, 10)) < 0.6
    u[~valid] = np.nan  # broken, but not counted
    nan_at = tuple(np.argwhere(valid[1])[0])
    u[1][nan_at] = np.nan  # image 1: one counted pixel is NaN
    got = image_scores(torch.from_numpy(u), valid=torch.from_numpy(valid)).tolist()
    exp0 = _np_top_mean(u[0][valid[0]])
    assert got[0] == pytest.approx(exp0, rel=1e-6, abs=1e-7)
    assert math.isnan(got[1])


# ----------------------------------------------------------------- finding 2
@pytest.mark.parametrize(
    ("model_dim", "class_dim", "name"),
    [
        (5, 2, "model_dim"),
        (0, 7, "class_dim"),
        (-6, 2, "model_dim"),
        (0.0, 2, "model_dim"),
        ("0", 2, "model_dim"),
        (True, 2, "model_dim"),
        (0, 2.0, "class_dim"),
    ],
)
def test_js_divergence_refuses_bad_dims(model_dim, class_dim, name):
    p = torch.softmax(torch.randn(3, 2, 4, 5, 5), dim=2)
    with pytest.raises(ValueError, match=name):
        js_divergence(p, model_dim, class_dim)


def test_js_divergence_refuses_empty_model_or_class_dims_and_keeps_valid_dims():
    with pytest.raises(ValueError, match="model"):
        js_divergence(torch.rand(0, 2, 4, 3, 3))
    with pytest.raises(ValueError, match="class"):
        js_divergence(torch.rand(3, 2, 0, 3, 3))
    with pytest.raises(ValueError, match="dim"):
        entropy(torch.rand(2, 3), dim=2)
    # negative dims in range still work, against a float64 numpy computation
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 2, 3, 5))  # (M, B, K, X)
    p = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)

    def h(q: np.ndarray, axis: int) -> np.ndarray:
        return -(q * np.log(q)).sum(axis)

    expected = h(p.mean(0), 1) - h(p, 2).mean(0)
    got = js_divergence(torch.from_numpy(p), model_dim=-4, class_dim=-2)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_image_scores_refuses_images_without_pixels():
    with pytest.raises(ValueError, match="at least one pixel"):
        image_scores(torch.zeros(2, 0, 5))
    with pytest.raises(ValueError, match="at least one pixel"):
        image_scores(torch.zeros(2, 0, 5), valid=torch.zeros(2, 0, 5, dtype=torch.bool))


def test_class_mean_scores_refuses_out_of_range_labels_keeps_ignore_index():
    u = torch.rand(1, 4, 4)
    for bad in (-1, 5, 7, 254):
        labels = torch.zeros(1, 4, 4, dtype=torch.long)
        labels[0, 1, 1] = bad
        with pytest.raises(ValueError, match=rf"labels .*0\.\.4.*{bad}"):
            class_mean_scores(u, labels, num_classes=5)
    with pytest.raises(ValueError, match="labels"):
        class_mean_scores(u, torch.zeros(1, 4, 4), num_classes=5)  # float labels
    # the ignore index 255 keeps working: those pixels do not count
    rng = np.random.default_rng(3)
    un = rng.random((2, 6, 6)).astype(np.float32)
    lab = rng.integers(0, 3, (2, 6, 6))
    lab[rng.random((2, 6, 6)) < 0.3] = 255
    expected = []
    for b in range(2):
        means = [
            un[b][lab[b] == c].astype(np.float64).mean() for c in range(3) if (lab[b] == c).any()
        ]
        expected.append(float(np.mean(means)))
    got = class_mean_scores(torch.from_numpy(un), torch.from_numpy(lab).to(torch.uint8), 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


# ----------------------------------------------------------------- finding 3
def test_num_dropped_is_exact_and_shared_with_the_export():
    from dgan_data.export.records import num_dropped as export_num_dropped
    from dgan_data.uncertainty import num_dropped

    assert export_num_dropped is num_dropped
    cases = [(10, 0.7), (20, 0.95), (100, 0.99), (100, 0.29), (1000, 0.7), (24, 0.1), (7, 0.1)]
    for n, d in cases:
        assert num_dropped(n, d) == _exact_drop(n, d), (n, d)
    rng = np.random.default_rng(4)
    for _ in range(2000):
        d = int(rng.integers(1, 1000)) / 1000
        n = int(rng.integers(1, 10**7))
        assert num_dropped(n, d) == _exact_drop(n, d), (n, d)
    # the export's tolerance: a product within 1e-9 below an integer counts as it
    tol = Fraction("0.9999999999") * 1 + Fraction(1, 10**9)
    assert num_dropped(1, 0.9999999999) == math.floor(tol) == 1
    with pytest.raises(ValueError, match="num"):
        num_dropped(-1, 0.1)
    with pytest.raises(ValueError, match="drop_fraction"):
        num_dropped(10, "0.1")


@pytest.mark.parametrize(("drop", "window"), [(0.7, 10), (0.95, 20), (0.99, 100)])
def test_streaming_quantile_drops_exactly_floor_drop_times_n(drop, window):
    # the case the float rule got wrong, then the README's settings (unchanged decisions)
    for d, w in [(drop, window), (0.1, 64), (0.3, 10)]:
        rng = np.random.default_rng(w)
        scores = rng.random(1500)
        q = StreamingQuantile(d, w)
        for i, s in enumerate(scores):
            win = scores[max(0, i + 1 - w) : i + 1]
            n = win.size
            n_drop = _exact_drop(n, d)
            expected_keep = int((win < s).sum()) < n - n_drop
            assert q.update(float(s)) == expected_keep, (i, d, w)
            assert q.threshold() == float(np.sort(win)[max(0, n - n_drop - 1)])


# ----------------------------------------------------------------- finding 4
def test_streaming_quantile_refuses_bad_window():
    for window in (10.7, True, math.inf, "10", None, 0, -3):
        with pytest.raises(ValueError, match="window"):
            StreamingQuantile(0.1, window)


def test_streaming_quantile_refuses_bad_drop_fraction():
    for drop in ("0.1", None, True, math.nan, math.inf, 1.0, -0.1):
        with pytest.raises(ValueError, match="drop_fraction"):
            StreamingQuantile(drop, 16)


def _filled(n: int = 40) -> StreamingQuantile:
    q = StreamingQuantile(0.2, 16)
    q.keep(np.random.default_rng(5).random(n).tolist())
    return q


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"recent": None}, "recent"),
        ({"recent": "1234"}, "recent"),
        ({"recent": [0.5, math.nan, 0.1]}, "recent"),
        ({"recent": [0.5, math.inf]}, "recent"),
        ({"recent": [0.5, True]}, "recent"),
        ({"recent": [0.5, "0.3"]}, "recent"),
        ({"seen": -1}, "seen"),
        ({"seen": 3.5}, "seen"),
        ({"kept": 41}, "kept"),
        ({"kept": -2}, "kept"),
        ({"seen": 10, "kept": 5}, "scores"),  # 16 recent scores but only 10 seen
        ({"window": 8}, "window"),  # 16 recent scores, window 8
        ({"window": 10.5}, "window"),
        ({"window": True}, "window"),
        ({"drop_fraction": "0.2"}, "drop_fraction"),
        ({"drop_fraction": math.nan}, "drop_fraction"),
        ({"drop_fraction": 1.0}, "drop_fraction"),
    ],
)
def test_load_state_dict_refuses_corrupt_states_without_changing_anything(change, name):
    src = _filled()
    state = {**src.state_dict(), **change}
    dst = StreamingQuantile(0.5, 12)
    dst.update(0.3)
    before = json.dumps(dst.state_dict())
    with pytest.raises(ValueError, match=rf"not a StreamingQuantile state.*{name}"):
        dst.load_state_dict(state)
    assert json.dumps(dst.state_dict()) == before
    assert dst.threshold() == 0.3 and dst.update(0.1) is True


def test_non_finite_scores_are_dropped_unrecorded_and_states_round_trip():
    q = _filled()
    recent = list(q.state_dict()["recent"])
    for bad in (math.inf, -math.inf, math.nan):
        assert q.update(bad) is False
    state = q.state_dict()
    assert state["recent"] == recent and state["seen"] == 43
    r = StreamingQuantile()
    r.load_state_dict(json.loads(json.dumps(state)))
    more = np.random.default_rng(6).random(30).tolist()
    assert [q.update(s) for s in more] == [r.update(s) for s in more]


# ----------------------------------------------------------------- finding 5
def test_stream_docstring_states_the_warm_up_bias_of_the_real_rule():
    from dgan_data.stream.dataset import DatasetGANStream

    doc = " ".join((DatasetGANStream.__doc__ or "").split())
    assert "1,000 candidates" in doc
    table = {int(n): float(pct) for pct, n in re.findall(r"([\d.]+) % \((?:N = )?(\d+)\)", doc)}
    assert {20, 50, 100, 200, 1000} <= set(table)
    window = 1024  # the stream's default quantile_window
    for n, shown in table.items():
        # expected share for i.i.d. scores: the i-th is dropped with prob floor(0.1 m) / m,
        # m = min(i, window) scores in the window
        share = sum(
            Fraction(_exact_drop(min(i, window), 0.1), min(i, window)) for i in range(1, n + 1)
        )
        assert shown == round(float(share / n) * 100, 1), (n, shown)
