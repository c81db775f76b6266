"""The GPU inference path (``impl="interpolate"``) and the labeler around it: no host
synchronisation, cached per-frame tensors, the optional ``torch.compile`` and its
fallback, and (on a CUDA device) the sync-free labeling call and its agreement with
the reference path.

On the CPU, "no host synchronisation" is checked by recording every operator the
interpolate path dispatches on the ``meta`` device (tensors without values): an op that
reads a value on the host (``.item()``, ``nonzero``) or a tensor made on another
device would show up there. References come from ``naive_predict`` (upsample, concat,
plain ``nn.Sequential`` models), never from the path under test.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from conftest import requires_cuda
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from dgan_data.generators import StyleGAN2Generator
from dgan_data.interpreter import Interpreter, feature_layout
from dgan_data.interpreter import frames as interpreter_frames
from dgan_data.labeler import Labeler
from dgan_data.seeds import z_from_seeds

#: The bar for bfloat16 autocast (see the README: what bf16 labels can be relied on for).
BF16_AGREEMENT = 0.995
#: Operators that read a tensor's value on the host (a device sync on CUDA).
HOST_READS = {"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select", "unique"}


class OpRecorder(TorchDispatchMode):
    """Records the name of every operator dispatched and the devices of its outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.devices: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append(func.overloadpacket.__name__)
        self.devices |= {t.device.type for t in tree_flatten(out)[0] if torch.is_tensor(t)}
        return out


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


# ----------------------------------------------------------------- models
def tiny_generator(device: str = "cpu") -> StyleGAN2Generator:
    torch.manual_seed(0)
    G = StyleGAN2Generator(16, style_dim=32, n_mlp=1, channels={4: 16, 8: 16, 16: 8})
    return G.to(device).eval()


def random_interpreter(layout, num_classes: int = 5, num_models: int = 3, seed: int = 0):
    """Random weights and BatchNorm statistics: confident models that disagree."""
    interp = Interpreter(layout, num_classes, num_models, seed=seed)
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


LAYOUT = [(12, 4, 4), (10, 8, 8), (9, 8, 8), (8, 16, 16), (7, 16, 16), (6, 32, 32), (5, 32, 32)]


def random_features(layout, batch: int = 2, device: str = "cpu"):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, c, h, w, generator=g).to(device) for c, h, w in layout]


# ------------------------------------------------------- no host syncs (CPU)
@pytest.mark.parametrize("split", ["project", "resample"])
@torch.no_grad()
def test_interpolate_path_reads_no_values_and_stays_on_the_device(monkeypatch, split):
    monkeypatch.setattr(interpreter_frames, "_project_first", lambda *_: split == "project")
    interp = random_interpreter(LAYOUT).to("meta")
    feats = [f.to("meta") for f in random_features(LAYOUT)]
    frame, crop = (40, 36), (3, 2, 30, 31)
    calls = []
    for _ in range(2):
        with OpRecorder() as rec:
            out = interp.predict(feats, frame, crop=crop, impl="interpolate", return_probs=True)
        calls.append(rec)
    assert out.labels.shape == (2, 30, 31) and out.probs.shape == (2, 5, 30, 31)
    for rec in calls:
        assert rec.devices == {"meta"}, rec.devices  # nothing made on (or copied to) the host
        assert not HOST_READS & set(rec.ops), HOST_READS & set(rec.ops)
    # The interpolation matrix is built once per frame (scatter_add_), then reused.
    assert ("scatter_add_" in calls[0].ops) == (split == "project")
    assert "scatter_add_" not in calls[1].ops and "arange" not in calls[1].ops


def test_op_recorder_sees_host_reads():
    # Guards the test above: a value read on the host is visible to the recorder.
    with OpRecorder() as rec:
        torch.ones(3).sum().item()
        torch.arange(4).nonzero()
    assert {"_local_scalar_dense", "nonzero"} <= set(rec.ops)


