"""Write a finite DatasetGAN dataset to disk, resumably, verify it, and read it back.

An export generates ``num`` candidates, drops the ``drop_uncertain`` fraction with the
highest uncertainty scores among **all** of them (the exact global quantile, as in the
paper, not the stream's sliding window), and keeps the rest as PNG files::

    out_dir/
      dataset.json        classes, palette, label size, fingerprints, settings, selection
      index.jsonl         one line per kept sample (id, seed, score, files, their byte
                          sizes and sha256, histogram)
      candidates.jsonl    one line per candidate (id, seed, score, kept): the filter's record
      images/<id>.png     RGB uint8
      masks/<id>.png      single channel uint8, class ids 0..K-1, 255 = ignore

Design (two phases, bounded memory, every file written once):

1. **Generate** (per shard; an unsharded export is shard 0 of 1). Candidate ``i`` has
   seed ``sample_seed(seed, 0, i)`` (the stream's epoch-0 candidate ``i``) and belongs
   to batch ``i // batch_size``; shard ``s`` of ``n`` owns the batches ``k`` with
   ``k % n == s``. Whole batches, not single candidates, are dealt out because a
   generator's float rounding depends on the batch it runs in: with fixed batches a
   resumed, or sharded-then-merged, export is byte-identical to an uninterrupted one
   on the same device. Each candidate's image and mask go to the shard's staging
   folder ``candidates/shard-<s>-of-<n>/`` (temp file, ``os.replace``); then one
   line per candidate (index, seed, score, histogram, file sizes and sha256) is
   appended to the shard's ``journal.jsonl`` and fsync'ed, a batch at a time. A
   non-finite score is an error before any file of its batch is written. When the
   shard is done it writes ``index.shard-<s>-of-<n>.jsonl``: all its candidates, sorted.
2. **Select** (``merge_shards``; runs by itself when the last shard finishes, or on
   rank 0 after a barrier under ``torch.distributed``). Reads only the scores of all
   candidates (one float each), keeps the ``num - floor(drop_uncertain * num)`` lowest
   (ties: the lower candidate index is kept), checks each kept file against its
   recorded sha256 and moves it into ``images/`` and ``masks/`` (``os.replace``, no
   copy), deletes the dropped ones, writes ``index.jsonl``, ``candidates.jsonl`` and the
   final ``dataset.json`` (with the sha256 of both index files) atomically, and removes
   the staging folder and shard files.

Trust nothing read back: every ``dataset.json``, journal, index and record line is
checked against its schema in one place (``*_FIELDS`` below, :func:`_Plan.check_line`:
types, finite scores, the id and seed that belong to the index, one count per class),
and every path read from a file must be the one the layout prescribes and resolve
inside the export folder (no symlink leading out). Errors name the file, the line and
the field.

Resume: rerunning with the same arguments trusts a journal line only if both its
files exist (staged, or already moved by the selection) with the recorded size and
sha256; a batch with any untrusted candidate is generated again as a whole (same
batch, same rounding) and only those candidates are written. A truncated last
journal line (a kill mid-write) is ignored and the journal rewritten clean; stale
temp files are removed. The selection records its decision (``.selection.json``)
before it deletes anything and every step of it is idempotent, so a kill during it is
repaired by rerunning too. Rerunning a *finished* export verifies every file against
its sha256 and regenerates the damaged or missing ones (their fixed batch, the same
bytes); damaged or missing index files are rebuilt by regenerating every candidate and
selecting again, written only if they hash to the sha256 that ``dataset.json`` records;
:func:`verify_export` only reports. A folder made with different settings is
refused, naming ``dataset.json`` and the field.

Locks: ``.export.lock`` carries fcntl byte-range locks (released by the kernel when a
process dies, so a killed export's lock is free at once): generating shards share the
folder and each holds its own shard exclusively (several shards run side by side, one
shard never twice); selecting and repairing hold the folder exclusively; verifying
shares it. A busy folder raises :class:`ExportBusyError`. The file is removed when the
export completes.

Memory: a generating shard keeps its journal lines (a few hundred bytes per
candidate); the selection keeps one float per candidate and streams everything else.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import heapq
import itertools
import json
import logging
import math
import numbers
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ._version import __version__
from .conventions import IGNORE_INDEX
from .fileio import (
    UnsafePathError,
    atomic_write_bytes,
    file_sha256,
    fsync_dir,
    json_bytes,
    parse_json_text,
    png_bytes,
    read_json,
    remove_temps,
    resolve_inside,
)
from .labeler import Labeler, labeler_from
from .schema import (
    Bool,
    Dict,
    Float,
    Int,
    IntList,
    ListOf,
    Optional,
    SchemaError,
    Str,
    check_document,
)
from .seeds import MAX_SEED, distributed_context, sample_seed

try:
    import fcntl
except ImportError:  # no advisory locks on this platform (Windows)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_NUM",
    "ExportBusyError",
    "ExportDamagedError",
    "ExportSummary",
    "ExportedDataset",
    "VerifyReport",
    "export_dataset",
    "merge_shards",
    "verify_export",
]

FORMAT_NAME = "dgan_data.export"
FORMAT_VERSION = 1
#: Most candidates one export may have (the selection keeps a float per candidate and
#: a shard a journal line per candidate in memory); several exports with different
#: seeds make more.
MAX_NUM = 10_000_000
MAX_BATCH = 65_536
MAX_SHARDS = 65_536
#: Longest line accepted in a JSON-lines file (ours are a few hundred bytes).
_LINE_BYTES = 1 << 20
#: How long the last shard to finish waits for the folder before leaving the selection
#: to the process that holds it.
_SELECT_WAIT_S = 30.0
#: How long any other lock request retries: a finishing process holds the folder for
#: the instant it takes to remove the lock file.
_BRIEF_WAIT_S = 2.0

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TRAILER = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_STAGING = "candidates"
_SELECTION = ".selection.json"
_LOCK = ".export.lock"
#: Settings that decide which files an export holds: a resume must match all of them.
_DETERMINING = (
    "format_version",
    "num",
    "seed",
    "drop_uncertain",
    "batch_size",
    "num_shards",
    "truncation_psi",
    "truncation_cutoff",
    "ignore_uncertain_pixels",
    "noise",
    "dtype",
    "label_size",
    "num_classes",
    "generator_fingerprint",
    "interpreter_fingerprint",
)


class ExportBusyError(RuntimeError):
    """Another process is using the export folder (the same shard, or the whole folder)."""


class ExportDamagedError(ValueError):
    """A finished export is damaged in a way that a rerun cannot repair from its records."""


# ---------------------------------------------------------------------- results
@dataclass
class ExportSummary:
    """What an ``export_dataset`` or ``merge_shards`` call did and where things stand."""

    root: Path
    num_candidates: int
    shard: int
    num_shards: int
    generated: int  # candidates generated by this call
    resumed: int  # candidates found complete on disk and skipped
    complete: bool  # the selection has run: images/, masks/ and index.jsonl are final
    kept: int | None = None
    dropped: int | None = None
    threshold: float | None = None  # highest kept score
    repaired: int = 0  # damaged or missing files of a finished export regenerated

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["root"] = str(self.root)
        return out


@dataclass
class VerifyReport:
    """What :func:`verify_export` found: one line per problem, nothing when intact."""

    root: Path
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. what an older export lacks
    repairable: bool = True  # rerunning the export command fixes every problem

    @property
    def ok(self) -> bool:
        return not self.problems


def num_dropped(num: int, drop_uncertain: float) -> int:
    """Candidates the selection drops: ``floor(drop_uncertain * num)``.

    Rounded down so that never more than the requested fraction is dropped (a tiny
    tolerance absorbs float representation, e.g. ``0.29 * 100 = 28.999...``).
    """
    return math.floor(drop_uncertain * num + 1e-9)


# --------------------------------------------------------------------- schemas
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _sha256_field(value: Any, name: str) -> str:
    """Schema check: a lowercase hex sha256."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise SchemaError(f"field '{name}' must be a sha256 (64 hex digits), got {value!r:.70}")
    return value


