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

from .dataset import ExportedDataset
from .generate import export_dataset, shard_candidates
from .records import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_NUM,
    ExportBusyError,
    ExportDamagedError,
    ExportSummary,
    NotAnExportError,
    VerifyReport,
    num_dropped,
)
from .select import merge_shards
from .verify import verify_export

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_NUM",
    "ExportBusyError",
    "ExportDamagedError",
    "ExportSummary",
    "ExportedDataset",
    "NotAnExportError",
    "VerifyReport",
    "export_dataset",
    "merge_shards",
    "num_dropped",
    "shard_candidates",
    "verify_export",
]
