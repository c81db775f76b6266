"""Export to disk: files, global uncertainty selection, kill/resume, shards, read-back, CLI.

A 32 px StyleGAN2 and a random 3-model interpreter (4 classes) keep every export to a
second or two on one CPU thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan_data import load_generator
from dgan_data.cli import main
from dgan_data.export import (
    ExportedDataset,
    export_dataset,
    merge_shards,
    num_dropped,
    shard_candidates,
)
from dgan_data.export import select as export_select
from dgan_data.interpreter import Interpreter, feature_layout
from dgan_data.seeds import sample_seed
from dgan_data.stream import IGNORE_INDEX, DatasetGANStream

K = 4
NUM = 24
BATCH = 4
DROP = 0.25  # floor(0.25 * 24) = 6 dropped, 18 kept


@pytest.fixture(autouse=True)
def _one_thread():
    """One CPU thread: a GAN trains beside these tests, and one thread is fastest here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_models(folder: Path, reference_dir: Path) -> dict[str, str]:
    """Generator and random interpreter saved as files, so the CLI can load them."""
    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    interp = Interpreter(feature_layout(G), K, num_models=3, label_size=(32, 32), seed=0)
    return {
        "generator": str(G.save(folder / "g.safetensors")),
        "interpreter": str(interp.save(folder / "i.safetensors")),
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory, reference_dir) -> dict[str, str]:
    return save_models(tmp_path_factory.mktemp("models"), reference_dir)


def _export(models: dict[str, str], out: Path, **kw):
    args = {"drop_uncertain": DROP, "batch_size": BATCH, "seed": 0, "progress": False}
    args.update(kw)
    num = args.pop("num", NUM)
    return export_dataset(None, num, out, device="cpu", **models, **args)


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones too) -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reference(models, tmp_path_factory) -> Path:
    """One uninterrupted, unsharded export that other tests compare against."""
    out = tmp_path_factory.mktemp("ref") / "data"
    _export(models, out, shard=0, num_shards=1)
    return out


def _scores_by_stream(models: dict[str, str], seed: int = 0) -> list[float]:
    """Candidate scores recomputed with the stream's labeling path, same fixed batches."""
    stream = DatasetGANStream(None, device="cpu", **models)
    scores: list[float] = []
    for start in range(0, NUM, BATCH):
        seeds = [sample_seed(seed, 0, i) for i in range(start, min(NUM, start + BATCH))]
        scores += stream.generate(seeds)["uncertainty"].tolist()
    return scores


# ------------------------------------------------------------------ layout, selection
def test_num_dropped_rounds_down():
    assert num_dropped(24, 0.25) == 6
    assert num_dropped(100, 0.29) == 29  # 0.29 * 100 = 28.999... in floats
    assert num_dropped(24, 0.1) == 2  # 2.4 -> 2
    assert num_dropped(7, 0.1) == 0
    assert num_dropped(10, 0.0) == 0


def test_export_writes_expected_files(reference):
    files = _snapshot(reference)
    n_keep = NUM - num_dropped(NUM, DROP)
    images = sorted(f for f in files if f.startswith("images/"))
    masks = sorted(f for f in files if f.startswith("masks/"))
    assert len(images) == len(masks) == n_keep
    assert set(files) == {"dataset.json", "index.jsonl", "candidates.jsonl", *images, *masks}

    info = json.loads((reference / "dataset.json").read_text())
    assert info["format"] == "dgan_data.export" and info["status"] == "complete"
    assert info["classes"] == [f"class_{k}" for k in range(K)]
    assert np.asarray(info["palette"]).shape == (K, 3)
    assert info["label_size"] == [32, 32] and info["ignore_index"] == 255
    s = info["settings"]
    assert (s["num"], s["seed"], s["drop_uncertain"], s["num_shards"]) == (NUM, 0, DROP, 1)
    assert s["generator_fingerprint"] and s["interpreter_fingerprint"]
    assert info["selection"]["kept"] == n_keep and info["selection"]["dropped"] == NUM - n_keep

    index = _jsonl(reference / "index.jsonl")
    assert [e["image"] for e in index] == images and [e["mask"] for e in index] == masks
    for e in index:
        assert e["seed"] == sample_seed(0, 0, e["index"])
        assert e["id"] == f"{e['index']:06d}"
        img = np.asarray(Image.open(reference / e["image"]))
        mask = np.asarray(Image.open(reference / e["mask"]))
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert mask.shape == (32, 32) and Image.open(reference / e["mask"]).mode == "L"
        assert e["histogram"] == np.bincount(mask.ravel(), minlength=K).tolist()
        assert e["ignored"] == 0
    assert sum(len(e["histogram"]) == K for e in index) == n_keep


