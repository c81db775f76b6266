"""Generating an export's candidates (shards, journal, resume) and ``export_dataset``."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import numbers
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .._version import __version__
from ..conventions import IGNORE_INDEX, check_bool, short_list
from ..fileio import (
    atomic_write,
    atomic_write_bytes,
    json_bytes,
    make_folder,
    naming_the_file,
    parse_json_text,
    read_json,
)
from ..labeler import Labeler, check_labeler_options, labeler_from, warn_without_ensemble
from ..progress import progress_bar
from ..schema import (
    SchemaError,
    check_document,
)
from ..seeds import MAX_SEED, distributed_context, sample_seed
from ..uncertainty import as_written
from .lock import _busy, _ExportLock
from .records import (
    _BRIEF_WAIT_S,
    _DETERMINING,
    _SELECT_WAIT_S,
    _SELECTION,
    _STAGING,
    FORMAT_NAME,
    FORMAT_VERSION,
    JOURNAL_FIELDS,
    MAX_BATCH,
    MAX_NUM,
    MAX_SHARDS,
    SELECTION_RECORD_FIELDS,
    ExportBusyError,
    ExportSummary,
    _check_layout,
    _file_fields,
    _file_problem,
    _final_paths,
    _id_format,
    _jsonl,
    _jsonl_lines,
    _line,
    _Plan,
    _read_description,
    _remove_temps,
    _root,
    _shard_index_path,
    _shard_tag,
    _staged_paths,
    description_problem,
    num_dropped,
)
from .samples import _encode, _label_batch, _sample_record
from .select import _merge, merge_shards
from .verify import _rerun_complete

log = logging.getLogger(__name__)


# ------------------------------------------------------------- models, settings
def _int_argument(name: str, value: Any, low: int, high: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r:.70}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {int(value)}{hint}")
    return int(value)


def _check_arguments(
    num: Any, seed: Any, batch_size: Any, drop_uncertain: Any
) -> tuple[int, int, int, float]:
    """The export's numbers as plain Python values, or a clear ValueError."""
    num, batch_size = _batch_arguments(num, batch_size)
    seed = _int_argument("seed", seed, 0, MAX_SEED - 1)
    drop = as_written(drop_uncertain)  # np.float32(0.7) is 0.7
    if (
        isinstance(drop, bool)
        or not isinstance(drop, numbers.Real)
        or not math.isfinite(float(drop))
        or not 0.0 <= float(drop) < 1.0
    ):
        raise ValueError(f"drop_uncertain must be a number in [0, 1), got {drop!r:.70}")
    if num_dropped(num, float(drop)) >= num:
        raise ValueError(
            f"drop_uncertain={drop} drops every candidate of num={num}: keep at least one"
        )
    return num, seed, batch_size, float(drop)


def _batch_arguments(num: Any, batch_size: Any) -> tuple[int, int]:
    """``num`` and ``batch_size`` as ints in the export's bounds, or a clear ValueError."""
    hint = ": export in several folders with different seeds for more"
    num = _int_argument("num", num, 1, MAX_NUM, hint)
    batch_size = _int_argument("batch_size", batch_size, 1, MAX_BATCH)
    return num, batch_size


def _shard_numbers(shard: Any, num_shards: Any) -> tuple[int, int]:
    """``shard`` and ``num_shards`` as ints in the export's bounds, or a clear ValueError."""
    num_shards = _int_argument("num_shards", num_shards, 1, MAX_SHARDS)
    shard = _int_argument("shard", shard, 0, num_shards - 1)
    return shard, num_shards


def _shard_arguments(shard: Any, num_shards: Any) -> tuple[int, int]:
    if (shard is None) != (num_shards is None):
        raise ValueError("give both shard and num_shards, or neither")
    if shard is None:
        shard, num_shards = _shards_from_context()
    return _shard_numbers(shard, num_shards)


def _shards_from_context() -> tuple[int, int]:
    """(shard, num_shards): the rank and world size of torch.distributed, else of
    torchrun's RANK and WORLD_SIZE; a ValueError names the variable that is wrong."""
    try:
        rank, world = distributed_context()
    except ValueError as err:  # it names the variable and what is wrong with it
        raise ValueError(f"{err} (or give shard and num_shards)") from None
    if world > MAX_SHARDS:
        where = (
            "the torch.distributed world size"
            if torch.distributed.is_available() and torch.distributed.is_initialized()
            else "environment WORLD_SIZE"
        )
        raise ValueError(
            f"{where}={world}: an export has at most {MAX_SHARDS} shards "
            "(or give shard and num_shards)"
        )
    return rank, world


