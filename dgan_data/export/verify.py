"""Verifying a finished export and repairing what a rerun can (files, index files)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..conventions import keyword_hints
from ..fileio import (
    UnsafePathError,
    atomic_write_bytes,
    file_sha256,
    fsync_dir,
    parse_json_text,
)
from ..labeler import Labeler
from ..progress import progress_bar
from ..schema import SchemaError
from ..seeds import sample_seed
from .lock import _busy, _ExportLock
from .records import (
    _BRIEF_WAIT_S,
    CANDIDATES_FIELDS,
    INDEX_FIELDS,
    ExportDamagedError,
    ExportSummary,
    NotAnExportError,
    VerifyReport,
    _check_layout,
    _description_path,
    _expect_path,
    _expect_text,
    _file_problem,
    _final_paths,
    _InTheWayError,
    _jsonl,
    _line,
    _Plan,
    _read_description,
    _root,
    description_problem,
    description_sha256,
)
from .samples import _encode, _label_batch, _mask_statistics, _sample_record
from .select import _candidate_line, _final_entry, _finish_cleanup, _selection

log = logging.getLogger(__name__)


# ------------------------------------------------------------ verify and repair
@dataclass
class _Damage:
    """One damaged or missing file of a finished export."""

    entry: dict[str, Any]
    key: str  # "image" or "mask"
    path: Path
    problem: str

    def describe(self) -> str:
        return f"{self.path} {self.problem}"

    @property
    def in_the_way(self) -> bool:
        """A folder (not a link to one) where the file belongs: a rerun never deletes
        it (it may hold anything), so the user moves it away first."""
        return self.path.is_dir() and not self.path.is_symlink()


@dataclass
class _Scan:
    """What checking a finished export found."""

    entries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (line, entry)
    fatal: list[str] = field(default_factory=list)  # what a rerun cannot repair
    edits: list[str] = field(default_factory=list)  # dataset.json edited: never repairable
    damage: list[_Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: int = 0


def _collect(problems: list[str] | None, exc: Exception) -> None:
    """Raise ``exc``, or (when collecting) record it as one problem line."""
    if problems is None:
        raise exc
    problems.append(str(exc))


def _final_index(
    root: Path,
    plan: _Plan,
    selection: Mapping[str, Any],
    problems: list[str] | None = None,
    *,
    resolve: bool = True,
) -> list[tuple[int, dict[str, Any]]]:
    """``index.jsonl``'s (line number, entry) pairs, each line checked; errors are raised,
    or collected into ``problems``. ``resolve``: also refuse a listed file that leads
    outside ``root`` through a symlink (readers); verify leaves that to its file checks,
    which report such a file as damage a rerun repairs."""
    path = root / "index.jsonl"
    if not path.is_file():
        _collect(problems, FileNotFoundError(f"{path}: no such file (the export is incomplete)"))
        return []
    entries: list[tuple[int, dict[str, Any]]] = []
    last = -1
    try:
        for n, raw in _jsonl(path):
            where = f"{path}: line {n}"
            try:
                e = plan.check_line(parse_json_text(raw, where), INDEX_FIELDS, where)
                if e["index"] <= last:
                    raise SchemaError(f"{where}: candidate {e['index']} is out of order")
                for key in ("image", "mask"):
                    rel = f"{key}s/{e['id']}.png"
                    if resolve:
                        _expect_path(root, e, key, rel, where)
                    else:
                        _expect_text(e, key, rel, where)
            except ValueError as exc:
                _collect(problems, exc)
                continue
            last = e["index"]
            entries.append((n, e))
    except ValueError as exc:  # a line too long to be ours
        _collect(problems, exc)
    if len(entries) != selection["kept"] and not problems:
        _collect(
            problems,
            ExportDamagedError(
                f"{path} lists {len(entries)} samples, dataset.json says {selection['kept']}"
            ),
        )
    recorded = selection.get("index_sha256")
    if recorded is not None and file_sha256(path) != recorded:
        _collect(
            problems,
            ExportDamagedError(f"{path} differs from the sha256 in dataset.json (damaged)"),
        )
    return entries


def _selection_rule_problem(
    root: Path, plan: _Plan, selection: Mapping[str, Any], scores: list[float], marked: set[int]
) -> str | None:
    """Why ``candidates.jsonl``'s kept marks or ``selection.threshold`` do not follow the
    selection rule from the candidates' scores (the ``dropped`` highest go, ties by
    index; the threshold is the highest kept score), or None. Catches a hand-edited
    threshold in a ``dataset.json`` that records no sha256 of its own."""
    rule_kept, order, n_drop = _selection(np.array(scores, dtype=np.float64), plan)
    if set(np.flatnonzero(rule_kept).tolist()) != marked:
        return (
            f"{root / 'candidates.jsonl'} marks other candidates as kept than the selection "
            f"rule gives from their scores (the {n_drop} highest of {plan.num} dropped)"
        )
    threshold = float(scores[order[plan.num - n_drop - 1]])
    if selection["threshold"] != threshold:
        return (
            f"{root / 'dataset.json'}: field 'selection.threshold' is "
            f"{selection['threshold']!r}, but the highest kept score in candidates.jsonl is "
            f"{threshold!r} (dataset.json was edited?)"
        )
    return None


def _check_candidates(
    root: Path,
    plan: _Plan,
    selection: Mapping[str, Any],
    kept: set[int] | None,
    scan: _Scan,
) -> None:
    """``candidates.jsonl``: every candidate once, in order, kept exactly as indexed
    (``kept``: the indexed candidates, None when ``index.jsonl`` could not be read) and
    as the selection rule gives from the scores. With the file intact by its recorded
    sha256, a selection that breaks the rule is an edit of ``dataset.json``."""
    problems = scan.fatal
    path = root / "candidates.jsonl"
    if not path.is_file():
        problems.append(f"{path}: no such file")
        return
    recorded = selection.get("candidates_sha256")
    if recorded is not None and file_sha256(path) != recorded:
        problems.append(f"{path} differs from the sha256 in dataset.json (damaged)")
        return
    count, marked, scores = 0, set(), []
    try:
        for n, raw in _jsonl(path):
            where = f"{path}: line {n}"
            e = plan.check_line(parse_json_text(raw, where), CANDIDATES_FIELDS, where)
            if e["index"] != count:
                raise SchemaError(f"{where}: field 'index' must be {count}, got {e['index']}")
            count += 1
            scores.append(e["uncertainty"])
            if e["kept"]:
                marked.add(e["index"])
    except ValueError as exc:
        problems.append(str(exc))
        return
    if count != plan.num:
        problems.append(f"{path} lists {count} candidates, not {plan.num}")
        return
    if kept is not None and marked != kept:
        problems.append(f"{path} marks other candidates as kept than index.jsonl lists")
    broken = _selection_rule_problem(root, plan, selection, scores, marked)
    if broken is not None:
        (scan.edits if recorded is not None else problems).append(broken)


def _decoded_problem(
    path: Path, mode: str, label_size: Sequence[int] | None, mask_of: Mapping[str, Any] | None
) -> str | None:
    """For files without a recorded hash: mode, size and (masks) the class histogram."""
    try:
        with Image.open(path) as im:
            if im.mode != mode:
                return f"is a {im.mode} PNG, not {mode}"
            arr = np.asarray(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot be decoded ({exc})"
    if label_size is not None and list(arr.shape[:2]) != list(label_size):
        return f"has size {list(arr.shape[:2])}, not the label size {list(label_size)}"
    if mask_of is not None:
        stats = _mask_statistics(arr, len(mask_of["histogram"]))
        if stats["histogram"] != mask_of["histogram"] or stats["ignored"] != mask_of["ignored"]:
            return "does not match its class histogram in index.jsonl (damaged)"
    return None


#: A sample's files: (index key, PNG mode).
_SAMPLE_FILES = (("image", "RGB"), ("mask", "L"))


def _sample_file_problem(
    root: Path, desc: Mapping[str, Any], e: Mapping[str, Any], key: str, mode: str
) -> str | None:
    """Why one file of an indexed sample is damaged or missing, or None: its size and
    sha256, or (exports made before hashes) its PNG structure, size and histogram."""
    path = root / e[key]
    sha = e.get(f"{key}_sha256")
    problem = _file_problem(root, path, e.get(f"{key}_bytes"), sha)
    if problem is None and sha is None:
        mask_of = e if key == "mask" else None
        problem = _decoded_problem(path, mode, desc["label_size"], mask_of)
    return problem


def _scan_files(root: Path, desc: dict[str, Any], scan: _Scan) -> None:
    unhashed = 0
    for _, e in scan.entries:
        for key, mode in _SAMPLE_FILES:
            path = root / e[key]
            problem = _sample_file_problem(root, desc, e, key, mode)
            unhashed += e.get(f"{key}_sha256") is None
            scan.checked += 1
            if problem is not None:
                scan.damage.append(_Damage(e, key, path, problem))
    if unhashed:
        scan.notes.append(
            f"{root / 'index.jsonl'}: no sha256 recorded for {unhashed} files (an export "
            "made before dgan_data recorded hashes): checked their PNG structure, size and "
            "mask histogram only"
        )


def _stray_files(root: Path, scan: _Scan) -> None:
    """Note PNGs in images/ and masks/ that index.jsonl does not list (they are ignored)."""
    listed = {f"{e['id']}.png" for _, e in scan.entries}
    for sub in ("images", "masks"):
        folder = root / sub
        if not folder.is_dir():
            continue
        stray = sorted(p.name for p in folder.iterdir() if p.name not in listed)
        stray = [name for name in stray if not name.startswith(".")]
        if stray:
            scan.notes.append(
                f"{folder}: {len(stray)} file(s) not listed in index.jsonl, ignored by "
                f"readers: {stray[:3]}"
            )


def _scan_complete(root: Path, desc: dict[str, Any]) -> _Scan:
    """Check a finished export: its index files and every sample file."""
    plan, sel = _Plan.of(desc), desc["selection"]
    scan = _Scan()
    scan.entries = _final_index(root, plan, sel, scan.fatal, resolve=False)
    kept = None if scan.fatal else {e["index"] for _, e in scan.entries}
    _check_candidates(root, plan, sel, kept, scan)
    if sel.get("index_sha256") is None:
        scan.notes.append(f"{root / 'dataset.json'}: no sha256 of the index files (older export)")
    if sel.get("description_sha256") is None:
        scan.notes.append(
            f"{root / 'dataset.json'}: no sha256 of its own content (an export made before "
            "dgan_data recorded it, or the field was deleted): edits of its class names, "
            "palette or settings cannot be detected; the selection is checked against "
            "candidates.jsonl only"
        )
    _scan_files(root, desc, scan)
    if not scan.fatal:
        _stray_files(root, scan)
    return scan


def _check_regenerated(d: _Damage, enc: dict[str, Any]) -> bytes:
    """The regenerated file's bytes, if they are the ones the export recorded."""
    data = enc[d.key]
    sha = d.entry.get(f"{d.key}_sha256")
    if sha is not None:
        same = hashlib.sha256(data).hexdigest() == sha
    else:  # an older export: the sample must at least have the recorded mask
        size = d.entry.get(f"{d.key}_bytes")
        same = (enc["histogram"], enc["ignored"]) == (d.entry["histogram"], d.entry["ignored"])
        same = same and size in (None, len(data))
    if not same:
        raise ExportDamagedError(
            f"{d.path} {d.problem}, and regenerating candidate {d.entry['index']} here gives "
            "other bytes than the export recorded (another device, dtype or dgan_data "
            "version?): repair it where it was made, or export again into a new folder"
        )
    return data