_LABEL_SIZE = IntList(2, 1, 1 << 16)
SETTINGS_FIELDS = {
    "format_version": Int(1, FORMAT_VERSION),
    "num": Int(1, MAX_NUM),
    "seed": Int(0, MAX_SEED - 1),
    "drop_uncertain": Float(0.0, 1.0),
    "batch_size": Int(1, MAX_BATCH),
    "num_shards": Int(1, MAX_SHARDS),
    "truncation_psi": Float(0.0),
    "truncation_cutoff": Optional(Int(0)),
    "ignore_uncertain_pixels": Optional(Float(0.0)),
    "noise": Str(64),
    "dtype": Str(64),
    "label_size": Optional(_LABEL_SIZE),
    "num_classes": Int(1, IGNORE_INDEX - 1),
    "generator_fingerprint": Str(256),
    "interpreter_fingerprint": Str(256),
}
SELECTION_FIELDS = {
    "candidates": Int(1, MAX_NUM),
    "dropped": Int(0, MAX_NUM),
    "kept": Int(1, MAX_NUM),
    "threshold": Float(),
    "rounding": Optional(Str()),
    "index_sha256": Optional(_sha256_field),
    "candidates_sha256": Optional(_sha256_field),
}
#: ``dataset.json``.
DESCRIPTION_FIELDS = {
    "format": Str(64, choices=(FORMAT_NAME,)),
    "format_version": Int(1, FORMAT_VERSION),
    "status": Str(16, choices=("generating", "complete")),
    "preset": Optional(Str(256)),
    "classes": ListOf(Str(256), min_len=1, max_len=IGNORE_INDEX - 1),
    "palette": ListOf(IntList(3, 0, 255), min_len=1, max_len=IGNORE_INDEX - 1),
    "ignore_index": Int(0, 255),
    "label_size": Optional(_LABEL_SIZE),
    "id_format": Str(32),
    "settings": Dict(SETTINGS_FIELDS),
    "selection": Optional(Dict(SELECTION_FIELDS)),
}
_CANDIDATE_FIELDS = {
    "index": Int(0, MAX_NUM - 1),
    "id": Str(32),
    "seed": Int(0, MAX_SEED - 1),
    "uncertainty": Float(),  # finite: NaN and inf are refused
}
_SAMPLE_FIELDS = {
    **_CANDIDATE_FIELDS,
    "histogram": ListOf(Int(0), max_len=IGNORE_INDEX),
    "ignored": Int(0),
}
_FILE_FIELDS = {
    "image_bytes": Optional(Int(1)),
    "mask_bytes": Optional(Int(1)),
    "image_sha256": Optional(_sha256_field),  # absent in exports made before hashes
    "mask_sha256": Optional(_sha256_field),
}
#: A line of a shard's ``journal.jsonl``.
JOURNAL_FIELDS = {**_SAMPLE_FIELDS, **_FILE_FIELDS, "image_bytes": Int(1), "mask_bytes": Int(1)}
#: A line of ``index.shard-<s>-of-<n>.jsonl`` or ``index.jsonl``.
INDEX_FIELDS = {**_SAMPLE_FIELDS, "image": Str(512), "mask": Str(512), **_FILE_FIELDS}
#: A line of ``candidates.jsonl``.
CANDIDATES_FIELDS = {**_CANDIDATE_FIELDS, "kept": Bool()}
#: ``.selection.json``.
SELECTION_RECORD_FIELDS = {"dropped": ListOf(Int(0, MAX_NUM - 1), max_len=MAX_NUM)}


@dataclass(frozen=True)
class _Plan:
    """The settings of one export, against which every line read back is checked."""

    num: int
    seed: int
    batch_size: int
    num_shards: int
    num_classes: int
    drop: float
    pixels: int | None  # per mask, when the label size is recorded

    @classmethod
    def of(cls, desc: Mapping[str, Any]) -> _Plan:
        s = desc["settings"]
        size = s.get("label_size")
        return cls(
            s["num"],
            s["seed"],
            s["batch_size"],
            s["num_shards"],
            s["num_classes"],
            s["drop_uncertain"],
            None if size is None else size[0] * size[1],
        )

    def cid(self, index: int) -> str:
        return _candidate_id(index, _id_width(self.num))

    def tag(self, shard: int) -> str:
        return _shard_tag(shard, self.num_shards)

    def shard_of(self, index: int) -> int:
        return (index // self.batch_size) % self.num_shards

    def batch_of(self, index: int) -> range:
        k = index // self.batch_size
        return range(k * self.batch_size, min(self.num, (k + 1) * self.batch_size))

    def check_line(self, doc: Any, fields: Mapping[str, Any], where: str) -> dict[str, Any]:
        """``doc`` checked against ``fields`` and this export: the index in range, the id
        and seed that belong to it, one count per class adding up to the mask."""
        check_document(doc, fields, where)
        i = doc["index"]
        if i >= self.num:
            raise SchemaError(f"{where}: field 'index' must be below num={self.num}, got {i}")
        if doc["id"] != self.cid(i):
            raise SchemaError(
                f"{where}: field 'id' must be {self.cid(i)!r} (the id of candidate {i}), "
                f"got {doc['id']!r:.70}"
            )
        seed = sample_seed(self.seed, 0, i)
        if doc["seed"] != seed:
            raise SchemaError(
                f"{where}: field 'seed' must be {seed} (sample_seed({self.seed}, 0, {i})), "
                f"got {doc['seed']}"
            )
        if "histogram" in doc:
            self._check_histogram(doc, where)
        return doc

    def _check_histogram(self, doc: Mapping[str, Any], where: str) -> None:
        hist = doc["histogram"]
        if len(hist) != self.num_classes:
            raise SchemaError(
                f"{where}: field 'histogram' must have {self.num_classes} counts (one per "
                f"class), got {len(hist)}"
            )
        if self.pixels is not None and sum(hist) + doc["ignored"] != self.pixels:
            raise SchemaError(
                f"{where}: fields 'histogram' and 'ignored' must count the {self.pixels} "
                f"pixels of a mask, got {sum(hist) + doc['ignored']}"
            )


def _id_format(num: int) -> str:
    return f"{{:0{_id_width(num)}d}}"


def _read_description(path: Path) -> dict[str, Any]:
    """``dataset.json``, checked: a bounded JSON object of the schema, consistent with itself."""
    desc = read_json(path)
    if desc.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{path} is not a dgan_data export description (format is {desc.get('format')!r:.70})"
        )
    version = desc.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {version}; this dgan_data reads up to "
            f"{FORMAT_VERSION}: upgrade dgan_data"
        )
    check_document(desc, DESCRIPTION_FIELDS, str(path))
    _check_description(desc, path)
    return desc