def _local_rank(text: str) -> int:
    """torchrun's LOCAL_RANK, the GPU index of this shard."""
    if not text.strip().isdecimal():
        raise ValueError(f"environment LOCAL_RANK={text!r} is not a GPU index (an integer >= 0)")
    return int(text)


def _describe(
    labeler: Labeler,
    preset: str | None,
    num: int,
    seed: int,
    drop_uncertain: float,
    batch_size: int,
    num_shards: int,
) -> dict[str, Any]:
    """The dataset.json content of a fresh export (status ``generating``)."""
    lab = labeler.settings()
    settings = {
        "format_version": FORMAT_VERSION,
        "num": int(num),
        "seed": int(seed),
        "drop_uncertain": float(drop_uncertain),
        "batch_size": int(batch_size),
        "num_shards": int(num_shards),
        "truncation_psi": lab["truncation_psi"],
        "truncation_cutoff": lab["truncation_cutoff"],
        "ignore_uncertain_pixels": lab["ignore_uncertain_pixels"],
        "noise": lab["noise"],
        "dtype": lab["dtype"],
        "label_size": lab["label_size"],
        "num_classes": lab["num_classes"],
        "generator_fingerprint": lab["generator_fingerprint"],
        "interpreter_fingerprint": lab["interpreter_fingerprint"],
        "impl": labeler.resolved_impl(),
    }
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "dgan_data_version": __version__,
        "status": "generating",
        "preset": preset,
        "classes": labeler.class_names,
        "palette": labeler.palette,
        "ignore_index": IGNORE_INDEX,
        "label_size": lab["label_size"],
        "id_format": _id_format(num),
        "seed_rule": "candidate i has seed dgan_data.seeds.sample_seed(seed, 0, i)",
        "shard_rule": "batch k = candidates [k*batch_size, (k+1)*batch_size); "
        "shard s of n generates the batches with k % n == s",
        "selection_rule": "keep the num - floor(drop_uncertain * num) lowest scores; "
        "ties keep the lower index",
        "settings": settings,
    }