def _repair(
    root: Path, desc: dict[str, Any], labeler: Labeler, damage: list[_Damage], progress: bool
) -> int:
    """Regenerate the fixed batches of damaged files; rewrite only those files."""
    plan = _Plan.of(desc)
    folders = [d.path for d in damage if d.in_the_way]
    if folders:  # never deleted: it may hold anything
        raise _InTheWayError(
            f"{folders[0]} is a folder where a sample file belongs: remove it, then rerun "
            "the export command to regenerate the file"
        )
    by_batch: dict[int, list[_Damage]] = {}
    for d in damage:
        by_batch.setdefault(d.entry["index"] // plan.batch_size, []).append(d)
    bar = progress_bar(total=len(damage), desc="repair", unit="file", progress=progress)
    try:
        for k in sorted(by_batch):
            batch = plan.batch_of(k * plan.batch_size)
            seeds = [sample_seed(plan.seed, 0, i) for i in batch]
            images, masks, _ = _label_batch(labeler, seeds, desc, root)
            for d in by_batch[k]:
                j = d.entry["index"] - batch.start
                data = _check_regenerated(d, _encode(images[j], masks[j], plan.num_classes))
                atomic_write_bytes(d.path, data, tag="repair")
                log.info("%s: repaired (%s)", d.path, d.problem)
                bar.update(1)
    finally:
        bar.close()
    for sub in ("images", "masks"):
        fsync_dir(root / sub)
    _check_repaired(root, desc, damage)
    return len(damage)


def _check_repaired(root: Path, desc: dict[str, Any], damage: list[_Damage]) -> None:
    """Every file of each repaired sample is intact now (both files: a repair written
    through a link to another folder of the export leaves the file it wrote intact and
    damages the one it overwrote); raise instead of reporting a repair that did not hold."""
    entries = {d.entry["index"]: d.entry for d in damage}
    for e in entries.values():
        for key, mode in _SAMPLE_FILES:
            problem = _sample_file_problem(root, desc, e, key, mode)
            if problem is not None:
                log.warning("%s %s after the repair", root / e[key], problem)
                raise ExportDamagedError(
                    f"{root / e[key]} {problem} after the repair (images/ or masks/ "
                    "leading elsewhere?): the rerun cannot repair this; move what is in "
                    "the way, or export again into a new folder"
                )


def _index_files_rebuildable(selection: Mapping[str, Any]) -> bool:
    """Damaged index files can be rebuilt when dataset.json records both their sha256
    (the rebuilt bytes are then checked exactly; older exports recorded none)."""
    return all(selection.get(k) is not None for k in ("index_sha256", "candidates_sha256"))


def _index_from_files(root: Path, desc: dict[str, Any]) -> bytes | None:
    """``index.jsonl`` rebuilt without generating anything, or None when that cannot be.

    An intact ``candidates.jsonl`` (it hashes to its record) lists every kept candidate
    with its seed and score; the kept samples' files give the rest (sizes, hashes, the
    mask's class histogram). The result counts only if it hashes to the index's record,
    so a damaged or missing sample file makes this return None (the caller then
    regenerates the candidates).
    """
    sel, plan = desc["selection"], _Plan.of(desc)
    candidates = root / "candidates.jsonl"
    if not candidates.is_file() or file_sha256(candidates) != sel["candidates_sha256"]:
        return None
    digest, lines = hashlib.sha256(), []
    for _, raw in _jsonl(candidates):
        c = json.loads(raw)
        if not c["kept"]:
            continue
        image_path, mask_path = _final_paths(root, c["id"])
        if not (image_path.is_file() and mask_path.is_file()):
            return None
        image, mask = image_path.read_bytes(), mask_path.read_bytes()
        try:
            with Image.open(io.BytesIO(mask)) as im:
                stats = _mask_statistics(np.asarray(im), plan.num_classes)
        except Exception:  # a damaged mask: regenerate instead
            return None
        if len(stats["histogram"]) != plan.num_classes:
            return None
        enc = {"image": image, "mask": mask, **stats}
        entry = _sample_record(c["index"], c["id"], c["seed"], c["uncertainty"], enc)
        line = _line(_final_entry(entry))
        digest.update(line)
        lines.append(line)
    return b"".join(lines) if digest.hexdigest() == sel["index_sha256"] else None


def _rebuild_index_files(
    root: Path, desc: dict[str, Any], labeler: Labeler, progress: bool
) -> list[str]:
    """Regenerate every candidate (its fixed batch), select again and rebuild
    ``index.jsonl`` and ``candidates.jsonl``; write only those whose rebuilt bytes hash
    to the sha256 in ``dataset.json`` and differ from what is on disk. Returns the names
    written; rebuilt bytes that do not match the record raise (nothing is written)."""
    plan, sel = _Plan.of(desc), desc["selection"]
    entries: list[dict[str, Any]] = []
    bar = progress_bar(total=plan.num, desc="rebuild index", unit="img", progress=progress)
    try:
        for start in range(0, plan.num, plan.batch_size):
            batch = plan.batch_of(start)
            seeds = [sample_seed(plan.seed, 0, i) for i in batch]
            images, masks, scores = _label_batch(labeler, seeds, desc, root)
            for j, i in enumerate(batch):
                enc = _encode(images[j], masks[j], plan.num_classes)
                entries.append(_sample_record(i, plan.cid(i), seeds[j], scores[j], enc))
            bar.update(len(batch))
    finally:
        bar.close()
    kept, _, _ = _selection(np.array([e["uncertainty"] for e in entries]), plan)
    rebuilt = {
        "index.jsonl": b"".join(_line(_final_entry(e)) for e in entries if kept[e["index"]]),
        "candidates.jsonl": b"".join(_candidate_line(e, kept[e["index"]]) for e in entries),
    }
    for name, data in rebuilt.items():
        if hashlib.sha256(data).hexdigest() != sel[f"{name.split('.')[0]}_sha256"]:
            raise ExportDamagedError(
                f"{root / name} is damaged or missing, and regenerating the export here gives "
                "other records than the sha256 in dataset.json (another device, dtype or "
                "dgan_data version?): repair it where it was made, or export again into a "
                "new folder"
            )
    written = []
    for name, data in rebuilt.items():
        path = root / name
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data, tag="repair")
            log.info("%s: rebuilt from the regenerated candidates", path)
            written.append(name)
    return written


