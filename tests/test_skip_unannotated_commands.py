"""``--skip-unannotated`` on ``dgan-data suggest --annotations`` and
``dgan-data merge-annotations``: a round of picks drawn part of the way joins the first
folder (and a half-drawn folder guides the next picks) without deleting manifest
entries by hand; without the flag a missing mask is still an error that names it."""

from __future__ import annotations

import json
import logging

from test_cli_errors import run
from test_suggest_merge_hint import _annotated_folder, _draw_masks

SUGGEST = ["suggest", "--generator", "toyface-14", "--interpreter", "toyface-14",
           "--num", "2", "--pool", "4", "--weights", "1", "1", "0.5", "0"]  # fmt: skip


def _ids(folder):
    return [s["id"] for s in json.loads((folder / "manifest.json").read_text())["samples"]]


def test_merge_joins_the_drawn_picks_and_leaves_out_the_others(capsys, caplog, tmp_path):
    first, picks = tmp_path / "ann", tmp_path / "next"
    _annotated_folder(first)
    code, _, err = run(capsys, *SUGGEST, "--annotations", str(first), "--out", str(picks))
    assert code == 0, err
    drawn, undrawn = _ids(picks)
    _draw_masks(picks, [drawn])

    argv = ["merge-annotations", str(first), str(picks)]
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "refused"))
    assert code == 2 and f"masks/{undrawn}.png" in err and "--skip-unannotated" in err
    assert not (tmp_path / "refused").exists()

    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        code, out, err = run(capsys, *argv, "--skip-unannotated", "--out", str(tmp_path / "all"))
    assert code == 0, err
    assert "wrote 3 annotated samples from 2 folders" in out
    assert f"left out: {undrawn}" in caplog.text  # the left-out pick is named
    assert _ids(tmp_path / "all") == [*_ids(first), drawn]
    assert len(list((tmp_path / "all" / "masks").glob("*.png"))) == 3


def test_suggest_reads_a_half_drawn_annotation_folder(capsys, tmp_path):
    first = tmp_path / "ann"
    folder = _annotated_folder(first)
    (first / "masks" / f"{folder.ids[1]}.png").unlink()

    code, _, err = run(capsys, *SUGGEST, "--annotations", str(first), "--out", str(tmp_path / "a"))
    assert code == 2 and f"masks/{folder.ids[1]}.png" in err and "--skip-unannotated" in err

    code, out, err = run(
        capsys, *SUGGEST, "--annotations", str(first), "--skip-unannotated",
        "--out", str(tmp_path / "b"),
    )  # fmt: skip
    assert code == 0, err
    assert len(_ids(tmp_path / "b")) == 2
    # the printed merge command carries the flag: the first folder still lacks a mask
    assert out.rstrip().endswith("--out ALL --skip-unannotated")