def _check_same_settings(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    old_s, new_s = old["settings"], new["settings"]
    for key in _DETERMINING:
        # absent from exports made before the field: not compared
        if key in ("label_size", "impl") and (old_s.get(key) is None or new_s.get(key) is None):
            continue
        if old_s.get(key) != new_s.get(key):
            hint = (
                " (impl 'auto' is interpolate on CUDA, rows elsewhere: resume on the same "
                "kind of device, or pass impl= to the labeler)"
                if key == "impl"
                else ""
            )
            raise ValueError(
                f"{path} was written with {key}={old_s.get(key)!r}, this export asks for "
                f"{key}={new_s.get(key)!r}{hint}: resume with the same settings, or export "
                "to another folder"
            )
    if description_problem(path, old) is not None:
        return  # a hand edit of a finished export: reported as that, not as a setting
    for key, argument in (("classes", "class_names"), ("palette", "palette")):
        # written into dataset.json, not into the files: a resume that asked for others
        # ended with the first run's in silence
        before, after = _as_json(old.get(key)), _as_json(new.get(key))
        if before != after:
            raise ValueError(
                f"{path} was written with {key} {short_list(before or [])}, this export "
                f"asks for {short_list(after or [])}: resume with the same {argument}=, or "
                "export to another folder"
            )


def _as_json(value: Any) -> Any:
    """``value`` as dataset.json holds it (tuples as lists)."""
    return json.loads(json.dumps(value))


def _foreign_entries(root: Path) -> list[str]:
    """What a folder without ``dataset.json`` holds besides hidden entries. An export
    writes ``dataset.json`` before anything else, so a ``candidates/`` folder here is
    the user's, not a staging area (it would be deleted when the export finishes)."""
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def _check_out_dir(root: Path) -> None:
    """``root`` is a writable folder, new, empty or an export (created if absent)."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"{root} is a file, not a folder: export into a new or empty folder, or an "
            "export to resume"
        )
    if not root.is_dir():
        make_folder(root, "export folder")  # names a broken link or a file in the way
        return
    if not os.access(root, os.W_OK | os.X_OK):
        raise PermissionError(f"{root}: the export folder is not writable")
    has_description = os.path.lexists(root / "dataset.json")  # a link to nothing: layout says
    foreign = _foreign_entries(root) if not has_description else []
    if foreign:
        raise ValueError(
            f"{root} is not empty and has no dataset.json (found {foreign[:5]}): "
            "export into an empty or new folder"
        )


def _prepare_root(root: Path, desc: dict[str, Any], tag: str) -> dict[str, Any]:
    """Create or validate ``root/dataset.json``; return the description in force."""
    path = root / "dataset.json"
    if path.exists():
        old = _read_description(path)
        _check_same_settings(path, old, desc)
        return old
    _check_out_dir(root)
    atomic_write_bytes(path, json_bytes(desc), tag=tag)
    return desc


def _recorded_complete(root: Path) -> bool:
    """``root/dataset.json`` says the export is finished (read before locking, only to
    choose how to wait; what counts is read again under the lock)."""
    try:
        desc = read_json(root / "dataset.json")
    except (OSError, ValueError):
        return False
    return isinstance(desc, dict) and desc.get("status") == "complete"


def _shard_batches(num: int, batch_size: int, shard: int, num_shards: int) -> Iterator[range]:
    num_batches = -(-num // batch_size)
    for k in range(shard, num_batches, num_shards):
        yield range(k * batch_size, min(num, (k + 1) * batch_size))


def shard_candidates(num: int, batch_size: int, shard: int, num_shards: int) -> list[int]:
    """Candidate indices that shard ``shard`` of ``num_shards`` generates.

    The arguments have ``export_dataset``'s bounds (``num`` >= 1, ``batch_size`` >= 1,
    ``num_shards`` >= 1, ``0 <= shard < num_shards``); others raise a ValueError that
    names the argument.
    """
    num, batch_size = _batch_arguments(num, batch_size)
    shard, num_shards = _shard_numbers(shard, num_shards)
    return [i for r in _shard_batches(num, batch_size, shard, num_shards) for i in r]


class _Journal:
    """Append-only record of finished candidates of one shard (fsync'ed per batch)."""

    def __init__(self, path: Path, tag: str, plan: _Plan, shard: int) -> None:
        self.path = path
        self.tag = tag
        self.entries: dict[int, dict[str, Any]] = {}  # the lines read back, until rewrite
        # after ``rewrite`` only the indices stay in memory: the lines (about 1.2 KB each
        # as dicts) stay on disk, so a shard of millions of candidates holds megabytes
        self.done: set[int] = set()
        # the journal's first lines, in index order (rewrite's), and their bytes
        self.sorted_lines, self.sorted_bytes = 0, 0
        if path.is_file():
            self._load(plan, shard)
        self._file: Any = None

    def _load(self, plan: _Plan, shard: int) -> None:
        try:
            self._read_lines(plan, shard)
        except ValueError as err:  # damage inside the file, not an interrupted write
            raise type(err)(
                f"{err} (delete {self.path} and rerun: this shard's candidates are then "
                "generated again)"
            ) from None

    def _read_lines(self, plan: _Plan, shard: int) -> None:
        lines = list(_jsonl(self.path))
        for pos, (n, raw) in enumerate(lines):
            where = f"{self.path}: line {n}"
            try:
                doc = parse_json_text(raw, where)
            except ValueError:
                if pos == len(lines) - 1:
                    log.info("%s: ignoring the incomplete last line (interrupted write)", where)
                    break
                raise
            e = plan.check_line(doc, JOURNAL_FIELDS, where)
            i = e["index"]
            if plan.shard_of(i) != shard:
                raise SchemaError(
                    f"{where}: field 'index': candidate {i} belongs to "
                    f"{plan.tag(plan.shard_of(i))}, not to {self.tag}"
                )
            if i in self.entries:
                raise SchemaError(f"{where}: candidate {i} is listed twice")
            self.entries[i] = e

    def rewrite(self, keep: dict[int, dict[str, Any]]) -> None:
        """Replace the journal by ``keep`` in index order (drops damaged tails and
        untrusted lines); only their indices stay in memory."""
        data = b"".join(_line(keep[i]) for i in sorted(keep))
        atomic_write_bytes(self.path, data, tag=self.tag)
        self.entries = {}
        self.done = set(keep)
        self.sorted_lines, self.sorted_bytes = len(keep), len(data)

    def append(self, entries: list[dict[str, Any]]) -> None:
        data = b"".join(_line(e) for e in entries)
        with naming_the_file(self.path):  # a full disk names the journal
            if self._file is None:
                self._file = open(self.path, "ab")  # noqa: SIM115 (closed in close())
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        self.done.update(e["index"] for e in entries)

    def by_index(self) -> Iterator[dict[str, Any]]:
        """The journaled entries in index order, read back from the file: the lines of
        ``rewrite`` and those appended since (batch by batch, so also in index order),
        merged, one line of each in memory at a time; each line is read once (the
        appended ones from their byte offset)."""

        def parse(lines: Iterator[tuple[int, bytes]]) -> Iterator[dict[str, Any]]:
            for n, raw in lines:
                yield parse_json_text(raw, f"{self.path}: line {n}")

        def appended() -> Iterator[tuple[int, bytes]]:
            with open(self.path, "rb") as f:
                f.seek(self.sorted_bytes)
                yield from _jsonl_lines(f, self.path, self.sorted_lines)

        head = parse(itertools.islice(_jsonl(self.path), self.sorted_lines))
        return heapq.merge(head, parse(appended()), key=lambda e: e["index"])

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with naming_the_file(self.path):  # what a failed append left in its buffer
                file.close()


def _entry_complete(root: Path, stage: Path, entry: dict[str, Any]) -> bool:
    """Both files of a journaled candidate are intact, staged or already moved."""
    cid = entry["id"]
    pairs = zip(_staged_paths(stage, cid), _final_paths(root, cid), ("image", "mask"))
    for staged, final, key in pairs:
        size, sha = entry[f"{key}_bytes"], entry.get(f"{key}_sha256")
        if _file_problem(root, staged, size, sha) and _file_problem(root, final, size, sha):
            return False
    return True


def _started_selection(root: Path, plan: _Plan) -> frozenset[int]:
    """Candidates dropped by a selection that started (and may have deleted their files).

    The selection is a function of the settings, which a resume must share, so a
    left-over record stays valid; it is removed when the export completes.
    """
    path = root / _SELECTION
    if not path.is_file():
        return frozenset()
    n_drop = num_dropped(plan.num, plan.drop)
    try:
        dropped = check_document(read_json(path), SELECTION_RECORD_FIELDS, str(path))["dropped"]
        if len(dropped) != n_drop or any(i >= plan.num for i in dropped):
            raise SchemaError(
                f"{path}: field 'dropped' must list {n_drop} candidates below {plan.num}"
            )
    except ValueError as exc:
        raise ValueError(
            f"{exc}: remove {path.name} and rerun (the candidates it dropped are generated "
            "again, then dropped again)"
        ) from None
    return frozenset(dropped)


def _generate_batch(
    labeler: Labeler,
    desc: dict[str, Any],
    plan: _Plan,
    root: Path,
    stage: Path,
    batch: range,
    todo: list[int],
) -> list[dict[str, Any]]:
    """Generate one fixed batch; write the ``todo`` candidates' files; their journal lines."""
    seeds = [sample_seed(plan.seed, 0, i) for i in batch]
    images, masks, scores = _label_batch(labeler, seeds, desc, root)
    tag = stage.name
    entries, files = [], []
    for j, i in enumerate(batch):
        if i not in todo:
            continue
        enc = _encode(images[j], masks[j], plan.num_classes)
        entry = _sample_record(i, plan.cid(i), seeds[j], scores[j], enc)
        # checked like a line read back, before any file of the batch is written
        entries.append(plan.check_line(entry, JOURNAL_FIELDS, f"{tag}: candidate {i}"))
        files.append((_staged_paths(stage, entry["id"]), enc))
    for (img_path, mask_path), enc in files:
        atomic_write_bytes(img_path, enc["image"], durable=False, tag=tag)
        atomic_write_bytes(mask_path, enc["mask"], durable=False, tag=tag)
    return entries


def _open_journal(root: Path, stage: Path, plan: _Plan, shard: int) -> tuple[_Journal, int]:
    """The shard's journal, keeping only the lines whose files are intact."""
    for sub in ("images", "masks"):
        (stage / sub).mkdir(parents=True, exist_ok=True)
        _remove_temps(stage / sub)
    _remove_temps(stage)
    journal = _Journal(stage / "journal.jsonl", stage.name, plan, shard)
    dropped = _started_selection(root, plan)
    trusted = {
        i: e for i, e in journal.entries.items() if i in dropped or _entry_complete(root, stage, e)
    }
    journal.rewrite(trusted)
    return journal, len(trusted)


def _generate(
    root: Path, desc: dict[str, Any], labeler: Labeler, shard: int, progress: bool
) -> tuple[int, int]:
    """Generate this shard's missing candidates and write its index: (generated, resumed)."""
    plan = _Plan.of(desc)
    tag = plan.tag(shard)
    stage = root / _STAGING / tag
    mine = shard_candidates(plan.num, plan.batch_size, shard, plan.num_shards)
    journal, resumed = _open_journal(root, stage, plan, shard)
    if resumed:
        log.info("%s: resuming %s with %d of %d candidates done", root, tag, resumed, len(mine))
    generated = 0
    bar = progress_bar(
        total=len(mine), initial=resumed, desc=f"export {tag}", unit="img", progress=progress
    )
    try:
        for batch in _shard_batches(plan.num, plan.batch_size, shard, plan.num_shards):
            todo = [i for i in batch if i not in journal.done]
            if todo:
                entries = _generate_batch(labeler, desc, plan, root, stage, batch, todo)
                journal.append(entries)
                generated += len(entries)
                bar.update(len(entries))
    finally:
        bar.close()
        journal.close()
    # the shard's result: all its candidates, sorted by index
    _write_shard_index(_shard_index_path(root, shard, plan.num_shards), journal, len(mine), tag)
    log.info("%s: %s done (%d generated, %d resumed)", root, tag, generated, resumed)
    return generated, resumed


def _write_shard_index(path: Path, journal: _Journal, count: int, tag: str) -> None:
    """The shard's index, streamed from its journal in index order (an export of
    millions of candidates held every entry, and the whole index, in memory)."""

    def write(f: BinaryIO) -> None:
        written = 0
        for entry in journal.by_index():
            f.write(_line(_shard_index_entry(entry, tag)))
            written += 1
        if written != count:
            raise RuntimeError(f"{tag}: the journal lists {written} of {count} candidates")

    atomic_write(path, write, tag=tag)


def _shard_index_entry(entry: dict[str, Any], tag: str) -> dict[str, Any]:
    """A journal entry as written to a shard index (staged files named)."""
    cid = entry["id"]
    out = {
        "index": entry["index"],
        "id": cid,
        "seed": entry["seed"],
        "uncertainty": entry["uncertainty"],
        "histogram": entry["histogram"],
        "ignored": entry["ignored"],
        "image": f"{_STAGING}/{tag}/images/{cid}.png",
        "mask": f"{_STAGING}/{tag}/masks/{cid}.png",
    }
    return out | _file_fields(entry)


def export_dataset(
    source: Any,
    num: int,
    out_dir: str | Path,
    *,
    drop_uncertain: float = 0.1,
    shard: int | None = None,
    num_shards: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    generator: Any = None,
    interpreter: Any = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    merge: bool = True,
    **labeler_options: Any,
) -> ExportSummary:
    """Generate ``num`` candidates, drop the most uncertain ``drop_uncertain`` fraction
    globally, and write the rest to ``out_dir`` (layout in the module docstring).

    ``source``: a preset name, a :class:`~dgan_data.labeler.Labeler`, a
    ``DatasetGANStream`` (its labeling settings are used; its own seed, batch size and
    filter are not), or None with ``generator=`` and ``interpreter=`` (paths, preset
    names or objects). ``labeler_options`` go to ``Labeler`` (``truncation_psi``,
    ``ignore_uncertain_pixels``, ``label_size``, ``dtype`` ...).
    ``shard``/``num_shards``: which part of the candidates this process generates
    (default: rank and world size from ``torch.distributed`` or torchrun's env, and
    then by default the GPU ``cuda:$LOCAL_RANK``); the
    selection runs when the last shard finishes (``merge=False`` leaves it to
    :func:`merge_shards`). Rerunning with the same arguments resumes, and on a finished
    export verifies every file and regenerates the damaged ones (``repaired``); a
    folder made with other settings is refused; a folder another process is exporting
    the same shard into, selecting or repairing raises :class:`ExportBusyError` (a rerun
    of a finished export waits for it instead, and when every shard reruns at once,
    one verifies and the others return its result); a
    model that produces NaN or inf raises ``NonFiniteOutputError`` at its first batch.
    """
    check_labeler_options(labeler_options, "export_dataset", export_dataset)
    num, seed, batch_size, drop_uncertain = _check_arguments(num, seed, batch_size, drop_uncertain)
    progress = check_bool(progress, "progress")
    merge = check_bool(merge, "merge")  # "no" is truthy: the selection ran
    shard, num_shards = _shard_arguments(shard, num_shards)
    root = _root(out_dir)
    tag = _shard_tag(shard, num_shards)
    if device is None and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        device = f"cuda:{_local_rank(os.environ['LOCAL_RANK'])}"  # torchrun: a GPU per shard
    labeler, preset = labeler_from(source, generator, interpreter, device, **labeler_options)
    n_drop = num_dropped(num, drop_uncertain)
    warn_without_ensemble(
        labeler,
        "export_dataset",
        f"drop_uncertain={drop_uncertain:g} drops {n_drop} of {num} candidates by their "
        "index (the last ones), not by uncertainty; pass drop_uncertain=0 (--drop-uncertain "
        "0) to keep them all"
        if n_drop
        else None,
    )
    desc = _describe(labeler, preset, num, seed, drop_uncertain, batch_size, num_shards)
    _check_out_dir(root)
    _check_layout(root, [tag])
    with _ExportLock(root) as lock:
        # a rerun of a finished export waits for the folder instead of being refused:
        # every shard's process reruns at once under torchrun, one verifies
        waited = _recorded_complete(root)
        note = lock.wait_for_folder() if waited else None
        if not waited and not lock.acquire_folder(exclusive=False, wait=_BRIEF_WAIT_S):
            raise _busy(root, "another process is selecting, repairing or verifying it")
        if not waited and not lock.acquire_shard(shard):
            raise _busy(root, f"another process is exporting shard {shard} of {num_shards} into it")
        with lock.setup():
            found = _prepare_root(root, desc, tag)
        if found["status"] == "complete":
            if not waited:  # the last shard finished it meanwhile
                lock.release(shard)
                note = lock.wait_for_folder()
                found = _prepare_root(root, desc, tag)
            return _rerun_complete(root, found, labeler, shard, progress, lock, note)
        generated, resumed = _generate(root, found, labeler, shard, progress)
    summary = ExportSummary(root, num, shard, num_shards, generated, resumed, False)
    return _select_when_last(summary) if merge else summary


def _select_when_last(summary: ExportSummary) -> ExportSummary:
    """After a shard (its locks released): select if every shard has finished."""
    root, shard, num_shards = summary.root, summary.shard, summary.num_shards
    if (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() == num_shards
    ):
        torch.distributed.barrier()  # every shard has written its index
        try:
            if shard == 0:
                merge_shards(root)
        finally:
            torch.distributed.barrier()  # released even if the selection failed
        return _with_selection(summary, _read_description(root / "dataset.json"))
    missing = [s for s in range(num_shards) if not _shard_index_path(root, s, num_shards).is_file()]
    if missing:
        log.info(
            "%s: waiting for shard(s) %s; the last one to finish selects the dataset "
            "(or run merge_shards)",
            root,
            missing[:8],
        )
        return summary
    try:
        merged = _merge(root, wait=_SELECT_WAIT_S)
    except ExportBusyError:
        log.info("%s: another process holds the folder and selects the dataset", root)
        return summary
    summary.complete, summary.kept = merged.complete, merged.kept
    summary.dropped, summary.threshold = merged.dropped, merged.threshold
    summary.tied = merged.tied
    return summary


def _with_selection(summary: ExportSummary, desc: dict[str, Any]) -> ExportSummary:
    summary.complete = desc["status"] == "complete"
    if summary.complete:
        sel = desc["selection"]
        summary.kept, summary.dropped = sel["kept"], sel["dropped"]
        summary.threshold, summary.tied = sel["threshold"], sel.get("tied_at_cutoff")
    return summary