def test_global_selection_drops_exactly_the_most_uncertain(models, reference):
    scores = _scores_by_stream(models)
    cands = _jsonl(reference / "candidates.jsonl")
    assert [c["index"] for c in cands] == list(range(NUM))
    assert [c["uncertainty"] for c in cands] == pytest.approx(scores, rel=1e-6, abs=0)
    n_drop = num_dropped(NUM, DROP)
    expected_dropped = set(np.argsort(-np.asarray(scores), kind="stable")[:n_drop].tolist())
    assert {c["index"] for c in cands if not c["kept"]} == expected_dropped
    kept = {e["index"] for e in _jsonl(reference / "index.jsonl")}
    assert kept == set(range(NUM)) - expected_dropped
    threshold = json.loads((reference / "dataset.json").read_text())["selection"]["threshold"]
    assert threshold == max(c["uncertainty"] for c in cands if c["kept"])
    assert all(c["uncertainty"] >= threshold for c in cands if not c["kept"])


def test_written_samples_are_the_streams_samples(models, reference):
    stream = DatasetGANStream(None, device="cpu", **models)
    index = _jsonl(reference / "index.jsonl")
    e = index[0]
    batch = range(e["index"] // BATCH * BATCH, e["index"] // BATCH * BATCH + BATCH)
    out = stream.generate([sample_seed(0, 0, i) for i in batch])
    j = e["index"] - batch.start
    img = (out["image"][j].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(reference / e["image"])), img)
    np.testing.assert_array_equal(
        np.asarray(Image.open(reference / e["mask"])), out["mask"][j].numpy()
    )


def test_rerun_of_a_complete_export_does_nothing(models, reference, tmp_path):
    out = tmp_path / "copy"
    _export(models, out)
    before = _snapshot(out)
    summary = _export(models, out)
    assert summary.complete and summary.generated == 0 and summary.kept == 18
    assert _snapshot(out) == before == _snapshot(reference)


def test_export_from_a_stream_object_equals_export_from_files(models, reference, tmp_path):
    stream = DatasetGANStream(None, device="cpu", seed=123, batch_size=2, **models)
    out = tmp_path / "data"
    export_dataset(stream, NUM, out, drop_uncertain=DROP, batch_size=BATCH, progress=False)
    assert _snapshot(out) == _snapshot(reference)  # the stream's own seed is not used
    with pytest.raises(ValueError, match="not both"):
        export_dataset(stream, NUM, tmp_path / "x", generator=models["generator"])


