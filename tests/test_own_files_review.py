"""The library's readers of its own ``.pt`` files (review): a demo run record, a demo
checkpoint, ``last.pt`` of ``train_segmentation`` and a segmentation model go through
the generator loader's memory guards; a damaged ``last.pt`` is a ValueError naming the
file and field before any step; a foreign demo run record is trained again."""

from __future__ import annotations

import io
import json
import logging
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import test_cli_review
import torch
from test_train import CountingSource, _two_counted_steps

from dgan_data.downstream import demo
from dgan_data.downstream.models import (
    build_deeplab,
    load_segmentation_model,
    save_segmentation_model,
)
from dgan_data.downstream.train import train_segmentation
from dgan_data.toy import CLASS_NAMES

K = len(CLASS_NAMES)
tiny_preset = test_cli_review.tiny_preset  # the demo's tiny preset (a fixture)
#: What a hostile pickle asks ``bytearray`` for: far more than its 1 kB file.
HUGE = 1 << 28


# ------------------------------------------------------------- hostile files
def _compressed_copy(obj: Any, path: Path) -> Path:
    """``torch.save(obj)`` with its tensor records deflated: torch inflates them whole."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as z:
        for info in src.infolist():
            packed = zipfile.ZIP_DEFLATED if "/data/" in info.filename else zipfile.ZIP_STORED
            z.writestr(info.filename, src.read(info), compress_type=packed)
    return path


def _bytearray_pickle(path: Path, size: int = HUGE) -> Path:
    """A ``torch.save`` zip whose pickle is ``bytearray(size)`` (an allow-listed call)."""
    torch.save({"summary": "x"}, path)
    with zipfile.ZipFile(path) as src:
        files = {i.filename: src.read(i) for i in src.infolist()}
    pickle_name = next(k for k in files if k.endswith("data.pkl"))
    files[pickle_name] = b"\x80\x02cbuiltins\nbytearray\nJ" + size.to_bytes(4, "little") + b"\x85R."
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def _refusal(text: str) -> bool:
    """The guard's words: a compressed record, or a pickle larger than its file."""
    return "is compressed" in text or "more than the" in text