def _check_description(desc: dict[str, Any], path: Path) -> None:
    s = desc["settings"]
    num, k = s["num"], s["num_classes"]
    if s["drop_uncertain"] >= 1.0:
        raise SchemaError(f"{path}: field 'settings.drop_uncertain' must be below 1")
    for key in ("classes", "palette"):
        if len(desc[key]) != k:
            raise SchemaError(
                f"{path}: field '{key}' must have {k} entries (settings.num_classes), "
                f"got {len(desc[key])}"
            )
    if desc["id_format"] != _id_format(num):
        raise SchemaError(f"{path}: field 'id_format' must be {_id_format(num)!r} for num={num}")
    if desc["label_size"] != s.get("label_size"):
        raise SchemaError(f"{path}: fields 'label_size' and 'settings.label_size' differ")
    if desc["status"] != "complete":
        return
    sel = desc.get("selection")
    n_drop = num_dropped(num, s["drop_uncertain"])
    if sel is None:
        raise SchemaError(f"{path}: field 'selection' is missing (the status is 'complete')")
    if (sel["candidates"], sel["dropped"], sel["kept"]) != (num, n_drop, num - n_drop):
        raise SchemaError(
            f"{path}: field 'selection' must record {num} candidates, {n_drop} dropped and "
            f"{num - n_drop} kept, got {sel['candidates']}, {sel['dropped']}, {sel['kept']}"
        )


# ------------------------------------------------------------------ file helpers
def _tmp_path(path: Path, tag: str) -> Path:
    """Temp file of a streamed write (removed by ``remove_temps(folder, tag)``)."""
    return path.with_name(f".{path.name}.{tag}.tmp")


def _remove_temps(folder: Path, tag: str | None = None) -> int:
    removed = remove_temps(folder, tag)
    if removed:
        log.info("removed %d stale temp file(s) in %s", removed, folder)
    return removed


def _jsonl(path: Path) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of a JSON-lines file with their 1-based numbers (bounded)."""
    with open(path, "rb") as f:
        n = 0
        while raw := f.readline(_LINE_BYTES + 1):
            n += 1
            if len(raw) > _LINE_BYTES:
                raise ValueError(f"{path}: line {n} is longer than {_LINE_BYTES} bytes")
            if raw.strip():
                yield n, raw


def _line(entry: dict[str, Any]) -> bytes:
    """One JSON line; a NaN or inf can never be written (``allow_nan=False``)."""
    return (json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _expect_path(root: Path, doc: Mapping[str, Any], key: str, rel: str, where: str) -> Path:
    """``doc[key]`` must be the path the layout prescribes, inside ``root`` (symlinks too)."""
    if doc[key] != rel:
        raise SchemaError(f"{where}: field '{key}' must be {rel!r}, got {doc[key]!r:.100}")
    return resolve_inside(root, rel, f"{where}: field '{key}'")


def _check_layout(root: Path, tags: Sequence[str] = ()) -> None:
    """The files and folders an export reads, writes, moves or deletes stay inside
    ``root``: a symlink leading out would make it touch files elsewhere."""
    rels = ["dataset.json", "index.jsonl", "candidates.jsonl", _SELECTION, _LOCK]
    rels += ["images", "masks", _STAGING]
    for tag in tags:
        stage = f"{_STAGING}/{tag}"
        rels += [stage, f"{stage}/images", f"{stage}/masks", f"{stage}/journal.jsonl"]
        rels.append(f"index.{tag}.jsonl")
    for rel in rels:
        try:
            resolve_inside(root, rel)
        except UnsafePathError:
            raise UnsafePathError(
                f"{root / rel} leads outside the export folder {root} (a symlink): remove the link"
            ) from None


def _png_problem(path: Path) -> str | None:
    """Why a file is not a complete PNG (signature, IEND trailer, chunk checksums)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_PNG_SIGNATURE))
            f.seek(0, os.SEEK_END)
            if f.tell() < len(_PNG_SIGNATURE) + len(_PNG_TRAILER):
                return "is not a complete PNG (too short)"
            f.seek(-len(_PNG_TRAILER), os.SEEK_END)
            tail = f.read()
        if head != _PNG_SIGNATURE or tail != _PNG_TRAILER:
            return "is not a complete PNG (no PNG signature or IEND trailer: truncated?)"
        with Image.open(path) as im:
            im.verify()  # chunk CRCs
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return f"is not a valid PNG ({exc})"
    return None


def _file_problem(root: Path, path: Path, size: int | None, sha: str | None) -> str | None:
    """Why a sample file cannot be trusted, or None: missing, a symlink leading out, of
    another size or sha256 than recorded (without a recorded hash: not a complete PNG)."""
    try:
        resolve_inside(root, str(path.relative_to(root)))
    except (UnsafePathError, ValueError):
        return "is a symlink leading outside the export"
    try:
        st = path.stat()
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "is not a file"
    if size is not None and st.st_size != size:
        return f"has {st.st_size} bytes, {size} recorded"
    if sha is not None:
        return None if file_sha256(path) == sha else "differs from its recorded sha256 (damaged)"
    return _png_problem(path)


def _root(out_dir: Any) -> Path:
    """The export folder argument as a Path (a clear error for other types)."""
    if not isinstance(out_dir, (str, os.PathLike)) or str(out_dir) == "":
        raise ValueError(f"the export folder must be a path, got {out_dir!r:.70}")
    return Path(out_dir)


