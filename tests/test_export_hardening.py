"""Export hardening (issue 13): paths that lead out, non-finite scores, verification and
repair of finished exports, locks against concurrent exports, schema checks of every
document and line, and arguments that make no sense.

Each test damages or races a real export of the same small models as
``tests/test_export.py`` (32 px StyleGAN2, random 3-model interpreter, 24 candidates).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export import (
    BATCH,
    DROP,
    NUM,
    K,
    _cli_export_cmd,
    _env,
    _export,
    _jsonl,
    _snapshot,
    save_models,
)

from dgan_data import load_generator
from dgan_data.cli import main
from dgan_data.export import (
    ExportBusyError,
    ExportDamagedError,
    ExportedDataset,
    export_dataset,
    merge_shards,
    verify_export,
)
from dgan_data.export.lock import _ExportLock
from dgan_data.export.records import description_sha256
from dgan_data.interpreter import Interpreter, feature_layout
from dgan_data.labeler import LabeledBatch, Labeler, NonFiniteOutputError

REPO = Path(__file__).resolve().parents[1]
STAGE = Path("candidates") / "shard-0-of-1"


def _write_jsonl(path: Path, entries: list[dict]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def _edit_line(path: Path, n: int, **changes) -> None:
    """Change fields of line ``n`` (0-based) of a JSON-lines file."""
    entries = _jsonl(path)
    entries[n].update(changes)
    _write_jsonl(path, entries)


def _set_raw(path: Path, n: int, field: str, raw: str) -> None:
    """Set a field of line ``n`` (0-based) to raw JSON text (``NaN`` is not json.dumps')."""
    lines = path.read_text().splitlines()
    entry = json.loads(lines[n])
    entry[field] = "__RAW__"
    lines[n] = json.dumps(entry).replace('"__RAW__"', raw)
    path.write_text("\n".join(lines) + "\n")


def _pngs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.png"))


@pytest.fixture(autouse=True)
def _one_thread():
    """One CPU thread, as in tests/test_export.py (the reference export is made so)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tmp_path_factory, reference_dir) -> dict[str, str]:
    return save_models(tmp_path_factory.mktemp("models"), reference_dir)


@pytest.fixture(scope="module")
def reference(models, tmp_path_factory) -> Path:
    """An uninterrupted export that damaged and raced exports are compared against."""
    out = tmp_path_factory.mktemp("ref") / "data"
    _export(models, out, shard=0, num_shards=1)
    return out


@pytest.fixture
def staged(models, tmp_path) -> Path:
    """An export whose generation finished (everything staged, no selection yet)."""
    out = tmp_path / "data"
    _export(models, out, merge=False)
    return out


@pytest.fixture
def done(reference, tmp_path) -> Path:
    """A private copy of the finished reference export."""
    out = tmp_path / "done"
    shutil.copytree(reference, out)
    return out


def _dropped_and_kept(reference: Path) -> tuple[int, int]:
    cands = _jsonl(reference / "candidates.jsonl")
    return (
        next(c["index"] for c in cands if not c["kept"]),
        next(c["index"] for c in cands if c["kept"]),
    )


# ----------------------------------------------- 1. paths that lead out of the folder
@pytest.mark.parametrize("which", ["dropped", "kept"])
@pytest.mark.parametrize("field", ["image", "mask", "id"])
def test_merge_never_touches_files_outside_the_export(staged, reference, tmp_path, which, field):
    """Before the fix, the selection moved a kept candidate's ``image`` (any path) into
    the export and deleted a dropped candidate's files wherever its fields pointed."""
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    dropped, kept = _dropped_and_kept(reference)
    index = staged / "index.shard-0-of-1.jsonl"
    value = str(victim) if field != "id" else "../../victim"
    _edit_line(index, dropped if which == "dropped" else kept, **{field: value})
    with pytest.raises(ValueError, match=r"index\.shard-0-of-1\.jsonl: line \d+: field '"):
        merge_shards(staged)
    assert victim.read_bytes() == b"precious"
    assert not (staged / "images").exists() or not list((staged / "images").iterdir())


def test_merge_refuses_a_dotdot_path(staged, tmp_path):
    index = staged / "index.shard-0-of-1.jsonl"
    _edit_line(index, 0, image="candidates/../../victim.png")
    with pytest.raises(ValueError, match=r"line 1: field 'image'"):
        merge_shards(staged)


def test_merge_refuses_a_staging_folder_symlinked_out(staged, tmp_path):
    """A staging folder that is a symlink to elsewhere: the selection would delete the
    dropped candidates' files there."""
    outside = tmp_path / "outside"
    shutil.move(staged / STAGE / "masks", outside)
    (staged / STAGE / "masks").symlink_to(outside)
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(ValueError, match="outside"):
        merge_shards(staged)
    assert sorted(p.name for p in outside.iterdir()) == before


def test_merge_refuses_an_images_folder_symlinked_out(staged, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (staged / "images").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        merge_shards(staged)
    assert list(outside.iterdir()) == []


def test_journal_id_leading_out_is_refused(models, tmp_path):
    out = tmp_path / "data"
    _export(models, out, merge=False)
    journal = out / STAGE / "journal.jsonl"
    _edit_line(journal, 2, id="../../../../victim")
    with pytest.raises(ValueError, match=r"journal\.jsonl: line 3: field 'id'"):
        _export(models, out)


@pytest.mark.parametrize("value", ["/etc/passwd", "../outside.png", "images/../../x.png"])
def test_exported_dataset_refuses_paths_leading_out(done, value):
    _edit_line(done / "index.jsonl", 1, image=value)
    with pytest.raises(ValueError, match=r"index\.jsonl: line 2: field 'image'"):
        ExportedDataset(done)


def test_exported_dataset_refuses_a_symlinked_image_leading_out(done, tmp_path):
    rel = _jsonl(done / "index.jsonl")[0]["image"]
    outside = tmp_path / "outside.png"
    shutil.move(done / rel, outside)
    (done / rel).symlink_to(outside)
    with pytest.raises(ValueError, match=r"index\.jsonl: line 1: field 'image'.*outside"):
        ExportedDataset(done)


def test_exported_dataset_refuses_an_id_of_another_format(done):
    _edit_line(done / "index.jsonl", 0, id="0")
    with pytest.raises(ValueError, match=r"line 1: field 'id'"):
        ExportedDataset(done)


# ------------------------------------------------------------ 2. non-finite outputs
def _nan_interpreter(reference_dir: Path) -> tuple:
    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    interp = Interpreter(feature_layout(G), K, num_models=3, label_size=(32, 32), seed=0)
    with torch.no_grad():
        interp.w1[0, 0, 0] = float("nan")
    return G, interp


def test_nan_interpreter_weight_fails_at_once_and_keeps_nothing(
    reference_dir, tmp_path, monkeypatch
):
    G, interp = _nan_interpreter(reference_dir)
    calls = {"n": 0}
    real_label = Labeler.label

    def counting(self, seeds):
        calls["n"] += 1
        return real_label(self, seeds)

    monkeypatch.setattr(Labeler, "label", counting)
    out = tmp_path / "data"
    with pytest.raises(NonFiniteOutputError, match="NaN"):
        export_dataset(
            None, NUM, out, generator=G, interpreter=interp, batch_size=BATCH, progress=False
        )
    assert calls["n"] == 1  # at once: the first batch
    assert _pngs(out) == []
    journal = out / STAGE / "journal.jsonl"
    assert not journal.exists() or journal.read_text() == ""
    assert not list(out.glob("index*.jsonl")) and not (out / "candidates.jsonl").exists()


def test_non_finite_scores_never_reach_the_journal(reference_dir, tmp_path, monkeypatch):
    """Even if the labeler's own check were skipped, a NaN score is refused before any
    file of its batch is written."""
    G, interp = _nan_interpreter(reference_dir)
    monkeypatch.setattr(LabeledBatch, "check_finite", lambda self, scores=None: None)
    out = tmp_path / "data"
    with pytest.raises(ValueError, match="uncertainty"):
        export_dataset(None, 8, out, generator=G, interpreter=interp, progress=False)
    assert _pngs(out) == []
    journal = out / STAGE / "journal.jsonl"
    assert not journal.exists() or journal.read_text() == ""


def test_cli_export_with_overflowing_interpreter_exits_2(reference_dir, models, tmp_path, capsys):
    """Finite weights whose activations overflow to inf: the scores come out NaN."""
    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    interp = Interpreter(feature_layout(G), K, num_models=3, label_size=(32, 32), seed=0)
    with torch.no_grad():
        interp.w1.mul_(1e30)
        interp.w2.mul_(1e30)
    path = interp.save(tmp_path / "overflow.safetensors")
    out = tmp_path / "data"
    argv = ["export", "--generator", models["generator"], "--interpreter", str(path),
            "--num", "8", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN" in err[0]
    assert _pngs(out) == []


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", '"0.3"', "null"])
def test_non_finite_score_in_a_shard_index_is_an_error(staged, bad):
    """Before the fix a NaN counted as 'most uncertain' and a string was float()ed."""
    _set_raw(staged / "index.shard-0-of-1.jsonl", 4, "uncertainty", bad)
    with pytest.raises(ValueError, match=r"shard-0-of-1\.jsonl: line 5: field 'uncertainty'"):
        merge_shards(staged)
    assert not (staged / "index.jsonl").exists()


def test_nan_read_back_from_a_journal_is_an_error(models, tmp_path):
    out = tmp_path / "data"
    _export(models, out, merge=False)
    _set_raw(out / STAGE / "journal.jsonl", 1, "uncertainty", "NaN")
    with pytest.raises(ValueError, match=r"journal\.jsonl: line 2: field 'uncertainty'"):
        _export(models, out)
    assert not (out / "index.jsonl").exists()


def test_nan_in_a_final_index_is_an_error(done):
    _set_raw(done / "index.jsonl", 0, "uncertainty", "NaN")
    with pytest.raises(ValueError, match=r"index\.jsonl"):
        ExportedDataset(done)
    report = verify_export(done)
    assert not report.ok and any("index.jsonl" in p for p in report.problems)


# -------------------------------------------------- 3. verification and repair on rerun
def _damage(root: Path) -> dict[str, Path]:
    index = _jsonl(root / "index.jsonl")
    flipped = root / index[1]["image"]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, same size
    flipped.write_bytes(bytes(data))
    deleted = root / index[5]["mask"]
    deleted.unlink()
    truncated = root / index[9]["image"]
    truncated.write_bytes(truncated.read_bytes()[:-30])
    return {"flipped": flipped, "deleted": deleted, "truncated": truncated}


def test_verify_reports_damage_and_changes_nothing(done, capsys):
    damaged = _damage(done)
    before = _snapshot(done)
    report = verify_export(done)
    assert _snapshot(done) == before
    assert not report.ok and len(report.problems) == 3
    for path in damaged.values():
        assert sum(str(path.relative_to(done)) in p for p in report.problems) == 1
    assert main(["export", "--verify", "--out", str(done)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and "3 problem" in lines[-1]  # one line per problem + summary
    assert _snapshot(done) == before


def test_rerun_repairs_damaged_files_with_the_same_bytes(models, reference, done, monkeypatch):
    _damage(done)
    untouched = done / _jsonl(done / "index.jsonl")[0]["image"]
    inode = untouched.stat().st_ino
    calls: list[list[int]] = []
    real_label = Labeler.label

    def recording(self, seeds):
        calls.append(list(seeds))
        return real_label(self, seeds)

    monkeypatch.setattr(Labeler, "label", recording)
    summary = _export(models, done)
    assert summary.complete and summary.repaired == 3 and summary.kept == 18
    assert _snapshot(done) == _snapshot(reference)
    assert untouched.stat().st_ino == inode  # undamaged files are not rewritten
    index = _jsonl(done / "index.jsonl")
    batches = {index[n]["index"] // BATCH for n in (1, 5, 9)}
    assert len(calls) == len(batches)  # only the fixed batches of damaged candidates
    assert all(len(seeds) == BATCH for seeds in calls)
    assert verify_export(done).ok


def test_cli_verify_clean_exits_0(reference, capsys):
    assert main(["export", "--verify", "--out", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "no problems" in out and "36" in out  # 18 images + 18 masks


def test_index_records_sizes_and_hashes(reference):
    from dgan_data.fileio import file_sha256

    info = json.loads((reference / "dataset.json").read_text())
    assert info["selection"]["index_sha256"] == file_sha256(reference / "index.jsonl")
    assert info["selection"]["candidates_sha256"] == file_sha256(reference / "candidates.jsonl")
    for e in _jsonl(reference / "index.jsonl"):
        for key in ("image", "mask"):
            assert e[f"{key}_sha256"] == file_sha256(reference / e[key])
            assert e[f"{key}_bytes"] == (reference / e[key]).stat().st_size


def _strip_hashes(root: Path) -> None:
    """What an export made before hashes were recorded looks like."""
    entries = _jsonl(root / "index.jsonl")
    for e in entries:
        for key in ("image_sha256", "mask_sha256", "image_bytes", "mask_bytes"):
            e.pop(key)
    (root / "index.jsonl").write_text(
        "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    )
    info = json.loads((root / "dataset.json").read_text())
    for key in ("index_sha256", "candidates_sha256", "description_sha256"):
        info["selection"].pop(key)  # recorded since: an older export has none of them
    (root / "dataset.json").write_text(json.dumps(info, indent=2))


def test_older_export_without_hashes_is_verified_and_repaired(models, reference, done):
    _strip_hashes(done)
    clean = verify_export(done)
    assert clean.ok and any("sha256" in n for n in clean.notes)
    stripped = _snapshot(done)
    damaged = _damage(done)
    report = verify_export(done)
    assert len(report.problems) == 3
    for path in damaged.values():
        assert any(str(path.relative_to(done)) in p for p in report.problems)
    summary = _export(models, done)
    assert summary.repaired == 3
    assert _snapshot(done) == stripped  # the repaired files are the reference's bytes
    for path in damaged.values():
        rel = str(path.relative_to(done))
        assert (done / rel).read_bytes() == (reference / rel).read_bytes()


def test_rerun_rebuilds_damaged_index_files_to_the_recorded_bytes(models, reference, done):
    """A damaged index.jsonl, a deleted candidates.jsonl and a damaged image: a rerun
    regenerates every candidate, rebuilds both index files (checked against the sha256
    in dataset.json) and then repairs the image."""
    text = (done / "index.jsonl").read_text()
    (done / "index.jsonl").write_text(text.replace('"ignored":0', '"ignored":0 ', 1))
    (done / "candidates.jsonl").unlink()
    image = done / _jsonl(reference / "index.jsonl")[3]["image"]
    image.write_bytes(image.read_bytes()[:-10])
    report = verify_export(done)
    assert not report.ok and report.repairable
    assert any("index.jsonl" in p for p in report.problems)
    assert any("candidates.jsonl" in p for p in report.problems)
    summary = _export(models, done)
    assert summary.complete and summary.repaired == 1
    assert _snapshot(done) == _snapshot(reference)
    assert verify_export(done).ok


def test_damaged_index_is_rebuilt_from_candidates_and_files_without_generating(
    models, reference, done, monkeypatch
):
    """Only index.jsonl damaged (cut mid-line): candidates.jsonl and the sample files are
    intact, so the index is rebuilt from them, to the reference's bytes, and nothing is
    generated."""
    from dgan_data.export import verify as verify_module

    lines = (done / "index.jsonl").read_text().splitlines(keepends=True)
    (done / "index.jsonl").write_text("".join(lines[:2]) + lines[2][:25])
    assert not verify_export(done).ok

    def no_generation(*args, **kwargs):
        raise AssertionError("a candidate was generated")

    monkeypatch.setattr(verify_module, "_label_batch", no_generation)
    summary = _export(models, done)
    assert summary.complete and summary.repaired == 0 and summary.rebuilt == ("index.jsonl",)
    assert (done / "index.jsonl").read_bytes() == (reference / "index.jsonl").read_bytes()
    assert _snapshot(done) == _snapshot(reference)
    assert verify_export(done).ok


def test_index_rebuild_from_files_falls_back_to_generation_when_a_file_is_damaged(
    models, reference, done, monkeypatch
):
    """index.jsonl missing and a kept mask damaged: the files cannot give the recorded
    index, so every candidate is regenerated, the index rebuilt and the mask repaired."""
    from dgan_data.export import verify as verify_module

    mask = done / _jsonl(reference / "index.jsonl")[1]["mask"]
    mask.write_bytes(mask.read_bytes()[:-8])
    (done / "index.jsonl").unlink()
    generated = []
    real = verify_module._label_batch
    monkeypatch.setattr(
        verify_module, "_label_batch", lambda *a, **k: generated.append(1) or real(*a, **k)
    )
    summary = _export(models, done)
    assert generated and summary.complete and summary.repaired == 1
    assert summary.rebuilt == ("index.jsonl",)  # candidates.jsonl was intact
    assert _snapshot(done) == _snapshot(reference)
    assert verify_export(done).ok


def _write_consistent_description(root: Path, info: dict) -> None:
    """dataset.json with other records but its own checksum updated: records that differ
    from the files, not a hand edit of dataset.json."""
    info["selection"]["description_sha256"] = description_sha256(info)
    (root / "dataset.json").write_text(json.dumps(info, indent=2))


def test_index_rebuild_refuses_records_that_differ(models, done):
    """When the regenerated candidates do not hash to dataset.json's record, nothing is
    written and the error names the file."""
    (done / "candidates.jsonl").write_text("damaged\n")
    info = json.loads((done / "dataset.json").read_text())
    info["selection"]["index_sha256"] = "0" * 64  # what was recorded is not what regenerates
    _write_consistent_description(done, info)
    before = _snapshot(done)
    with pytest.raises(ExportDamagedError, match=r"index\.jsonl.*other records"):
        _export(models, done)
    assert _snapshot(done) == before


def test_index_without_recorded_hashes_cannot_be_rebuilt_and_says_so(models, done, capsys):
    """Exports made before the index files' sha256 were recorded cannot check a rebuild."""
    info = json.loads((done / "dataset.json").read_text())
    for key in ("index_sha256", "candidates_sha256", "description_sha256"):
        del info["selection"][key]  # an older export recorded none of them
    (done / "dataset.json").write_text(json.dumps(info, indent=2))
    lines = (done / "index.jsonl").read_text().splitlines(keepends=True)
    (done / "index.jsonl").write_text("".join(lines[:-1]) + lines[-1][:20])  # cut mid-line
    report = verify_export(done)
    assert not report.ok and not report.repairable
    assert main(["export", "--verify", "--out", str(done)]) == 1
    assert "export again into a new folder" in capsys.readouterr().out
    with pytest.raises(ExportDamagedError, match=r"index\.jsonl.*cannot repair"):
        _export(models, done)


def test_repair_refuses_bytes_that_differ_from_the_record(models, done):
    """A damaged file whose regeneration gives other bytes (other device, other version)
    is not silently replaced by different data."""
    from dgan_data.fileio import file_sha256

    entries = _jsonl(done / "index.jsonl")
    entries[2]["mask_sha256"] = "0" * 64  # the record no longer matches what regenerates
    (done / "index.jsonl").write_text(
        "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    )
    info = json.loads((done / "dataset.json").read_text())
    info["selection"]["index_sha256"] = file_sha256(done / "index.jsonl")
    _write_consistent_description(done, info)
    mask = done / entries[2]["mask"]
    before = mask.read_bytes()
    with pytest.raises(ExportDamagedError, match=entries[2]["mask"].replace(".", r"\.")):
        _export(models, done)
    assert mask.read_bytes() == before


def test_merge_refuses_a_damaged_staged_file(staged, reference):
    _, kept = _dropped_and_kept(reference)
    victim = staged / STAGE / "images" / f"{kept:06d}.png"
    data = bytearray(victim.read_bytes())
    data[40] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{kept:06d}"):
        merge_shards(staged)


# ----------------------------------------------------------------------- 4. locks
_HOLDER = """
import sys
from pathlib import Path
from dgan_data.export.lock import _ExportLock
lock = _ExportLock(Path(sys.argv[1]))
lock.__enter__()
if sys.argv[2] == "folder":
    assert lock.acquire_folder(exclusive=True)
else:
    assert lock.acquire_folder(exclusive=False)
    assert lock.acquire_shard(int(sys.argv[2]))
print("ready", flush=True)
sys.stdin.read()
"""


class _Holder:
    """Another process holding the export folder's lock (exclusively, or one shard)."""

    def __init__(self, root: Path, what: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(root), what],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_env(),
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def holders():
    started: list[_Holder] = []
    yield lambda root, what: started.append(_Holder(root, what)) or started[-1]
    for h in started:
        if h.proc.poll() is None:
            h.kill()


def test_second_process_on_the_same_shard_is_refused(models, tmp_path, holders):
    out = tmp_path / "data"
    out.mkdir()
    holders(out, "0")
    with pytest.raises(ExportBusyError, match="shard 0 of 1"):
        _export(models, out)
    assert not (out / "dataset.json").exists()  # refused before touching anything


def test_other_shards_run_beside_each_other(models, tmp_path, holders):
    out = tmp_path / "data"
    out.mkdir()
    holder = holders(out, "1")
    summary = _export(models, out, shard=0, num_shards=2)
    assert summary.generated == NUM // 2 and not summary.complete
    holder.release()


def test_cli_merge_while_another_process_holds_the_folder_exits_2(staged, holders, capsys):
    holders(staged, "folder")
    assert main(["export", "--merge", "--out", str(staged)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another process" in err[0]
    assert not (staged / "index.jsonl").exists()


def test_merge_refuses_while_a_shard_is_being_rerun(staged, holders):
    holders(staged, "0")  # someone reruns shard 0 while we merge
    with pytest.raises(ExportBusyError, match="another process"):
        merge_shards(staged)


def test_verify_refuses_while_the_folder_is_being_repaired(done, holders):
    holders(done, "folder")
    with pytest.raises(ExportBusyError):
        verify_export(done)


def test_lock_of_a_killed_process_is_taken_over(models, reference, tmp_path, holders):
    out = tmp_path / "data"
    out.mkdir()
    holders(out, "0").kill()  # died holding the lock: the kernel releases it
    _export(models, out)
    assert _snapshot(out) == _snapshot(reference)  # no lock file left behind


_PAUSING = """
import sys, time
from pathlib import Path
from dgan_data import labeler as _labeler
_label = _labeler.Labeler.label
def _paused(self, seeds):
    out = _label(self, seeds)
    while not Path(sys.argv[1]).exists():  # hold the export open until the test says
        time.sleep(0.02)
    return out
_labeler.Labeler.label = _paused
from dgan_data.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _paused_export_cmd(models: dict[str, str], out: Path, go: Path) -> list[str]:
    argv = _cli_export_cmd(models, out, 0.0)
    return [sys.executable, "-c", _PAUSING, str(go), *argv[4:]]


@pytest.mark.slow
def test_two_concurrent_processes_on_one_folder(models, reference, tmp_path):
    """The reported race: a second export into a folder that a running export holds is
    refused with exit 2 and a one-line message (before the fix it ran beside the first
    and one of them died with ENOENT); the first finishes to the reference bytes."""
    out, go = tmp_path / "out", tmp_path / "go"
    first = subprocess.Popen(_paused_export_cmd(models, out, go), env=_env())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if (out / STAGE / "journal.jsonl").is_file():
                break
            time.sleep(0.02)
        assert first.poll() is None, "the first export stopped early"
        second = subprocess.run(
            _cli_export_cmd(models, out, 0.0), env=_env(), capture_output=True, text=True
        )
        assert first.poll() is None  # still holding the folder
        assert second.returncode == 2
        assert len(second.stderr.strip().splitlines()) == 1 and "busy" in second.stderr
    finally:
        go.touch()
    assert first.wait(timeout=300) == 0
    assert _snapshot(out) == _snapshot(reference)


@pytest.mark.slow
def test_two_shards_in_two_processes_select_once(models, reference, tmp_path):
    out = tmp_path / "out"

    def cmd(shard: int) -> list[str]:
        argv = _cli_export_cmd(models, out, 0.05)
        argv[argv.index("--shard") + 1] = str(shard)
        argv[argv.index("--num-shards") + 1] = "2"
        return argv

    procs = [subprocess.Popen(cmd(s), env=_env()) for s in (0, 1)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    info = json.loads((out / "dataset.json").read_text())
    assert info["status"] == "complete"
    got = {k: v for k, v in _snapshot(out).items() if k != "dataset.json"}
    assert got == {k: v for k, v in _snapshot(reference).items() if k != "dataset.json"}


# ------------------------------------------------ 5. documents of the wrong shape
@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ([], "expected a JSON (object|dict)"),
        ({"format": "dgan_data.export"}, "field 'format_version' is missing"),
    ],
)
def test_dataset_json_of_the_wrong_shape(models, done, doc, match):
    (done / "dataset.json").write_text(json.dumps(doc))
    where = r"dataset\.json: "
    for call in (lambda: _export(models, done), lambda: merge_shards(done),
                 lambda: ExportedDataset(done)):  # fmt: skip
        with pytest.raises(ValueError, match=where + match):
            call()
    report = verify_export(done)
    assert len(report.problems) == 1 and "dataset.json" in report.problems[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [("num", "24"), ("num_shards", 1.0), ("drop_uncertain", "0.25"), ("seed", -1)],
)
def test_settings_of_the_wrong_type(models, staged, field, value):
    info = json.loads((staged / "dataset.json").read_text())
    info["settings"][field] = value
    (staged / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=rf"dataset\.json: field 'settings\.{field}'"):
        merge_shards(staged)
    with pytest.raises(ValueError, match=rf"dataset\.json: field 'settings\.{field}'"):
        _export(models, staged)


def test_classes_and_palette_must_agree(done):
    info = json.loads((done / "dataset.json").read_text())
    info["palette"] = info["palette"][:-1]
    (done / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"dataset\.json: .*palette"):
        ExportedDataset(done)


def test_journal_line_without_index(models, tmp_path):
    out = tmp_path / "data"
    _export(models, out, merge=False)
    journal = out / STAGE / "journal.jsonl"
    entries = _jsonl(journal)
    del entries[3]["index"]
    _write_jsonl(journal, entries)
    with pytest.raises(ValueError, match=r"journal\.jsonl: line 4: field 'index' is missing"):
        _export(models, out)


def test_index_line_with_a_string_score(done):
    _edit_line(done / "index.jsonl", 2, uncertainty="0.5")
    with pytest.raises(ValueError, match=r"index\.jsonl: line 3: field 'uncertainty'"):
        ExportedDataset(done)


@pytest.mark.parametrize(
    ("field", "value"),
    [("index", 99), ("seed", 7), ("histogram", [1, 2]), ("id", "x"), ("index", "3")],
)
def test_shard_index_line_of_the_wrong_shape(staged, field, value):
    _edit_line(staged / "index.shard-0-of-1.jsonl", 6, **{field: value})
    with pytest.raises(ValueError, match=rf"line 7: field '{field}'"):
        merge_shards(staged)


def test_shard_index_out_of_order_or_twice(staged):
    index = staged / "index.shard-0-of-1.jsonl"
    lines = index.read_text().splitlines()
    index.write_text("\n".join([*lines[:3], lines[2], *lines[4:]]) + "\n")
    with pytest.raises(ValueError, match=r"line 4: .*order"):
        merge_shards(staged)


def test_damaged_selection_record_is_an_error(models, staged):
    (staged / ".selection.json").write_text('{"dropped": ["a"]}')
    with pytest.raises(ValueError, match=r"\.selection\.json"):
        _export(models, staged)


# --------------------------------------------------------------- 6. neighbours
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num": 24.0}, "num"),
        ({"num": "24"}, "num"),
        ({"num": 10**12}, "num"),
        ({"batch_size": "8"}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"seed": 0.5}, "seed"),
        ({"drop_uncertain": "0.1"}, "drop_uncertain"),
        ({"drop_uncertain": float("nan")}, "drop_uncertain"),
        ({"num": 1, "drop_uncertain": 0.9999999999}, "every candidate"),
        ({"shard": 0, "num_shards": 10**9}, "num_shards"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(models, tmp_path, kwargs, match):
    out = tmp_path / "data"
    with pytest.raises(ValueError, match=match):
        _export(models, out, **kwargs)
    assert not out.exists()


def test_numpy_integers_are_accepted(models, reference, tmp_path):
    out = tmp_path / "data"
    _export(models, out, num=np.int64(NUM), batch_size=np.int32(BATCH))
    assert _snapshot(out) == _snapshot(reference)


def test_out_is_a_file(models, tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(OSError, match="not a folder"):
        _export(models, target)
    argv = ["export", "--generator", models["generator"], "--interpreter",
            models["interpreter"], "--num", "4", "--out", str(target)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_folder_that_is_not_writable(models, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            _export(models, out)
    finally:
        out.chmod(0o755)


def test_cli_verify_of_a_folder_without_export_exits_2(tmp_path, capsys):
    assert main(["export", "--verify", "--out", str(tmp_path)]) == 2
    assert "dataset.json" in capsys.readouterr().err


def test_cli_verify_and_merge_exclude_each_other(tmp_path, capsys):
    assert main(["export", "--verify", "--merge", "--out", str(tmp_path)]) == 2
    assert "--verify" in capsys.readouterr().err


def test_verify_of_an_unfinished_export(staged):
    report = verify_export(staged)
    assert len(report.problems) == 1 and "not complete" in report.problems[0]


def test_garbage_torchrun_env_is_a_clear_error(models, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "first")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="RANK='first'"):
        _export(models, tmp_path / "data")


def test_lock_file_is_gone_after_a_refused_rerun(models, done):
    """A rerun with other settings is refused and leaves the finished folder as it was."""
    before = _snapshot(done)
    with pytest.raises(ValueError, match="seed"):
        _export(models, done, seed=1)
    assert _snapshot(done) == before


def test_a_second_export_in_the_same_process_is_refused(models, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    with _ExportLock(out), pytest.raises(ExportBusyError, match="this process"):
        _export(models, out)


def test_unwritable_folder_message(models, tmp_path, monkeypatch):
    """As root nothing is unwritable, so the permission answer is simulated."""
    out = tmp_path / "data"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: Path(p) != out and real_access(p, mode, **kw)
    )
    with pytest.raises(PermissionError, match="not writable"):
        _export(models, out)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("out_dir", [None, 3, ""])
def test_out_dir_of_the_wrong_type(models, out_dir):
    with pytest.raises(ValueError, match="export folder must be a path"):
        export_dataset(None, 4, out_dir, progress=False, **models)


def test_more_shards_than_batches(models, reference, tmp_path):
    """Shards without a batch write empty results; the selection still matches."""
    out = tmp_path / "data"
    n = NUM // BATCH + 2
    summaries = [_export(models, out, shard=s, num_shards=n) for s in range(n)]
    assert summaries[-1].complete and sum(s.generated for s in summaries) == NUM
    got = {k: v for k, v in _snapshot(out).items() if k != "dataset.json"}
    assert got == {k: v for k, v in _snapshot(reference).items() if k != "dataset.json"}


def test_verify_notes_stray_files(done):
    (done / "images" / "stray.png").write_bytes(b"x")
    report = verify_export(done)
    assert report.ok and any("stray.png" in n for n in report.notes)


def test_exported_dataset_refuses_a_masks_folder_symlinked_out(done, tmp_path):
    outside = tmp_path / "outside"
    shutil.move(done / "masks", outside)
    (done / "masks").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        ExportedDataset(done)
    assert not verify_export(done).ok


def test_cli_rerun_says_which_index_it_rebuilt(models, reference, done, capsys):
    """The rerun's one-line summary names a rebuilt index, not only repaired samples."""
    (done / "index.jsonl").unlink()
    argv = ["export", "--generator", models["generator"], "--interpreter", models["interpreter"],
            "--num", str(NUM), "--batch-size", str(BATCH), "--drop-uncertain", str(DROP),
            "--out", str(done), "--device", "cpu", "--shard", "0", "--num-shards", "1"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().endswith("dropped); index.jsonl rebuilt")
    assert _snapshot(done) == _snapshot(reference)