def _verified_note(desc: Mapping[str, Any]) -> bytes:
    return f"verified {description_sha256(desc)} ".encode()


def _verified_while_waiting(lock: _ExportLock, note_before: bytes | None, desc: Any) -> bool:
    """Another rerun of this export verified it (and repaired what it found) after this
    process began to wait for the folder: every shard's process reruns at once under
    torchrun, and one verification is enough."""
    if note_before is None:
        return False
    note = lock.read_note()
    return note != note_before and note.startswith(_verified_note(desc))


def _refuse_edits(scan: _Scan) -> None:
    """A rerun repairs files, never an edited ``dataset.json``: raise for the first edit."""
    if scan.edits:
        more = f" (and {len(scan.edits) - 1} more)" if len(scan.edits) > 1 else ""
        raise ExportDamagedError(
            f"{scan.edits[0]}{more}: a rerun cannot repair an edited dataset.json; restore "
            "the original, or export again into a new folder"
        )


def _rerun_complete(
    root: Path,
    desc: dict[str, Any],
    labeler: Labeler,
    shard: int,
    progress: bool,
    lock: _ExportLock,
    note_before: bytes | None,
) -> ExportSummary:
    """A rerun of a finished export (folder held exclusively): verify every file and
    repair what a rerun can, unless another rerun did so while this one waited."""
    _check_layout(root)
    edited = description_problem(root / "dataset.json", desc)
    if edited is not None:
        raise ExportDamagedError(edited)
    sel, n = desc["selection"], desc["settings"]["num_shards"]
    counts = (root, desc["settings"]["num"], shard, n, 0, 0, True)
    counts += (sel["kept"], sel["dropped"], sel["threshold"])
    if _verified_while_waiting(lock, note_before, desc):
        log.info("%s: export complete; verified just now by another process", root)
        return ExportSummary(*counts, tied=sel.get("tied_at_cutoff"))
    scan, rebuilt = _scan_complete(root, desc), []
    _refuse_edits(scan)
    if scan.fatal and _index_files_rebuildable(desc["selection"]):
        # only the index files can be fatal here: rebuild them, then check every file
        index, problem = _index_from_files(root, desc), scan.fatal[0]
        if index is not None:
            log.info("%s: %s; index rebuilt from candidates.jsonl and the files", root, problem)
            atomic_write_bytes(root / "index.jsonl", index, tag="repair")
            rebuilt = ["index.jsonl"]
        else:
            log.info("%s: %s; regenerating all candidates to rebuild the index", root, problem)
            rebuilt = _rebuild_index_files(root, desc, labeler, progress)
        scan = _scan_complete(root, desc)
        _refuse_edits(scan)
    if scan.fatal:
        more = f" (and {len(scan.fatal) - 1} more problems)" if len(scan.fatal) > 1 else ""
        raise ExportDamagedError(
            f"{scan.fatal[0]}{more}: a rerun cannot repair this; export again into a new folder"
        )
    for note in scan.notes:
        log.info("%s", note)
    repaired = _repair(root, desc, labeler, scan.damage, progress) if scan.damage else 0
    log.info("%s: export complete; %d files verified, %d repaired", root, scan.checked, repaired)
    _finish_cleanup(root)
    lock.write_note(_verified_note(desc) + uuid.uuid4().hex.encode())
    return ExportSummary(*counts, repaired, tuple(rebuilt), tied=sel.get("tied_at_cutoff"))