@pytest.fixture(params=["zip-bomb", "bytearray"])
def hostile(request) -> Any:
    """Writes a hostile file at the path given (a small file asking for far more memory)."""
    if request.param == "zip-bomb":
        return lambda path: _compressed_copy(
            {"x": torch.zeros(HUGE // 64, dtype=torch.int64)}, path
        )
    return _bytearray_pickle


def test_a_hostile_finished_run_is_refused_before_it_is_read(tmp_path, hostile, caplog):
    runs = demo.FinishedRuns(tmp_path, "0123456789abcdef")
    runs.folder.mkdir()
    path = hostile(runs.path("b", 0))
    assert path.stat().st_size < 16 << 20
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        assert runs.load("b", 0) is None
    assert str(path) in caplog.text and _refusal(caplog.text), caplog.text


def test_a_hostile_demo_checkpoint_is_refused_and_the_arm_starts_over(tmp_path, hostile, caplog):
    runs = demo.FinishedRuns(tmp_path, "0123456789abcdef")
    runs.partial("c", 0).mkdir(parents=True)
    last = hostile(runs.partial("c", 0) / "last.pt")
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        assert runs.resume_step("c", 0) is None
    assert str(last) in caplog.text and _refusal(caplog.text), caplog.text
    assert not runs.partial("c", 0).exists()


def test_a_hostile_last_pt_is_a_value_error_before_training(tmp_path, hostile):
    hostile(tmp_path / "last.pt")
    source = CountingSource()
    with pytest.raises(ValueError, match=r"last\.pt") as err:
        train_segmentation(
            build_deeplab(K, image_size=32), source, 3, checkpoint_dir=tmp_path, resume=True,
            resumable_source=source, progress=False,
        )  # fmt: skip
    assert _refusal(str(err.value)), err.value
    assert source.drawn == []


def test_a_hostile_segmentation_model_is_a_value_error(tmp_path, hostile):
    path = hostile(tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"model\.pt") as err:
        load_segmentation_model(path)
    assert _refusal(str(err.value)), err.value


def test_a_compressed_encoder_weights_file_is_refused(tmp_path):
    """Small enough to load before: the guard, not an allocation failure, refuses it."""
    path = _compressed_copy({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "enc.pth")
    with pytest.raises(ValueError, match=r"enc\.pth") as err:
        build_deeplab(K, image_size=32, encoder_weights=path)
    assert "is compressed" in str(err.value)


def test_a_compressed_copy_of_a_saved_model_is_refused(tmp_path):
    saved = save_segmentation_model(build_deeplab(K, image_size=32), tmp_path / "ok.pt")
    payload = torch.load(saved, weights_only=True)
    path = _compressed_copy(payload, tmp_path / "zipped.pt")
    with pytest.raises(ValueError, match=r"zipped\.pt.*is compressed"):
        load_segmentation_model(path)


# --------------------------------------------------- a damaged last.pt (resume)
@pytest.fixture(scope="module")
def good_last(tmp_path_factory) -> dict[str, Any]:
    """A real ``last.pt`` of 2 steps (with a batch-source state), read once."""
    return _two_counted_steps(tmp_path_factory.mktemp("good"))


def _cpu_state(dtype: torch.dtype = torch.uint8, size: int | None = None) -> torch.Tensor:
    n = torch.get_rng_state().numel() if size is None else size
    return torch.zeros(n, dtype=dtype)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("step", {"step": -5}),
        ("step", {"step": 1.9}),
        ("step", {"step": True}),
        ("step", {"step": 9}),  # past steps=3: it returned at once, claiming 9 steps
        ("history.loss", {"history": {"loss": "abc"}}),
        ("history.lr", {"history": {"lr": [float("nan"), 1e-3]}}),
        ("history.total_seconds", {"history": {"total_seconds": "x"}}),
        ("history.checkpoints", {"history": {"checkpoints": None}}),
        ("history.checkpoints", {"history": {"checkpoints": [3]}}),
        ("history.evals", {"history": {"evals": ["x"]}}),
        ("history", {"history": {"not_a_field": 1}}),
        ("history", {"history": []}),
        ("rng", {"rng": {}}),
        ("rng", {"rng": "x"}),
        ("rng.cpu", {"rng": {"cpu": torch.zeros(3)}}),
        ("rng.cpu", {"rng": {"cpu": _cpu_state(torch.float32)}}),
        ("rng.cpu", {"rng": {"cpu": _cpu_state(size=7)}}),
        ("rng.cuda", {"rng": {"cpu": _cpu_state(), "cuda": torch.zeros(16)}}),
        ("sources", {"sources": "ab"}),
        ("sources", {"sources": {"next": 3}}),
        ("sources", {"sources": [["next", 3]]}),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_damaged_last_pt_names_the_file_and_field_before_any_step(
    tmp_path, good_last, field, change
):
    state = dict(good_last)
    for key, value in change.items():
        if key == "history" and isinstance(value, dict):
            value = {**good_last["history"], **value}
        state[key] = value
    torch.save(state, tmp_path / "last.pt")
    source = CountingSource()
    with pytest.raises(ValueError) as err:
        train_segmentation(
            build_deeplab(K, image_size=32), source, 3, checkpoint_dir=tmp_path, resume=True,
            resumable_source=source, progress=False,
        )  # fmt: skip
    text = str(err.value)
    assert str(tmp_path / "last.pt") in text and f"'{field}'" in text, text
    assert source.drawn == []


def test_a_sound_last_pt_still_resumes(tmp_path, good_last):
    torch.save(good_last, tmp_path / "last.pt")
    source = CountingSource()
    history = train_segmentation(
        build_deeplab(K, image_size=32), source, 3, checkpoint_dir=tmp_path, resume=True,
        resumable_source=source, progress=False,
    )  # fmt: skip
    assert source.drawn == [2] and history.steps == 3


# ------------------------------------------------- a foreign demo run record
def _summary(**change: Any) -> dict[str, Any]:
    """A run summary with every field ``run_summary`` writes (values made up here)."""
    record: dict[str, Any] = {
        "miou": 0.5,
        "pixel_accuracy": 0.8,
        "mean_accuracy": 0.6,
        "per_class_iou": {n: (None if i == 3 else 0.25) for i, n in enumerate(CLASS_NAMES)},
        "num_images": 4,
        "seed": 0,
        "miou_5fold_mean": 0.5,
        "miou_5fold_std": 0.01,
        "train_seconds": 1.0,
        "eval_seconds": 0.5,
        "seconds": 1.5,
        "data_seconds_per_step": 0.1,
        "optim_seconds_per_step": 0.2,
        "data_fraction": 0.33,
        "first_step_data_seconds": 0.1,
        "main_threads": 1,
        "stream_workers": 0,
        "loss_first": 2.0,
        "loss_last": 1.0,
        "curve": [{"step": 2, "val_miou": 0.4}],
    }
    record.update(change)
    return record


def _write_run(runs: demo.FinishedRuns, summary: Any, prediction: Any) -> Path:
    record = {"summary": json.dumps(summary)}
    if prediction is not None:
        record["prediction"] = prediction
    runs.folder.mkdir(parents=True, exist_ok=True)
    torch.save(record, runs.path("b", 0))
    return runs.path("b", 0)


PREDICTION = torch.zeros(2, 8, 8, dtype=torch.int64)


def test_a_sound_run_record_is_reused(tmp_path):
    runs = demo.FinishedRuns(tmp_path, "0123456789abcdef")
    _write_run(runs, _summary(), PREDICTION)
    summary, prediction = runs.load("b", 0)
    assert summary == _summary() and torch.equal(prediction, PREDICTION)


NO_PER_CLASS = {k: v for k, v in _summary().items() if k != "per_class_iou"}


@pytest.mark.parametrize(
    ("summary", "prediction"),
    [
        (NO_PER_CLASS, PREDICTION),  # KeyError per_class_iou in the report
        ({"miou": 0.5}, PREDICTION),  # a foreign summary of one field
        (_summary(miou="0.5"), PREDICTION),  # a str mIoU
        (_summary(miou=float("nan")), PREDICTION),  # NaN written to results.json
        (_summary(miou=1.5), PREDICTION),
        (_summary(miou=True), PREDICTION),
        (_summary(per_class_iou={"background": 0.5}), PREDICTION),
        (_summary(per_class_iou={**_summary()["per_class_iou"], "skin": "x"}), PREDICTION),
        (_summary(num_images="4"), PREDICTION),
        (_summary(curve=[{"step": "2"}]), PREDICTION),
        (_summary(loss_last="low"), PREDICTION),
        (_summary(), torch.full((2, 8, 8), K, dtype=torch.int64)),  # ids past 0..K-1
        (_summary(), torch.full((2, 8, 8), -1, dtype=torch.int64)),
        (_summary(), torch.zeros(8, 8, dtype=torch.int64)),  # not (rows, H, W)
        (_summary(), torch.zeros(2, 8, 8)),  # float
        (_summary(), None),  # draw 0 holds the figure's predictions
    ],
    ids=lambda v: str(v)[:30],
)
def test_a_foreign_run_record_is_trained_again(tmp_path, caplog, summary, prediction):
    runs = demo.FinishedRuns(tmp_path, "0123456789abcdef")
    path = _write_run(runs, summary, prediction)
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        assert runs.load("b", 0) is None
    assert str(path) in caplog.text and "training it again" in caplog.text


def test_the_demo_trains_a_foreign_run_again_instead_of_crashing(tiny_preset, tmp_path, capsys):
    """A rerun crashed with KeyError 'per_class_iou' (and a prediction of another shape
    reached the figure); both arms are trained again, the others reused."""
    out = tmp_path / "demo"
    assert test_cli_review._demo(out, tiny_preset) == 0
    saved = {p.name.split("_")[1]: p for p in (out / "runs").glob("*_draw0.pt")}
    record = torch.load(saved["c"], weights_only=True)
    record["summary"] = json.dumps({"miou": 0.5})  # a foreign summary
    torch.save(record, saved["c"])
    record = torch.load(saved["b"], weights_only=True)
    record["prediction"] = record["prediction"][:, :8, :8].clone()  # another shape
    torch.save(record, saved["b"])
    capsys.readouterr()
    assert test_cli_review._demo(out, tiny_preset) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused from") == 2, printed
    reused = [line for line in printed.splitlines() if "reused from" in line]
    assert not [line for line in reused if line.startswith(("(b) ", "(c) "))], reused
    assert json.loads((out / "results.json").read_text())["arms"]["c"]["per_class_iou"]
    shutil.rmtree(out)