def _shard_tag(shard: int, num_shards: int) -> str:
    return f"shard-{shard}-of-{num_shards}"


def _shard_index_path(root: Path, shard: int, num_shards: int) -> Path:
    return root / f"index.{_shard_tag(shard, num_shards)}.jsonl"


def _id_width(num: int) -> int:
    return max(6, len(str(num - 1)))


# ------------------------------------------------------------------------ locks
_FOLDER_BYTE, _SETUP_BYTE, _SHARD_BYTE = 0, 1, 2
_HELD: set[str] = set()  # folders this process holds (POSIX locks never exclude oneself)
_HELD_GUARD = threading.Lock()


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


def _busy(root: Path, what: str) -> ExportBusyError:
    return ExportBusyError(
        f"{root} is busy: {what} (it holds {root / _LOCK}); wait for it to finish, or stop it"
    )


class _ExportLock:
    """fcntl byte-range locks on ``root/.export.lock``: byte 0 the folder (shared while
    generating or verifying, exclusive to select or repair), byte 1 the creation of
    ``dataset.json``, byte 2 + s shard s. The kernel releases them when the process
    dies, so the lock of a killed export is free at once; the left-over file means
    nothing. Used as a context manager; one per folder and process."""

    def __init__(self, root: Path, *, readonly: bool = False) -> None:
        self.root, self.path, self.readonly = root, root / _LOCK, readonly
        self.fd: int | None = None
        self._key = ""

    def __enter__(self) -> _ExportLock:
        self._key = str(self.root.resolve())
        with _HELD_GUARD:
            if self._key in _HELD:
                raise _busy(self.root, "this process is already exporting into it")
            _HELD.add(self._key)
        return self

    def __exit__(self, *exc: object) -> None:
        # nobody else holds the folder: the lock file can go (a process that opened it
        # meanwhile sees that it was replaced, see _current)
        if not self.readonly and self.fd is not None and self._try(_FOLDER_BYTE, True):
            self.path.unlink(missing_ok=True)
        self._close()
        with _HELD_GUARD:
            _HELD.discard(self._key)

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases every lock this process holds on the file
            self.fd = None

    def _open(self) -> bool:
        """Open the lock file (created unless read-only); False: read-only and absent."""
        flags = os.O_RDONLY if self.readonly else os.O_RDWR | os.O_CREAT
        try:
            self.fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            if self.readonly:
                return False
            raise
        except PermissionError as exc:
            raise PermissionError(
                f"{self.root}: the export folder is not writable ({exc.strerror})"
            ) from None
        return True

    def _try(self, start: int, exclusive: bool) -> bool:
        if fcntl is None:
            _warn_once(
                f"{self.path}: no fcntl on this platform: concurrent exports are not detected"
            )
            return True
        if self.fd is None:
            return True
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        try:
            fcntl.lockf(self.fd, mode, 1, start)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            _warn_once(f"{self.path}: cannot lock ({exc}): concurrent exports are not detected")
        return True

    def _current(self) -> bool:
        """The open file is still the lock file (a finishing export removes it)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        own = os.fstat(self.fd) if self.fd is not None else st
        return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)

    def acquire_folder(self, *, exclusive: bool, wait: float = 0.0) -> bool:
        """Lock the folder; retry for ``wait`` seconds; False if another process holds it."""
        deadline = time.monotonic() + wait
        for replaced in itertools.count():
            if self.fd is None and not self._open():
                return True  # read-only, and no lock file: nobody holds the folder
            if self._try(_FOLDER_BYTE, exclusive):
                if self._current() or replaced >= 100:  # (a file system without inodes)
                    return True
                self._close()
                continue
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def acquire_shard(self, shard: int) -> bool:
        """Lock one shard (call after :meth:`acquire_folder`)."""
        return self._try(_SHARD_BYTE + shard, True)

    @contextlib.contextmanager
    def setup(self, wait: float = 30.0) -> Iterator[None]:
        """Serialise the creation of ``dataset.json`` between shards starting together."""
        deadline = time.monotonic() + wait
        while not self._try(_SETUP_BYTE, True):
            if time.monotonic() >= deadline:
                raise _busy(self.root, "another process is setting up this export")
            time.sleep(0.05)
        try:
            yield
        finally:
            if fcntl is not None and self.fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, _SETUP_BYTE)


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
    hint = ": export in several folders with different seeds for more"
    num = _int_argument("num", num, 1, MAX_NUM, hint)
    seed = _int_argument("seed", seed, 0, MAX_SEED - 1)
    batch_size = _int_argument("batch_size", batch_size, 1, MAX_BATCH)
    drop = drop_uncertain
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


def _shard_arguments(shard: Any, num_shards: Any) -> tuple[int, int]:
    if (shard is None) != (num_shards is None):
        raise ValueError("give both shard and num_shards, or neither")
    if shard is None:
        try:
            shard, num_shards = distributed_context()
        except ValueError:
            raise ValueError(
                f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE="
                f"{os.environ.get('WORLD_SIZE')!r} must be integers (or give shard and "
                "num_shards)"
            ) from None
    num_shards = _int_argument("num_shards", num_shards, 1, MAX_SHARDS)
    shard = _int_argument("shard", shard, 0, num_shards - 1)
    return shard, num_shards


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
        if key == "label_size" and (old_s.get(key) is None or new_s.get(key) is None):
            continue
        if old_s.get(key) != new_s.get(key):
            raise ValueError(
                f"{path} was written with {key}={old_s.get(key)!r}, this export asks for "
                f"{key}={new_s.get(key)!r}: resume with the same settings, or export to "
                "another folder"
            )


def _foreign_entries(root: Path) -> list[str]:
    return sorted(
        p.name for p in root.iterdir() if p.name != _STAGING and not p.name.startswith(".")
    )


def _check_out_dir(root: Path) -> None:
    """``root`` is a writable folder, new, empty or an export (created if absent)."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"{root} is a file, not a folder: export into a new or empty folder, or an "
            "export to resume"
        )
    if not root.is_dir():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise type(exc)(
                f"{root}: cannot create the export folder ({exc.strerror or exc})"
            ) from None
        return
    if not os.access(root, os.W_OK | os.X_OK):
        raise PermissionError(f"{root}: the export folder is not writable")
    foreign = _foreign_entries(root) if not (root / "dataset.json").exists() else []
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


# --------------------------------------------------------------------- generate
def _candidate_id(index: int, width: int) -> str:
    return f"{index:0{width}d}"