@keyword_hints
def verify_export(out_dir: str | Path) -> VerifyReport:
    """Check a finished export without changing anything: ``dataset.json``, both index
    files (against their recorded sha256) and every image and mask (size and sha256;
    exports made before hashes were recorded: PNG structure, size and mask histogram).

    Returns a :class:`VerifyReport`, one line per problem; rerunning the export command
    repairs damaged or missing sample files, and damaged or missing index files when
    ``dataset.json`` records their sha256 (by regenerating every candidate); an edited
    ``dataset.json`` (it records its own sha256) is not repairable. Something of the
    wrong kind in the way (a folder where a sample file, an index file or the lock file
    belongs) sets ``move_away``: the rerun repairs once it is moved away. Raises
    ``FileNotFoundError`` for a folder without ``dataset.json``,
    :class:`NotAnExportError` when that file is not an export description, and
    :class:`ExportBusyError` while another process selects or repairs it.
    """
    root = _root(out_dir)
    desc_path = _description_path(root)
    report = VerifyReport(root)
    with _ExportLock(root, readonly=True) as lock:
        if not lock.acquire_folder(exclusive=False, wait=_BRIEF_WAIT_S):
            raise _busy(root, "another process is selecting or repairing it")
        try:
            _check_layout(root)
            desc = _read_description(desc_path)
        except NotAnExportError:
            raise  # not damage: another file, or a newer format
        except ValueError as exc:
            report.problems.append(str(exc))
            report.repairable = False
            # a file or link in the way: once moved, a rerun rebuilds what it can
            report.move_away = isinstance(exc, (_InTheWayError, UnsafePathError))
            return report
        edited = description_problem(desc_path, desc)
        if edited is not None:  # the other checks would follow the edited settings
            report.problems.append(edited)
            report.repairable = False
            return report
        if desc["status"] != "complete":
            report.problems.append(
                f"{desc_path}: the export is not complete (status {desc['status']!r}): "
                "rerun the export command to finish it"
            )
            return report
        scan = _scan_complete(root, desc)
    report.files_checked, report.notes = scan.checked, scan.notes
    report.problems = scan.edits + scan.fatal + [d.describe() for d in scan.damage]
    # index files are rebuilt by a rerun when dataset.json records their sha256
    rebuildable = not scan.fatal or _index_files_rebuildable(desc["selection"])
    # a folder where a sample file belongs: the rerun refuses it until it is moved away
    in_the_way = any(d.in_the_way for d in scan.damage)
    report.repairable = not scan.edits and rebuildable and not in_the_way
    report.move_away = not scan.edits and rebuildable and in_the_way
    return report
