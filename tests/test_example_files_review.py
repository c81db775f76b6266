"""Review of the files the example scripts read back: .pt files go through the package's
memory guard (a small hostile file is refused before torch reads it), diagnose.py's
caches are checked and made again when damaged, results files are named when damaged,
and build_preset.py's GAN gate refuses a quality JSON it cannot trust."""

from __future__ import annotations

import argparse
import io
import json
import logging
import zipfile
from pathlib import Path

import pytest
import torch
from example_scripts import assert_one_line, load_example

from dgan_data.cli.common import UsageError

diagnose = load_example("toy/diagnose", "files_review_diagnose")
self_training = load_example("toy/self_training", "files_review_self_training")
train_gan = load_example("toy/train_gan", "files_review_train_gan")
build_preset = load_example("toy/build_preset", "files_review_build_preset")
deeplab = load_example("train_deeplab", "files_review_train_deeplab")

#: What a hostile file asks torch to allocate: far more than the file's kilobytes.
BOMB_BYTES = 32 << 20


def _write_zip(path: Path, records: dict[str, bytes], deflate: str = "") -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in records.items():
            kind = zipfile.ZIP_DEFLATED if deflate and deflate in name else zipfile.ZIP_STORED
            z.writestr(name, data, compress_type=kind)


def _records(buf: bytes) -> dict[str, bytes]:
    src = zipfile.ZipFile(io.BytesIO(buf))
    return {info.filename: src.read(info) for info in src.infolist()}