def _shard_batches(num: int, batch_size: int, shard: int, num_shards: int) -> Iterator[range]:
    num_batches = -(-num // batch_size)
    for k in range(shard, num_batches, num_shards):
        yield range(k * batch_size, min(num, (k + 1) * batch_size))


def shard_candidates(num: int, batch_size: int, shard: int, num_shards: int) -> list[int]:
    """Candidate indices that shard ``shard`` of ``num_shards`` generates."""
    return [i for r in _shard_batches(num, batch_size, shard, num_shards) for i in r]


class _Journal:
    """Append-only record of finished candidates of one shard (fsync'ed per batch)."""

    def __init__(self, path: Path, tag: str, plan: _Plan, shard: int) -> None:
        self.path = path
        self.tag = tag
        self.entries: dict[int, dict[str, Any]] = {}
        if path.is_file():
            self._load(plan, shard)
        self._file: Any = None

    def _load(self, plan: _Plan, shard: int) -> None:
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
        """Replace the journal by ``keep`` (drops damaged tails and untrusted lines)."""
        self.entries = dict(keep)
        data = b"".join(_line(self.entries[i]) for i in sorted(self.entries))
        atomic_write_bytes(self.path, data, tag=self.tag)

    def append(self, entries: list[dict[str, Any]]) -> None:
        data = b"".join(_line(e) for e in entries)
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 (closed in close())
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        for e in entries:
            self.entries[e["index"]] = e

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _staged_paths(stage: Path, cid: str) -> tuple[Path, Path]:
    return stage / "images" / f"{cid}.png", stage / "masks" / f"{cid}.png"


def _final_paths(root: Path, cid: str) -> tuple[Path, Path]:
    return root / "images" / f"{cid}.png", root / "masks" / f"{cid}.png"


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


def _label_batch(
    labeler: Labeler, seeds: list[int], desc: dict[str, Any], root: Path
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Images (B, 3, H, W) uint8, masks (B, H, W) and scores on the host; a non-finite
    score or a label size other than the recorded one is an error."""
    out = labeler.label(seeds)  # the whole fixed batch: same rounding as before
    scores = out.image_uncertainty.float().cpu().tolist()
    out.check_finite(scores)  # a broken model is an error, never kept garbage
    images = (out.images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    masks = out.masks.cpu()
    size = [int(masks.shape[-2]), int(masks.shape[-1])]
    label_size = desc["settings"]["label_size"]
    if label_size is not None and list(label_size) != size:
        raise ValueError(
            f"{root / 'dataset.json'} records label size {label_size}, the model now "
            f"produces {size}: resume with the same settings"
        )
    return images, masks, scores


def _encode(image: torch.Tensor, mask: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """A sample's PNG bytes and mask statistics."""
    valid = mask != IGNORE_INDEX
    hist = torch.bincount(mask[valid].reshape(-1), minlength=num_classes)
    return {
        "image": png_bytes(image.permute(1, 2, 0).contiguous().numpy()),
        "mask": png_bytes(mask.to(torch.uint8).numpy()),
        "histogram": [int(v) for v in hist.tolist()],
        "ignored": int((~valid).sum()),
    }


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
        entry = {
            "index": i,
            "id": plan.cid(i),
            "seed": seeds[j],
            "uncertainty": scores[j],
            "histogram": enc["histogram"],
            "ignored": enc["ignored"],
            "image_bytes": len(enc["image"]),
            "mask_bytes": len(enc["mask"]),
            "image_sha256": hashlib.sha256(enc["image"]).hexdigest(),
            "mask_sha256": hashlib.sha256(enc["mask"]).hexdigest(),
        }
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
    bar = tqdm(
        total=len(mine),
        initial=resumed,
        desc=f"export {tag}",
        unit="img",
        disable=None if progress else True,
    )
    try:
        for batch in _shard_batches(plan.num, plan.batch_size, shard, plan.num_shards):
            todo = [i for i in batch if i not in journal.entries]
            if todo:
                entries = _generate_batch(labeler, desc, plan, root, stage, batch, todo)
                journal.append(entries)
                generated += len(entries)
                bar.update(len(entries))
    finally:
        bar.close()
        journal.close()
    # the shard's result: all its candidates, sorted by index
    lines = b"".join(_line(_shard_index_entry(journal.entries[i], tag)) for i in mine)
    atomic_write_bytes(_shard_index_path(root, shard, plan.num_shards), lines, tag=tag)
    log.info("%s: %s done (%d generated, %d resumed)", root, tag, generated, resumed)
    return generated, resumed


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


def _file_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in _FILE_FIELDS if entry.get(k) is not None}


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
    the same shard into, selecting or repairing raises :class:`ExportBusyError`; a
    model that produces NaN or inf raises ``NonFiniteOutputError`` at its first batch.
    """
    num, seed, batch_size, drop_uncertain = _check_arguments(num, seed, batch_size, drop_uncertain)
    shard, num_shards = _shard_arguments(shard, num_shards)
    root = _root(out_dir)
    tag = _shard_tag(shard, num_shards)
    if device is None and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"  # torchrun: one GPU per shard
    labeler, preset = labeler_from(source, generator, interpreter, device, **labeler_options)
    desc = _describe(labeler, preset, num, seed, drop_uncertain, batch_size, num_shards)
    _check_out_dir(root)
    _check_layout(root, [tag])
    with _ExportLock(root) as lock:
        if not lock.acquire_folder(exclusive=False, wait=_BRIEF_WAIT_S):
            raise _busy(root, "another process is selecting, repairing or verifying it")
        if not lock.acquire_shard(shard):
            raise _busy(root, f"another process is exporting shard {shard} of {num_shards} into it")
        with lock.setup():
            desc = _prepare_root(root, desc, tag)
        if desc["status"] == "complete":
            if not lock.acquire_folder(exclusive=True, wait=_BRIEF_WAIT_S):
                raise _busy(root, "another process is using this finished export")
            return _rerun_complete(root, desc, labeler, shard, progress)
        generated, resumed = _generate(root, desc, labeler, shard, progress)
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
    return summary


def _with_selection(summary: ExportSummary, desc: dict[str, Any]) -> ExportSummary:
    summary.complete = desc["status"] == "complete"
    if summary.complete:
        sel = desc["selection"]
        summary.kept, summary.dropped = sel["kept"], sel["dropped"]
        summary.threshold = sel["threshold"]
    return summary


# ----------------------------------------------------------------------- select
def _iter_shard_index(root: Path, plan: _Plan, shard: int) -> Iterator[dict[str, Any]]:
    """A shard index's lines, each checked: schema, shard, order, staged paths inside."""
    path = _shard_index_path(root, shard, plan.num_shards)
    tag, last = plan.tag(shard), -1
    for n, raw in _jsonl(path):
        where = f"{path}: line {n}"
        e = plan.check_line(parse_json_text(raw, where), INDEX_FIELDS, where)
        i = e["index"]
        if plan.shard_of(i) != shard:
            raise SchemaError(
                f"{where}: field 'index': candidate {i} belongs to "
                f"{plan.tag(plan.shard_of(i))}, not to {tag}"
            )
        if i <= last:
            raise SchemaError(f"{where}: candidate {i} is out of order (after {last}): rerun {tag}")
        last = i
        for key in ("image", "mask"):
            _expect_path(root, e, key, f"{_STAGING}/{tag}/{key}s/{e['id']}.png", where)
        yield e


def _merged_entries(root: Path, plan: _Plan) -> Iterator[dict[str, Any]]:
    """All shard index entries in candidate order (each file is sorted; k-way merge)."""
    shards = (_iter_shard_index(root, plan, s) for s in range(plan.num_shards))
    return heapq.merge(*shards, key=lambda e: e["index"])


def _move(src: Path, dst: Path) -> None:
    """``os.replace`` that tolerates a move already done by an earlier, interrupted merge."""
    try:
        os.replace(src, dst)
    except FileNotFoundError:
        if not dst.is_file():
            raise FileNotFoundError(
                f"{src} is missing (and {dst} does not exist): rerun the export of its "
                "shard to regenerate it"
            ) from None


def merge_shards(out_dir: str | Path) -> ExportSummary:
    """Apply the global uncertainty selection to a finished (sharded) export.

    Needs every ``index.shard-<s>-of-<n>.jsonl``; idempotent, so it can be rerun after
    an interruption. Memory: one float per candidate. Raises :class:`ExportBusyError`
    while another process exports into, selects or verifies the folder.
    """
    return _merge(_root(out_dir), wait=_BRIEF_WAIT_S)


def _missing_shards(root: Path, num_shards: int) -> None:
    missing = [
        p.name
        for p in (_shard_index_path(root, s, num_shards) for s in range(num_shards))
        if not p.is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"{root}: shard results {missing[:8]} are missing: finish those shards first "
            "(rerun their export commands)"
        )


def _merge(root: Path, wait: float) -> ExportSummary:
    desc_path = root / "dataset.json"
    if not desc_path.is_file():
        raise FileNotFoundError(f"{desc_path}: no such file (not an export folder)")
    _check_layout(root)
    desc = _read_description(desc_path)
    plan = _Plan.of(desc)
    _check_layout(root, [plan.tag(s) for s in range(plan.num_shards)])
    if desc["status"] != "complete":
        _missing_shards(root, plan.num_shards)
    with _ExportLock(root) as lock:
        if not lock.acquire_folder(exclusive=True, wait=wait):
            raise _busy(root, "another process is exporting into, selecting or verifying it")
        desc = _read_description(desc_path)  # another process may have finished it
        if desc["status"] == "complete":
            _finish_cleanup(root)
        else:
            _missing_shards(root, plan.num_shards)
            _select(root, desc, _Plan.of(desc))
    sel = desc["selection"]
    return ExportSummary(
        root,
        plan.num,
        0,
        plan.num_shards,
        0,
        0,
        True,
        sel["kept"],
        sel["dropped"],
        sel["threshold"],
    )


def _scores(root: Path, plan: _Plan) -> np.ndarray:
    """Pass 1: every candidate's (finite, checked) score."""
    scores = np.zeros(plan.num)
    seen = np.zeros(plan.num, dtype=bool)
    for e in _merged_entries(root, plan):
        seen[e["index"]] = True
        scores[e["index"]] = e["uncertainty"]
    if not seen.all():
        raise ValueError(
            f"{root}: the shard index files miss {int((~seen).sum())} candidates (the first is "
            f"{int(np.flatnonzero(~seen)[0])}); rerun the shards"
        )
    return scores


def _select(root: Path, desc: dict[str, Any], plan: _Plan) -> None:
    num = plan.num
    scores = _scores(root, plan)
    n_drop = num_dropped(num, plan.drop)
    order = np.lexsort((np.arange(num), scores))  # by score, ties by index
    kept = np.zeros(num, dtype=bool)
    kept[order[: num - n_drop]] = True
    # record the decision before deleting anything: a resume must not regenerate
    # candidates whose files this selection already removed
    dropped = [int(i) for i in np.flatnonzero(~kept)]
    atomic_write_bytes(root / _SELECTION, json.dumps({"dropped": dropped}).encode(), tag="merge")
    _remove_temps(root)
    for sub in ("images", "masks"):
        (root / sub).mkdir(exist_ok=True)
        _remove_temps(root / sub)
    index_sha, candidates_sha = _move_and_index(root, plan, kept)
    desc["status"] = "complete"
    desc["selection"] = {
        "candidates": num,
        "dropped": n_drop,
        "kept": num - n_drop,
        "threshold": float(scores[order[num - n_drop - 1]]),
        "rounding": "dropped = floor(drop_uncertain * num)",
        "index_sha256": index_sha,
        "candidates_sha256": candidates_sha,
    }
    atomic_write_bytes(root / "dataset.json", json_bytes(desc), tag="merge")
    fsync_dir(root)
    _finish_cleanup(root)
    log.info(
        "%s: kept %d of %d candidates (dropped the %d most uncertain, threshold %.4g)",
        root,
        num - n_drop,
        num,
        n_drop,
        desc["selection"]["threshold"],
    )


def _move_checked(root: Path, entry: dict[str, Any], tag: str) -> None:
    """Move a kept candidate's staged files into place, each checked against its record."""
    cid = entry["id"]
    staged = _staged_paths(root / _STAGING / tag, cid)
    for key, src, dst in zip(("image", "mask"), staged, _final_paths(root, cid)):
        size, sha = entry.get(f"{key}_bytes"), entry.get(f"{key}_sha256")
        problem = _file_problem(root, src, size, sha)
        if problem is None:
            _move(src, dst)
        elif _file_problem(root, dst, size, sha) is not None:  # nor moved by an earlier run
            raise ValueError(f"{src} {problem}: rerun the export of {tag} to regenerate it")


def _move_and_index(root: Path, plan: _Plan, kept: np.ndarray) -> tuple[str, str]:
    """Pass 2: move kept files, delete dropped ones, write both index files (their sha256)."""
    index_tmp = _tmp_path(root / "index.jsonl", "merge")
    cand_tmp = _tmp_path(root / "candidates.jsonl", "merge")
    h_index, h_cand = hashlib.sha256(), hashlib.sha256()
    with open(index_tmp, "wb") as fi, open(cand_tmp, "wb") as fc:
        for e in _merged_entries(root, plan):
            i, cid = e["index"], e["id"]
            if kept[i]:
                _move_checked(root, e, plan.tag(plan.shard_of(i)))
                data = _line(_final_entry(e))
                fi.write(data)
                h_index.update(data)
            else:
                for p in (root / e["image"], root / e["mask"], *_final_paths(root, cid)):
                    p.unlink(missing_ok=True)
            keys = ("id", "index", "seed", "uncertainty")
            data = _line({**{k: e[k] for k in keys}, "kept": bool(kept[i])})
            fc.write(data)
            h_cand.update(data)
        for f in (fi, fc):
            f.flush()
            os.fsync(f.fileno())
    for sub in ("images", "masks"):
        fsync_dir(root / sub)
    os.replace(index_tmp, root / "index.jsonl")
    os.replace(cand_tmp, root / "candidates.jsonl")
    return h_index.hexdigest(), h_cand.hexdigest()


def _final_entry(e: dict[str, Any]) -> dict[str, Any]:
    cid = e["id"]
    out = {
        "id": cid,
        "index": e["index"],
        "seed": e["seed"],
        "uncertainty": e["uncertainty"],
        "image": f"images/{cid}.png",
        "mask": f"masks/{cid}.png",
        "histogram": e["histogram"],
        "ignored": e["ignored"],
    }
    return out | _file_fields(e)


def _finish_cleanup(root: Path) -> None:
    """Remove what only the generation phase needs (staging, shard indexes, temps)."""
    staging = root / _STAGING
    if staging.is_symlink():
        staging.unlink()
    else:
        shutil.rmtree(staging, ignore_errors=True)
    (root / _SELECTION).unlink(missing_ok=True)
    for p in root.glob("index.shard-*-of-*.jsonl"):
        p.unlink(missing_ok=True)
    _remove_temps(root)
    for sub in ("images", "masks"):
        _remove_temps(root / sub)


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


@dataclass
class _Scan:
    """What checking a finished export found."""

    entries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (line, entry)
    fatal: list[str] = field(default_factory=list)  # what a rerun cannot repair
    damage: list[_Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: int = 0


def _collect(problems: list[str] | None, exc: Exception) -> None:
    """Raise ``exc``, or (when collecting) record it as one problem line."""
    if problems is None:
        raise exc
    problems.append(str(exc))


def _final_index(
    root: Path, plan: _Plan, selection: Mapping[str, Any], problems: list[str] | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """``index.jsonl``'s (line number, entry) pairs, each line checked; errors are raised,
    or collected into ``problems``."""
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
                    _expect_path(root, e, key, f"{key}s/{e['id']}.png", where)
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


def _check_candidates(
    root: Path,
    plan: _Plan,
    selection: Mapping[str, Any],
    kept: set[int] | None,
    problems: list[str],
) -> None:
    """``candidates.jsonl``: every candidate once, in order, kept exactly as indexed
    (``kept``: the indexed candidates, None when ``index.jsonl`` could not be read)."""
    path = root / "candidates.jsonl"
    if not path.is_file():
        problems.append(f"{path}: no such file")
        return
    recorded = selection.get("candidates_sha256")
    if recorded is not None and file_sha256(path) != recorded:
        problems.append(f"{path} differs from the sha256 in dataset.json (damaged)")
        return
    count, marked = 0, set()
    try:
        for n, raw in _jsonl(path):
            where = f"{path}: line {n}"
            e = plan.check_line(parse_json_text(raw, where), CANDIDATES_FIELDS, where)
            if e["index"] != count:
                raise SchemaError(f"{where}: field 'index' must be {count}, got {e['index']}")
            count += 1
            if e["kept"]:
                marked.add(e["index"])
    except ValueError as exc:
        problems.append(str(exc))
        return
    if count != plan.num:
        problems.append(f"{path} lists {count} candidates, not {plan.num}")
    elif kept is not None and marked != kept:
        problems.append(f"{path} marks other candidates as kept than index.jsonl lists")


def _decoded_problem(
    path: Path, mode: str, label_size: Sequence[int] | None, mask_of: Mapping[str, Any] | None
) -> str | None:
    """For files without a recorded hash: mode, size and (masks) the class histogram."""
    try:
        with Image.open(path) as im:
            if im.mode != mode:
                return f"is a {im.mode} PNG, not {mode}"
            arr = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as exc:
        return f"cannot be decoded ({exc})"
    if label_size is not None and list(arr.shape[:2]) != list(label_size):
        return f"has size {list(arr.shape[:2])}, not the label size {list(label_size)}"
    if mask_of is not None:
        valid = arr != IGNORE_INDEX
        hist = np.bincount(arr[valid].ravel(), minlength=len(mask_of["histogram"])).tolist()
        if hist != mask_of["histogram"] or int((~valid).sum()) != mask_of["ignored"]:
            return "does not match its class histogram in index.jsonl (damaged)"
    return None


def _scan_files(root: Path, desc: dict[str, Any], scan: _Scan) -> None:
    unhashed = 0
    for _, e in scan.entries:
        for key, mode in (("image", "RGB"), ("mask", "L")):
            path = root / e[key]
            sha = e.get(f"{key}_sha256")
            problem = _file_problem(root, path, e.get(f"{key}_bytes"), sha)
            if problem is None and sha is None:
                unhashed += 1
                mask_of = e if key == "mask" else None
                problem = _decoded_problem(path, mode, desc["label_size"], mask_of)
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
    scan.entries = _final_index(root, plan, sel, scan.fatal)
    kept = None if scan.fatal else {e["index"] for _, e in scan.entries}
    _check_candidates(root, plan, sel, kept, scan.fatal)
    if sel.get("index_sha256") is None:
        scan.notes.append(f"{root / 'dataset.json'}: no sha256 of the index files (older export)")
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
    by_batch: dict[int, list[_Damage]] = {}
    for d in damage:
        by_batch.setdefault(d.entry["index"] // plan.batch_size, []).append(d)
    bar = tqdm(total=len(damage), desc="repair", unit="file", disable=None if progress else True)
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
    return len(damage)


def _index_files_rebuildable(selection: Mapping[str, Any]) -> bool:
    """Damaged index files can be rebuilt when dataset.json records both their sha256
    (the rebuilt bytes are then checked exactly; older exports recorded none)."""
    return all(selection.get(k) is not None for k in ("index_sha256", "candidates_sha256"))


def _rebuild_index_files(
    root: Path, desc: dict[str, Any], labeler: Labeler, progress: bool
) -> list[str]:
    """Regenerate every candidate (its fixed batch), select again and rebuild
    ``index.jsonl`` and ``candidates.jsonl``; write only those whose rebuilt bytes hash
    to the sha256 in ``dataset.json`` and differ from what is on disk. Returns the names
    written; rebuilt bytes that do not match the record raise (nothing is written)."""
    plan, sel = _Plan.of(desc), desc["selection"]
    entries: list[dict[str, Any]] = []
    bar = tqdm(total=plan.num, desc="rebuild index", unit="img", disable=None if progress else True)
    try:
        for start in range(0, plan.num, plan.batch_size):
            batch = plan.batch_of(start)
            seeds = [sample_seed(plan.seed, 0, i) for i in batch]
            images, masks, scores = _label_batch(labeler, seeds, desc, root)
            for j, i in enumerate(batch):
                enc = _encode(images[j], masks[j], plan.num_classes)
                cid = plan.cid(i)
                entries.append(
                    {
                        "index": i,
                        "id": cid,
                        "seed": seeds[j],
                        "uncertainty": scores[j],
                        "histogram": enc["histogram"],
                        "ignored": enc["ignored"],
                        "image_bytes": len(enc["image"]),
                        "mask_bytes": len(enc["mask"]),
                        "image_sha256": hashlib.sha256(enc["image"]).hexdigest(),
                        "mask_sha256": hashlib.sha256(enc["mask"]).hexdigest(),
                    }
                )
            bar.update(len(batch))
    finally:
        bar.close()
    scores = np.array([e["uncertainty"] for e in entries])
    n_drop = num_dropped(plan.num, plan.drop)
    kept = np.zeros(plan.num, dtype=bool)
    kept[np.lexsort((np.arange(plan.num), scores))[: plan.num - n_drop]] = True
    keys = ("id", "index", "seed", "uncertainty")
    rebuilt = {
        "index.jsonl": b"".join(_line(_final_entry(e)) for e in entries if kept[e["index"]]),
        "candidates.jsonl": b"".join(
            _line({**{k: e[k] for k in keys}, "kept": bool(kept[e["index"]])}) for e in entries
        ),
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


def _rerun_complete(
    root: Path,
    desc: dict[str, Any],
    labeler: Labeler,
    shard: int,
    progress: bool,
) -> ExportSummary:
    """A rerun of a finished export: verify every file, repair what a rerun can."""
    _check_layout(root)
    scan = _scan_complete(root, desc)
    if scan.fatal and _index_files_rebuildable(desc["selection"]):
        # only the index files can be fatal here: rebuild them, then check every file
        log.info("%s: %s; regenerating all candidates to rebuild the index", root, scan.fatal[0])
        _rebuild_index_files(root, desc, labeler, progress)
        scan = _scan_complete(root, desc)
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
    sel, n = desc["selection"], desc["settings"]["num_shards"]
    return ExportSummary(
        root,
        desc["settings"]["num"],
        shard,
        n,
        0,
        0,
        True,
        sel["kept"],
        sel["dropped"],
        sel["threshold"],
        repaired,
    )


def verify_export(out_dir: str | Path) -> VerifyReport:
    """Check a finished export without changing anything: ``dataset.json``, both index
    files (against their recorded sha256) and every image and mask (size and sha256;
    exports made before hashes were recorded: PNG structure, size and mask histogram).

    Returns a :class:`VerifyReport`, one line per problem; rerunning the export command
    repairs damaged or missing sample files, and damaged or missing index files when
    ``dataset.json`` records their sha256 (by regenerating every candidate). Raises
    ``FileNotFoundError`` for a folder without ``dataset.json`` and
    :class:`ExportBusyError` while another process selects or repairs it.
    """
    root = _root(out_dir)
    desc_path = root / "dataset.json"
    if not desc_path.is_file():
        raise FileNotFoundError(f"{desc_path}: no such file (not a dgan_data export)")
    report = VerifyReport(root)
    with _ExportLock(root, readonly=True) as lock:
        if not lock.acquire_folder(exclusive=False, wait=_BRIEF_WAIT_S):
            raise _busy(root, "another process is selecting or repairing it")
        try:
            _check_layout(root)
            desc = _read_description(desc_path)
        except ValueError as exc:
            report.problems.append(str(exc))
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
    report.problems = scan.fatal + [d.describe() for d in scan.damage]
    # index files are rebuilt by a rerun when dataset.json records their sha256
    report.repairable = not scan.fatal or _index_files_rebuildable(desc["selection"])
    return report


# ---------------------------------------------------------------------- read back
class ExportedDataset(Dataset):
    """A finished export as a map-style dataset of ``(image, mask)``.

    ``image``: float32 (3, H, W) in [0, 1]; ``mask``: int64 (H, W), 255 = ignore.
    ``albumentations``: an ``albumentations.Compose`` applied per sample to the uint8
    HWC image and the mask (so masks stay integer and aligned); ``transform``: a
    callable ``(image, mask) -> (image, mask)`` applied to the tensors afterwards.
    Every line of ``index.jsonl`` is checked (schema, paths inside the folder, no
    symlink leading out); :func:`verify_export` checks the files' contents too.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
        albumentations: Any = None,
    ) -> None:
        self.root = _root(root)
        desc_path = self.root / "dataset.json"
        if not desc_path.is_file():
            raise FileNotFoundError(f"{desc_path}: no such file (not a dgan_data export)")
        _check_layout(self.root)
        self.info = _read_description(desc_path)
        if self.info["status"] != "complete":
            raise ValueError(
                f"{desc_path}: the export is not complete (status {self.info['status']!r}); "
                "rerun the export command to finish it"
            )
        index_path = self.root / "index.jsonl"
        lines = _final_index(self.root, _Plan.of(self.info), self.info["selection"])
        for n, e in lines:
            for key in ("image", "mask"):
                if not (self.root / e[key]).is_file():
                    raise FileNotFoundError(
                        f"{self.root / e[key]}: no such file (listed on line {n} of {index_path})"
                    )
        self.entries = [e for _, e in lines]
        self.class_names: list[str] = list(self.info["classes"])
        self.palette = np.asarray(self.info["palette"], dtype=np.uint8)
        size = self.info["label_size"]
        self.label_size = tuple(size) if size is not None else None
        self.transform = transform
        self.albumentations = albumentations

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, rel: str, mode: str) -> np.ndarray:
        path = self.root / rel
        try:
            with Image.open(path) as im:
                if im.mode != mode:
                    raise ValueError(f"{path}: expected a {mode} PNG, got mode {im.mode}")
                arr = np.array(im)
        except (OSError, SyntaxError) as exc:
            raise ValueError(f"{path}: cannot read the PNG ({exc})") from exc
        if self.label_size is not None and arr.shape[:2] != self.label_size:
            raise ValueError(
                f"{path}: size {arr.shape[:2]} differs from the label size "
                f"{self.label_size} in dataset.json"
            )
        return arr

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.entries[i]
        image = self._load(e["image"], "RGB")
        mask = self._load(e["mask"], "L")
        if self.albumentations is not None:
            out = self.albumentations(image=image, mask=mask)
            image, mask = np.array(out["image"]), np.array(out["mask"])
        img_t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        mask_t = torch.from_numpy(np.ascontiguousarray(mask)).long()
        if self.transform is not None:
            return self.transform(img_t, mask_t)
        return img_t, mask_t