@torch.no_grad()
def test_labeling_call_reads_no_values_on_the_host():
    G = tiny_generator()
    labeler = Labeler(G, random_interpreter(feature_layout(G)), impl="interpolate")
    labeler.label([1, 2])  # warm-up: plans are built
    with OpRecorder() as rec:
        batch = labeler.label([3, 4, 5])
    assert batch.masks.shape == (3, 16, 16)
    assert not HOST_READS & set(rec.ops), HOST_READS & set(rec.ops)


# --------------------------------------------------------- labeler options
@torch.no_grad()
def test_labeler_impl_option_selects_the_path():
    G = tiny_generator()
    interp = random_interpreter(feature_layout(G))
    rows = Labeler(G, interp, impl="rows").label([7, 8, 9])
    frames = Labeler(G, interp, impl="interpolate").label([7, 8, 9])
    assert torch.equal(rows.masks, frames.masks)
    torch.testing.assert_close(rows.pixel_uncertainty, frames.pixel_uncertainty)
    torch.testing.assert_close(rows.image_uncertainty, frames.image_uncertainty)
    with pytest.raises(ValueError, match="impl must be one of"):
        Labeler(G, interp, impl="gpu")


@torch.no_grad()
def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch, caplog):
    def broken_compiler():
        def run(*args, **kwargs):
            raise RuntimeError("backend compiler failed: no C++ compiler")

        return run

    monkeypatch.setattr(interpreter_frames, "_compiled_label_frames", broken_compiler)
    G = tiny_generator()
    interp = random_interpreter(feature_layout(G))
    eager = Labeler(G, interp, impl="interpolate").label([1, 2])
    labeler = Labeler(G, interp, impl="interpolate", compile=True)
    with caplog.at_level(logging.WARNING, logger="dgan_data.interpreter.frames"):
        first = labeler.label([1, 2])
        second = labeler.label([1, 2])
    assert torch.equal(first.masks, eager.masks) and torch.equal(second.masks, eager.masks)
    warnings = [r for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler" in warnings[0].getMessage()
    assert interp._compile_failed


@pytest.mark.slow
@torch.no_grad()
def test_compiled_interpolate_path_matches_eager_on_cpu():
    # Two maps, one projected first and one resampled first: a small graph (compiling
    # takes about 20 s on a 2-core CPU).
    layout = [(40, 4, 4), (5, 8, 8)]
    interp = random_interpreter(layout)
    feats = random_features(layout)
    plan = interp._frames_plan((8, 8), (0, 0, 8, 8))
    assert len(plan["project"]) == 1 and len(plan["resample_maps"]) == 1
    eager = interp.predict(feats, (8, 8), return_probs=True, impl="interpolate")
    compiled = interp.predict(feats, (8, 8), return_probs=True, impl="interpolate", compile=True)
    assert not interp._compile_failed, "torch.compile failed here (see the logged warning)"
    assert torch.equal(compiled.labels, eager.labels)
    torch.testing.assert_close(compiled.probs, eager.probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.pixel_uncertainty, eager.pixel_uncertainty)


def test_compiled_path_is_shared_by_interpreters_of_one_layout():
    """Several interpreters (an ensemble per class set, a refit) reuse one compiled graph:
    a second instance with other weights neither recompiles nor gives stale results."""
    from torch._dynamo.utils import counters

    layout = [(40, 4, 4), (5, 8, 8)]
    feats = random_features(layout)
    first, second = random_interpreter(layout, seed=0), random_interpreter(layout, seed=1)
    first.predict(feats, (8, 8), impl="interpolate", compile=True)
    graphs = counters["stats"]["unique_graphs"]
    out = second.predict(feats, (8, 8), return_probs=True, impl="interpolate", compile=True)
    assert counters["stats"]["unique_graphs"] == graphs, "a second interpreter recompiled"
    eager = second.predict(feats, (8, 8), return_probs=True, impl="interpolate")
    assert not second._compile_failed
    torch.testing.assert_close(out.probs, eager.probs, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------- CUDA
def _no_tf32():
    """Full float32 everywhere (the reference path's products included)."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    old = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    return old


@requires_cuda
@torch.no_grad()
def test_labeling_has_no_host_sync_on_cuda():
    G = tiny_generator("cuda")
    labeler = Labeler(G, random_interpreter(feature_layout(G)), device="cuda")
    labeler.label([1, 2, 3, 4])  # warm-up: plans, pinned buffers, kernels
    feats = random_features(feature_layout(G), 2, "cuda")
    labeler.interpreter.predict(feats, (16, 16))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        batch = labeler.label([5, 6, 7, 8])
        pred = labeler.interpreter.predict(feats, (16, 16))
        with pytest.raises(RuntimeError):  # the mode is on: a value read would be caught
            batch.image_uncertainty.sum().item()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert batch.masks.device.type == "cuda" and pred.labels.device.type == "cuda"


@requires_cuda
@torch.no_grad()
def test_cuda_interpolate_equals_naive_without_tf32():
    interp = random_interpreter(LAYOUT).cuda()
    interp.tf32 = False
    feats = random_features(LAYOUT, 3, "cuda")
    old = _no_tf32()
    try:
        for crop in (None, (3, 2, 30, 31)):
            ref = interp.naive_predict(feats, (40, 36), return_probs=True, crop=crop)
            got = interp.predict(feats, (40, 36), return_probs=True, crop=crop)  # auto: frames
            assert torch.equal(got.labels, ref.labels)
            torch.testing.assert_close(got.probs, ref.probs, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(got.pixel_uncertainty, ref.pixel_uncertainty)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _toyface_labeler(**kw) -> Labeler:
    from dgan_data.presets import list_presets, preset_status

    name = "toyface-14"
    status = preset_status(name) if name in list_presets() else {}
    if not (status.get("generator_present") and status.get("interpreter_present")):
        pytest.skip(f"needs the shipped {name} preset's files (a trained interpreter)")
    return Labeler.from_sources(name, device="cuda", **kw)


def _agreement_with_reference(labeler: Labeler, seeds: list[int]) -> float:
    """Share of mask pixels equal to ``naive_predict`` in full float32."""
    batch = labeler.label(seeds)
    G, interp = labeler.G, labeler.interpreter
    old = _no_tf32()
    try:
        z = z_from_seeds(seeds, G.z_dim, device="cuda")
        w = G.mapping(z, labeler.truncation_psi, labeler.truncation_cutoff)
        img, feats = G.synthesize(w, noise=labeler.noise)
        maps = interp.prediction_maps(feats, img)  # the preset reads the image too
        ref = interp.naive_predict(maps, labeler.frame, crop=labeler.crop)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    return float((batch.masks == ref.labels).float().mean())


@requires_cuda
@torch.no_grad()
def test_cuda_default_mode_labels_match_reference_on_trained_preset():
    """Default mode (float32 with TF32 products): >= 99.9 % of labels as the reference."""
    labeler = _toyface_labeler()
    agree = _agreement_with_reference(labeler, list(range(100, 132)))
    assert agree >= 0.999, agree


@requires_cuda
@torch.no_grad()
def test_cuda_bfloat16_labels_agree_with_reference_on_trained_preset():
    labeler = _toyface_labeler(dtype=torch.bfloat16)
    agree = _agreement_with_reference(labeler, list(range(100, 132)))
    assert agree >= BF16_AGREEMENT, agree


@requires_cuda
@torch.no_grad()
def test_cuda_compiled_labeler_matches_eager():
    G = tiny_generator("cuda")
    interp = random_interpreter(feature_layout(G))
    eager = Labeler(G, interp, device="cuda").label(list(range(8)))
    compiled = Labeler(G, interp, device="cuda", compile=True).label(list(range(8)))
    assert not interp._compile_failed, "torch.compile failed on CUDA (see the logged warning)"
    assert float((compiled.masks == eager.masks).float().mean()) >= 0.999
