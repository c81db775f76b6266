"""Merging shard indexes and the global selection that drops the most uncertain candidates."""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..conventions import keyword_hints
from ..fileio import (
    atomic_write_bytes,
    fsync_dir,
    json_bytes,
    naming_the_file,
    parse_json_text,
)
from ..schema import SchemaError
from .lock import _busy, _ExportLock
from .records import (
    _BRIEF_WAIT_S,
    _SELECTION,
    _STAGING,
    INDEX_FIELDS,
    ExportSummary,
    _check_layout,
    _description_path,
    _expect_path,
    _file_fields,
    _file_problem,
    _final_paths,
    _jsonl,
    _jsonl_blocks,
    _line,
    _Plan,
    _read_description,
    _remove_temps,
    _root,
    _shard_index_path,
    _staged_paths,
    _tmp_path,
    description_sha256,
    num_dropped,
)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------- select
def _iter_shard_index(
    root: Path, plan: _Plan, shard: int, block: int | None = None
) -> Iterator[dict[str, Any]]:
    """A shard index's lines, each checked: schema, shard, order, staged paths inside.

    With ``block``, the file is read that many lines at a time and closed in between.
    """
    path = _shard_index_path(root, shard, plan.num_shards)
    tag, last = plan.tag(shard), -1
    lines = _jsonl(path) if block is None else _jsonl_blocks(path, block)
    for n, raw in lines:
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


# lines a merge buffers over all its shard readers (a few MB): bounds memory, while the
# readers open their files only between blocks, so the open files stay bounded too
_MERGE_BUFFER_LINES = 1 << 14


def _merge_block(num_shards: int) -> int:
    """Lines each shard reader takes per opening of its file."""
    return max(1, _MERGE_BUFFER_LINES // num_shards)


def _all_entries(root: Path, plan: _Plan) -> Iterator[dict[str, Any]]:
    """All shard index entries, shard after shard: one file open at a time."""
    for s in range(plan.num_shards):
        yield from _iter_shard_index(root, plan, s)


def _merged_entries(root: Path, plan: _Plan) -> Iterator[dict[str, Any]]:
    """All shard index entries in candidate order (each file is sorted; k-way merge).

    Each shard's reader closes its file between blocks of lines: one file open per
    shard would exceed the usual limit of 1,024 open files with over a thousand shards.
    """
    block = _merge_block(plan.num_shards)
    shards = (_iter_shard_index(root, plan, s, block) for s in range(plan.num_shards))
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


@keyword_hints
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
    desc_path = _description_path(root, "not an export folder")
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
        tied=sel.get("tied_at_cutoff"),
    )


def _scores(root: Path, plan: _Plan) -> np.ndarray:
    """Pass 1: every candidate's (finite, checked) score, stored by index (so read in
    any order)."""
    scores = np.zeros(plan.num)
    seen = np.zeros(plan.num, dtype=bool)
    for e in _all_entries(root, plan):
        seen[e["index"]] = True
        scores[e["index"]] = e["uncertainty"]
    if not seen.all():
        raise ValueError(
            f"{root}: the shard index files miss {int((~seen).sum())} candidates (the first is "
            f"{int(np.flatnonzero(~seen)[0])}); rerun the shards"
        )
    return scores


def _selection(scores: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray, int]:
    """The selection rule: (kept mask, candidates ordered by score with ties by index,
    number dropped): the ``num_dropped`` highest scores go."""
    num = plan.num
    n_drop = num_dropped(num, plan.drop)
    order = np.lexsort((np.arange(num), scores))  # by score, ties by index
    kept = np.zeros(num, dtype=bool)
    kept[order[: num - n_drop]] = True
    return kept, order, n_drop


def _candidate_line(entry: dict[str, Any], kept: bool) -> bytes:
    """A line of ``candidates.jsonl``."""
    keys = ("id", "index", "seed", "uncertainty")
    return _line({**{k: entry[k] for k in keys}, "kept": bool(kept)})


def _select(root: Path, desc: dict[str, Any], plan: _Plan) -> None:
    num = plan.num
    scores = _scores(root, plan)
    kept, order, n_drop = _selection(scores, plan)
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
        "tied_at_cutoff": _tied_at_cutoff(scores, order, n_drop),
        "rounding": "dropped = floor(drop_uncertain * num)",
        "index_sha256": index_sha,
        "candidates_sha256": candidates_sha,
    }
    desc["selection"]["description_sha256"] = description_sha256(desc)
    atomic_write_bytes(root / "dataset.json", json_bytes(desc), tag="merge")
    fsync_dir(root)
    _finish_cleanup(root)
    log.info(
        "%s: kept %d of %d candidates (%s, threshold %.4g)",
        root,
        num - n_drop,
        num,
        dropped_phrase(n_drop, desc["selection"]["tied_at_cutoff"]),
        desc["selection"]["threshold"],
    )


def _tied_at_cutoff(scores: np.ndarray, order: np.ndarray, n_drop: int) -> bool:
    """Whether the lowest dropped score equals the highest kept one: the rule then chose
    among equal scores by index (every score of a one-model interpreter is 0)."""
    num = len(scores)
    return bool(0 < n_drop < num and scores[order[num - n_drop]] == scores[order[num - n_drop - 1]])


def dropped_phrase(n_drop: int, tied: bool | None) -> str:
    """How the dropped candidates were chosen, for messages: "the N most uncertain
    dropped" unless the cutoff fell among equal scores (then those tied went by index;
    "N dropped by index" overstated it when only some of the N tied)."""
    if tied:
        return (
            f"{n_drop} dropped, by index where their scores tie with kept ones "
            "(no uncertainty to rank them)"
        )
    return f"{n_drop} most uncertain dropped"


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
    with naming_the_file(root), open(index_tmp, "wb") as fi, open(cand_tmp, "wb") as fc:
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
            data = _candidate_line(e, kept[i])
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