# ----------------------------------------------------------------------- resume
_DRIVER = """
import sys, time
from dgan_data import stream as _stream
_generate = _stream.DatasetGANStream.generate
def _slow(self, seeds):
    out = _generate(self, seeds)
    time.sleep(float(sys.argv[1]))
    return out
_stream.DatasetGANStream.generate = _slow
from dgan_data.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _cli_export_cmd(models: dict[str, str], out: Path, delay: float) -> list[str]:
    return [
        sys.executable, "-c", _DRIVER, str(delay),
        "export", "--generator", models["generator"], "--interpreter", models["interpreter"],
        "--num", str(NUM), "--out", str(out), "--batch-size", str(BATCH),
        "--drop-uncertain", str(DROP), "--device", "cpu", "--shard", "0", "--num-shards", "1",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.slow
def test_killed_export_resumes_to_identical_files(models, reference, tmp_path):
    """SIGKILL a real export process mid-way, rerun it, compare byte for byte with the
    uninterrupted export (made in this process, also on one thread).

    The driver sleeps after each generated batch, so the kill lands after a few
    batches and long before the end, on any machine.
    """
    out = tmp_path / "out"

    proc = subprocess.Popen(_cli_export_cmd(models, out, 0.3), env=_env())
    journal = out / "candidates" / "shard-0-of-1" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and len(journal.read_bytes().splitlines()) >= 2 * BATCH:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the export finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "index.jsonl").exists()
    done = len(_jsonl(journal))
    assert 2 * BATCH <= done < NUM
    # what a kill in the middle of a write leaves behind: a torn journal line, a temp file
    with open(journal, "ab") as f:
        f.write(b'{"index":23,"id":"0000')
    stale = out / "candidates" / "shard-0-of-1" / "images" / ".000023.png.shard-0-of-1.tmp"
    stale.write_bytes(b"\x89PNG partial")

    subprocess.run(_cli_export_cmd(models, out, 0.0), env=_env(), check=True, timeout=300)
    assert _snapshot(out) == _snapshot(reference)
    assert not list(out.rglob("*.tmp")) and not (out / "candidates").exists()


def test_resume_regenerates_damaged_and_missing_files(models, reference, tmp_path):
    out = tmp_path / "data"
    _export(models, out, merge=False)  # generation only: everything still staged
    stage = out / "candidates" / "shard-0-of-1"
    (stage / "images" / "000003.png").unlink()
    damaged = stage / "masks" / "000010.png"
    damaged.write_bytes(damaged.read_bytes()[:-20])
    summary = _export(models, out)
    assert summary.complete and summary.resumed == NUM - 2
    assert summary.generated == 2  # the two damaged candidates, out of two regenerated batches
    assert _snapshot(out) == _snapshot(reference)


def test_interrupted_selection_is_repaired_by_rerunning(models, reference, tmp_path, monkeypatch):
    out = tmp_path / "data"
    _export(models, out, merge=False)
    moves = {"n": 0}
    real_move = export_select._move

    def crashing_move(src: Path, dst: Path) -> None:
        moves["n"] += 1
        if moves["n"] == 7:
            raise OSError("simulated crash during the selection")
        real_move(src, dst)

    monkeypatch.setattr(export_select, "_move", crashing_move)
    with pytest.raises(OSError, match="simulated"):
        merge_shards(out)
    monkeypatch.undo()
    assert len(list((out / "images").glob("*.png"))) == 3  # half moved
    # a crashed process also leaves its lock file (its locks died with it)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".export.lock").write_text(f"{socket.gethostname()} {dead.pid}")
    summary = _export(models, out)
    assert summary.complete and summary.generated == 0
    assert _snapshot(out) == _snapshot(reference)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"drop_uncertain": 0.2}, "drop_uncertain"),
        ({"num": 30}, "num"),
        ({"seed": 1}, "seed"),
        ({"batch_size": 3}, "batch_size"),
    ],
)
def test_resume_with_other_settings_is_refused(models, tmp_path, change, field):
    out = tmp_path / "data"
    _export(models, out, num=8, merge=False)
    args = {"num": 8, **change}
    with pytest.raises(ValueError, match=rf"dataset\.json was written with {field}="):
        _export(models, out, **args)


def test_other_interpreter_is_refused(models, tmp_path, reference_dir):
    out = tmp_path / "data"
    _export(models, out, num=4)
    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    other = Interpreter(feature_layout(G), K, num_models=3, label_size=(32, 32), seed=1)
    path = other.save(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="interpreter_fingerprint"):
        _export({**models, "interpreter": str(path)}, out, num=4)


def test_non_empty_foreign_folder_is_refused(models, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"not empty and has no dataset\.json"):
        _export(models, tmp_path, num=4)


# ----------------------------------------------------------------------- shards
def test_shards_are_disjoint_and_cover_all_candidates():
    for n in (1, 2, 3, 5, 8):
        parts = [shard_candidates(NUM, BATCH, s, n) for s in range(n)]
        flat = [i for p in parts for i in p]
        assert sorted(flat) == list(range(NUM)) and len(flat) == NUM
        for s, p in enumerate(parts):  # whole batches, dealt round-robin
            assert all((i // BATCH) % n == s for i in p)


def test_sharded_export_merges_to_the_unsharded_result(models, reference, tmp_path):
    out = tmp_path / "data"
    summaries = [_export(models, out, shard=s, num_shards=3) for s in (2, 0, 1)]
    assert [s.complete for s in summaries] == [False, False, True]  # the last one selects
    assert sum(s.generated for s in summaries) == NUM
    got, want = _snapshot(out), _snapshot(reference)
    assert {k: v for k, v in got.items() if k != "dataset.json"} == {
        k: v for k, v in want.items() if k != "dataset.json"
    }
    info_got = json.loads((out / "dataset.json").read_text())
    info_want = json.loads((reference / "dataset.json").read_text())
    assert info_got["settings"].pop("num_shards") == 3
    info_want["settings"].pop("num_shards")
    for info in (info_got, info_want):  # each checksum covers its own num_shards
        assert len(info["selection"].pop("description_sha256")) == 64
    assert info_got == info_want


def test_merge_before_all_shards_finish_names_the_missing(models, tmp_path):
    out = tmp_path / "data"
    _export(models, out, shard=0, num_shards=2)
    with pytest.raises(FileNotFoundError, match=r"index\.shard-1-of-2\.jsonl"):
        merge_shards(out)


def test_shard_defaults_come_from_torchrun_env(models, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    summary = _export(models, tmp_path / "data", num=8)
    assert (summary.shard, summary.num_shards, summary.generated) == (1, 2, 4)
    assert (tmp_path / "data" / "index.shard-1-of-2.jsonl").is_file()


# -------------------------------------------------------------------- read back
def test_exported_dataset_reads_back_what_was_written(reference):
    ds = ExportedDataset(reference)
    index = _jsonl(reference / "index.jsonl")
    assert len(ds) == len(index) and ds.class_names == [f"class_{k}" for k in range(K)]
    for i in (0, len(ds) - 1):
        image, mask = ds[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert mask.shape == (32, 32) and mask.dtype == torch.int64
        png = np.asarray(Image.open(reference / index[i]["image"]))
        np.testing.assert_array_equal((image * 255).round().byte().permute(1, 2, 0).numpy(), png)
        np.testing.assert_array_equal(
            mask.numpy(), np.asarray(Image.open(reference / index[i]["mask"]))
        )


def test_exported_dataset_albumentations_keeps_masks_aligned(reference):
    A = pytest.importorskip("albumentations")
    plain = ExportedDataset(reference)
    flipped = ExportedDataset(reference, albumentations=A.Compose([A.HorizontalFlip(p=1.0)]))
    image, mask = plain[2]
    image_f, mask_f = flipped[2]
    assert mask_f.dtype == torch.int64
    assert torch.equal(image_f, image.flip(-1)) and torch.equal(mask_f, mask.flip(-1))


def test_exported_dataset_albumentations_marks_out_of_frame_pixels_ignore(reference):
    """Rotated corners came from outside the frame: they were labelled fill_mask's 0,
    a real class, and are 255 now, as in the stream."""
    A = pytest.importorskip("albumentations")
    rotate = A.Compose([A.Affine(rotate=(45, 45), p=1.0)])
    image, mask = ExportedDataset(reference, albumentations=rotate)[2]
    plain_mask = ExportedDataset(reference)[2][1]
    h, w = mask.shape
    corner = mask[: h // 8, : w // 8]
    assert bool((corner == IGNORE_INDEX).all())
    assert bool((image[:, : h // 8, : w // 8] == 0).all())
    inside = mask[h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2]
    assert bool((inside != IGNORE_INDEX).all())
    assert set(mask.unique().tolist()) <= set(plain_mask.unique().tolist()) | {IGNORE_INDEX}


def test_exported_dataset_albumentations_images_stay_in_the_unit_range(reference):
    """A float result (A.ToFloat) was divided by 255 a second time (images in
    [0, 1/255]); one outside [0, 1] (A.Normalize) is refused, naming it."""
    A = pytest.importorskip("albumentations")
    plain = ExportedDataset(reference)[1][0]
    as_float = ExportedDataset(reference, albumentations=A.Compose([A.ToFloat()]))[1][0]
    assert torch.allclose(as_float, plain, atol=1e-6)
    normalized = ExportedDataset(reference, albumentations=A.Compose([A.Normalize()]))
    with pytest.raises(ValueError, match=r"not in \[0, 1\].*'Normalize'"):
        normalized[1]


def test_exported_dataset_transform(reference):
    ds = ExportedDataset(reference, transform=lambda im, m: (im * 2, m + 1))
    image, mask = ds[0]
    ref_image, ref_mask = ExportedDataset(reference)[0]
    assert torch.equal(image, ref_image * 2) and torch.equal(mask, ref_mask + 1)


def test_exported_dataset_errors_name_the_file(models, reference, tmp_path):
    out = tmp_path / "data"
    _export(models, out, num=8)
    victim = _jsonl(out / "index.jsonl")[1]["mask"]
    (out / victim).unlink()
    with pytest.raises(FileNotFoundError, match=victim.replace(".", r"\.")):
        ExportedDataset(out)
    with pytest.raises(FileNotFoundError, match=r"dataset\.json"):
        ExportedDataset(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    _export(models, partial, num=8, merge=False)
    with pytest.raises(ValueError, match="not complete"):
        ExportedDataset(partial)


# --------------------------------------------------------------------------- CLI
def test_cli_export(models, tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["export", "--generator", models["generator"], "--interpreter",
            models["interpreter"], "--num", "6", "--out", str(out), "--batch-size", "3",
            "--drop-uncertain", "0.5", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert "3 samples kept of 6 candidates" in capsys.readouterr().out
    assert len(ExportedDataset(out)) == 3


def test_cli_export_sharded_then_merge(models, tmp_path, capsys):
    out = tmp_path / "data"
    base = ["export", "--generator", models["generator"], "--interpreter",
            models["interpreter"], "--num", "4", "--out", str(out), "--batch-size", "2",
            "--device", "cpu", "--num-shards", "2"]  # fmt: skip
    assert main([*base, "--shard", "0"]) == 0
    assert "shard 0 of 2 done" in capsys.readouterr().out
    assert main(["export", "--merge", "--out", str(out)]) == 2  # shard 1 missing
    assert "index.shard-1-of-2.jsonl" in capsys.readouterr().err
    assert main([*base, "--shard", "1"]) == 0
    assert "4 samples kept of 4 candidates" in capsys.readouterr().out


def test_cli_export_bad_input_exits_2(models, tmp_path, capsys):
    missing = tmp_path / "missing.safetensors"
    argv = ["export", "--generator", str(missing), "--interpreter", models["interpreter"],
            "--num", "4", "--out", str(tmp_path / "d"), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]
    assert main(["export", "--num", "4", "--out", str(tmp_path / "d")]) == 2
    assert "PRESET" in capsys.readouterr().err
    assert main(["export", "--generator", models["generator"], "--interpreter",
                 models["interpreter"], "--out", str(tmp_path / "d")]) == 2  # fmt: skip
    assert "--num" in capsys.readouterr().err
