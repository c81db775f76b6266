"""The annotation loop on the command line, as a review walked it:

- ``--skip-unannotated`` left out a mask drawn but saved as JPEG (or ``.PNG``) as
  "no mask yet", losing it in silence (the hint came only without the flag);
- ``suggest --skip-unannotated`` gave its picks the ids (and could give them the seeds)
  of samples listed but not drawn yet, so the two folders no longer merged once those
  were drawn;
- ``import-masks`` named the fit command with an unquoted folder and no generator.
"""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from PIL import Image
from test_cli_errors import run

from dgan_data import Annotations
from dgan_data.annotations import AnnotationError


def _draw(folder, *ids):
    for sample_id in ids:
        mask = np.zeros((64, 64), np.uint8)
        mask[20:40, 20:40] = 1
        Image.fromarray(mask, "L").save(folder / "masks" / f"{sample_id}.png")


def _sample(capsys, folder, num=3):
    code, _, err = run(capsys, "sample", "toyface-14", "--num", str(num), "--out", str(folder))
    assert code == 0, err


@pytest.mark.parametrize(
    ("saved_as", "hint"),
    [("00001.jpg", "00001.jpg is there, but only PNG is read"),
     ("00001.PNG", "00001.PNG is there: file names are case-sensitive; rename it to 00001.png")],
)  # fmt: skip
def test_a_mask_saved_otherwise_is_an_error_with_skip_unannotated(capsys, tmp_path, saved_as,
                                                                  hint):  # fmt: skip
    folder = tmp_path / "ann"
    _sample(capsys, folder)
    _draw(folder, "00000", "00001")
    (folder / "masks" / "00001.png").rename(folder / "masks" / saved_as)
    for skip in (False, True):
        with pytest.raises(AnnotationError, match=f"masks/00001.png: missing \\({hint}"):
            Annotations.load(folder, skip_unannotated=skip)
    (folder / "masks" / saved_as).unlink()  # not drawn at all: left out, as before
    assert Annotations.load(folder, skip_unannotated=True).ids == ["00000"]


def test_suggest_skipping_undrawn_samples_keeps_their_ids_and_seeds(capsys, tmp_path):
    first, second = tmp_path / "q", tmp_path / "qn"
    code, _, err = run(capsys, "suggest", "toyface-14", "--num", "3", "--pool", "8",
                       "--out", str(first))  # fmt: skip
    assert code == 0, err
    _draw(first, "s00001", "s00002")  # s00000 not drawn yet
    code, _, err = run(capsys, "suggest", "toyface-14", "--annotations", str(first),
                         "--skip-unannotated", "--num", "2", "--pool", "8",
                         "--out", str(second))  # fmt: skip
    assert code == 0, err
    listed = json.loads((first / "manifest.json").read_text())["samples"]
    picks = json.loads((second / "manifest.json").read_text())["samples"]
    assert [p["id"] for p in picks] == ["s200000", "s200001"]  # s00000 is taken
    assert not {p["seed"] for p in picks} & {s["seed"] for s in listed}
    _draw(first, "s00000")
    _draw(second, "s200000", "s200001")
    code, _, err = run(capsys, "merge-annotations", str(first), str(second),
                       "--out", str(tmp_path / "all"))  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "suggest", "toyface-14", "--annotations", str(first),
                       "--id-prefix", "s", "--num", "1", "--pool", "8",
                       "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "try --id-prefix s2" in err


def test_import_masks_names_a_fit_command_quoted_for_the_shell(capsys, tmp_path):
    folder = tmp_path / "my ann"
    _sample(capsys, folder, num=1)
    ids = tmp_path / "ids"
    ids.mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8), "L").save(ids / "00000.png")
    code, out, err = run(capsys, "import-masks", "--format", "png", str(ids),
                         "--annotations", str(folder))  # fmt: skip
    assert code == 0, err
    command = out.split("folder check: ok, ready for: ", 1)[1].split("   (", 1)[0]
    words = shlex.split(command)
    assert words[words.index("--annotations") + 1] == str(folder)
    assert words[:2] == ["dgan-data", "fit"] and "--out" in words and "--generator" in words


def test_sample_with_an_id_prefix_but_no_seed_notes_the_shared_images(capsys, tmp_path):
    code, _, err = run(capsys, "sample", "toyface-14", "--num", "2", "--id-prefix", "b",
                       "--out", str(tmp_path / "b"))  # fmt: skip
    assert code == 0 and "--id-prefix without --seed samples from seed 0" in err
    assert "give --seed N" in err
    seeds = [s["seed"] for s in json.loads((tmp_path / "b" / "manifest.json").read_text())[
        "samples"]]  # fmt: skip
    assert seeds == [0, 1]  # the default stays seed 0
    code, _, err = run(capsys, "sample", "toyface-14", "--num", "2", "--id-prefix", "c",
                       "--seed", "16", "--out", str(tmp_path / "c"))  # fmt: skip
    assert code == 0 and "note:" not in err