def hostile_file(path: Path, kind: str) -> Path:
    """A torch.save file of a few kB that makes torch allocate ``BOMB_BYTES``: a pickle
    calling ``bytearray(n)`` (torch's allow-listed builtin), or a tensor record stored
    deflate-compressed (a zip bomb)."""
    buf = io.BytesIO()
    if kind == "bytearray":
        torch.save({"x": 1}, buf)
        files = _records(buf.getvalue())
        pkl = next(k for k in files if k.endswith("data.pkl"))
        files[pkl] = b"\x80\x02cbuiltins\nbytearray\nJ" + BOMB_BYTES.to_bytes(4, "little")
        files[pkl] += b"\x85R."
        _write_zip(path, files)
    else:
        torch.save({"images": torch.zeros(BOMB_BYTES // 8, dtype=torch.int64)}, buf)
        _write_zip(path, _records(buf.getvalue()), deflate="/data/")
    assert path.stat().st_size < BOMB_BYTES // 100
    return path


@pytest.fixture
def torch_loads(monkeypatch) -> list[str]:
    """The paths torch.load is called on (it still loads them)."""
    calls: list[str] = []
    real = torch.load

    def spy(f, *args, **kwargs):
        calls.append(str(f))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    return calls


def samples(n: int = 2, size: int = 8) -> dict[str, torch.Tensor]:
    """A tiny diagnose.py sample set: images in [0, 1] and class-0 labels."""
    return {
        "images": torch.rand(n, 3, size, size),
        "labels": torch.zeros(n, size, size, dtype=torch.long),
    }


class Maker:
    """``make`` for :func:`diagnose.cached`, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.value = samples()

    def __call__(self) -> dict[str, torch.Tensor]:
        self.calls += 1
        return self.value


# ------------------------------------------------- A. .pt files through the guard
KINDS = ["bytearray", "zip"]


@pytest.mark.parametrize("kind", KINDS)
def test_diagnose_cache_that_is_hostile_is_made_again_unread(tmp_path, torch_loads, kind, caplog):
    path = hostile_file(tmp_path / "R_2_abc.pt", kind)
    make = Maker()
    with caplog.at_level(logging.WARNING):
        value = diagnose.cached(path, make)
    assert make.calls == 1 and value is make.value
    assert str(path) not in torch_loads
    assert any(str(path) in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", KINDS)
def test_self_training_refuses_a_hostile_cache_naming_it_unread(tmp_path, torch_loads, kind):
    path = hostile_file(tmp_path / "S.pt", kind)
    with pytest.raises(SystemExit) as exc:
        self_training.load_samples(path, need_labels=False)
    assert str(path) in str(exc.value.code)
    assert str(path) not in torch_loads


@pytest.mark.parametrize("kind", KINDS)
def test_train_gan_refuses_a_hostile_checkpoint_in_one_line_unread(
    tmp_path, torch_loads, kind, capsys
):
    path = hostile_file(tmp_path / "checkpoint.pt", kind)
    with pytest.raises(SystemExit) as exc:
        train_gan.parse_args(["--out", str(tmp_path), "--steps", "2", "--size", "16"])
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, str(path))
    assert str(path) not in torch_loads


@pytest.mark.parametrize("kind", KINDS)
def test_train_gan_renders_a_hostile_bank_again_unread(tmp_path, torch_loads, kind):
    path = hostile_file(tmp_path / "bank.pt", kind)
    assert train_gan.cached_bank(path, 4, 16) is None
    assert str(path) not in torch_loads


@pytest.mark.parametrize("kind", KINDS)
def test_train_deeplab_refuses_a_hostile_last_pt_in_one_line_unread(
    tmp_path, torch_loads, kind, capsys
):
    path = hostile_file(tmp_path / "last.pt", kind)
    argv = [
        "--preset", "toyface-14", "--eval-toy-test", "4", "--max-steps", "4",
        "--resume", "--checkpoint-dir", str(tmp_path),
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        deeplab.parse_args(argv)
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "--resume", str(path))
    assert str(path) not in torch_loads


@pytest.mark.parametrize("kind", KINDS)
def test_train_deeplab_refuses_hostile_scores_and_ignores_a_hostile_step_file_unread(
    tmp_path, torch_loads, kind
):
    scores = hostile_file(tmp_path / "scores.pt", kind)
    with pytest.raises(UsageError, match=r"scores\.pt"):
        deeplab.EvalScores(tmp_path, True, "x", 4).load(2)
    step = hostile_file(tmp_path / "step_0000002.pt", kind)
    args = argparse.Namespace(arch="x", encoder="y", output_stride=16, decoder_channels=16)
    assert deeplab.model_option_mismatch(args, step) is None
    assert str(scores) not in torch_loads and str(step) not in torch_loads


# ------------------------------------------------- B. damaged caches and results
def _truncated(path: Path) -> Path:
    torch.save(samples(), path)
    path.write_bytes(path.read_bytes()[:300])  # a full disk, an interrupted copy
    return path


@pytest.mark.parametrize(
    "saved",
    [
        "truncated",
        {"images": "not a tensor"},
        {"images": torch.rand(2, 3, 8, 8)},  # no labels
        {"images": torch.rand(2, 3, 8, 8), "labels": torch.rand(2, 8, 8)},  # float labels
        {"images": torch.rand(2, 3, 8, 8), "labels": torch.zeros(3, 8, 8, dtype=torch.long)},
        [1, 2],
    ],
    ids=["truncated", "foreign", "no-labels", "float-labels", "rows-differ", "list"],
)
def test_diagnose_makes_a_damaged_or_foreign_cache_again(tmp_path, saved, caplog):
    path = tmp_path / "G_2_abc.pt"
    if saved == "truncated":
        _truncated(path)
    else:
        torch.save(saved, path)
    make = Maker()
    with caplog.at_level(logging.WARNING):
        value = diagnose.cached(path, make)
    assert make.calls == 1 and value is make.value
    assert any(str(path) in r.getMessage() for r in caplog.records)
    # the cache on disk is the new one: a rerun loads it without making it
    again = Maker()
    assert torch.equal(diagnose.cached(path, again)["images"], make.value["images"])
    assert again.calls == 0


def test_self_training_names_a_truncated_cache(tmp_path):
    path = _truncated(tmp_path / "S.pt")
    with pytest.raises(SystemExit) as exc:
        self_training.load_samples(path, need_labels=True)
    assert str(path) in str(exc.value.code)


@pytest.mark.parametrize("text", ["{not json", '{"students": [1]}'], ids=["invalid", "list"])
def test_diagnose_names_a_damaged_results_file(tmp_path, text):
    path = tmp_path / "diagnose.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"diagnose\.json"):
        diagnose.merge_students(path, {"students": {}})


def test_self_training_names_a_damaged_results_file_in_one_line(tmp_path, capsys):
    torch.save(samples(), tmp_path / "data.pt")
    torch.save(samples(), tmp_path / "eval.pt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "self_training.json").write_text("{not json")
    argv = ["--data", str(tmp_path / "data.pt"), "--eval", str(tmp_path / "eval.pt")]
    assert self_training.main([*argv, "--out", str(out), "--steps", "1"]) == 2
    assert_one_line(capsys.readouterr().err, "self_training.py", "self_training.json")


# ------------------------------------------------- C. the GAN gate's quality JSON
def quality(**change) -> dict:
    """A passing evaluate_gan.py JSON with ``change`` applied (diversity keys too)."""
    diversity = {
        "face_centre_spread": {"generated": 1.0, "real": 1.0, "ratio": 1.0, "ok": True},
        "bald_rate": {"generated": 0.1, "real": 0.1, "ratio": 1.0, "ok": True},
        "all_ok": True,
    }
    doc = {"diversity": diversity, "kid_mean": 0.001, "kid_std": 0.0005,
           "kid_real_mean": 0.001, "kid_real_std": 0.0005, "truncation_psi": 1.0}  # fmt: skip
    for key, value in change.items():
        if key in diversity:
            diversity[key] = value
        else:
            doc[key] = value
    return doc


def _failed(ok: object) -> dict:
    return {"generated": 0.2, "real": 1.0, "ratio": 0.2, "ok": ok}


BAD_QUALITY = {
    "all_ok-string": (quality(bald_rate=_failed(False), all_ok="false"), "all_ok"),
    "ok-string": (quality(bald_rate=_failed("false"), all_ok=False), "bald_rate.ok"),
    "all_ok-disagrees": (quality(bald_rate=_failed(False)), "all_ok"),
    "kid-negative": (quality(kid_mean=-5.0), "kid_mean"),
    "kid-string": (quality(kid_mean="0.001"), "kid_mean"),
    "floor-negative": (quality(kid_real_mean=-5.0), "kid_real_mean"),
    "std-negative": (quality(kid_real_std=-0.1), "kid_real_std"),
    "psi-string": (quality(truncation_psi="abc"), "truncation_psi"),
    "psi-above-1": (quality(truncation_psi=1.5), "truncation_psi"),
    "ratio-string": (
        quality(bald_rate={"generated": 1, "real": 1, "ratio": "1.0", "ok": True}),
        "bald_rate.ratio",
    ),
    "ratio-negative": (quality(bald_rate=_failed(False) | {"ratio": -0.2}, all_ok=False), "ratio"),
    "no-diversity": ({**quality(), "diversity": {"all_ok": True}}, "diversity"),
}


@pytest.mark.parametrize("name", list(BAD_QUALITY))
def test_gan_gate_refuses_a_quality_file_it_cannot_trust(tmp_path, name):
    doc, field = BAD_QUALITY[name]
    path = tmp_path / "quality.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as exc:
        build_preset.gan_gate(str(path))
    assert str(exc.value).startswith(str(path)) and field in str(exc.value)


def test_a_string_verdict_stops_the_build_in_one_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "quality.json"
    path.write_text(json.dumps(BAD_QUALITY["all_ok-string"][0]))

    def built(*args, **kwargs):
        raise AssertionError("the gate passed: the build went on")

    monkeypatch.setattr(build_preset, "load_generator", built)
    argv = ["--generator", "toyface-14", "--out", str(tmp_path / "o"), "--quality", str(path)]
    assert build_preset.main(argv) == 2
    assert_one_line(capsys.readouterr().err, "build_preset.py: error:", str(path), "all_ok")
    assert not (tmp_path / "o").exists()


def test_gan_gate_still_reads_good_files_and_kid_noise_below_zero(tmp_path):
    path = tmp_path / "quality.json"
    for doc in (quality(), quality(kid_mean=-0.0004), quality(bald_rate=_failed(False),
                                                               all_ok=False)):  # fmt: skip
        path.write_text(json.dumps(doc))
        gate = build_preset.gan_gate(str(path))
        assert gate["ok"] is doc["diversity"]["all_ok"]
