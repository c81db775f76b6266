"""The annotation commands' wording: import-masks names every format in its help, and
merge-annotations counts in the singular where there is one."""

from __future__ import annotations

from test_cli_errors import run
from test_suggest_merge_hint import _annotated_folder


def test_import_masks_help_names_the_palette_format(capsys):
    code, out, _ = run(capsys, "import-masks", "--help")
    assert code == 0
    summary = " ".join(out.split())  # argparse wraps the text
    assert "colour PNGs in the folder's palette" in summary


def test_merging_one_folder_of_one_sample_is_counted_in_the_singular(capsys, tmp_path):
    first = tmp_path / "ann"
    folder = _annotated_folder(first)
    (first / "masks" / f"{folder.ids[1]}.png").unlink()
    argv = ["merge-annotations", str(first), "--skip-unannotated", "--out", str(tmp_path / "o")]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "wrote 1 annotated sample from 1 folder to" in out
