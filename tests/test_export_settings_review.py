"""Export settings a review found handled in silence:

- a rerun or resume with other ``class_names=`` or ``palette=`` was neither refused nor
  applied: the folder kept the first run's, so a resumed export ended with other names
  in ``dataset.json`` than the uninterrupted run of the same call;
- a float32 ``drop_uncertain`` (numpy scalar or tensor) was widened to
  0.699999988... before the decimal rule, dropping one candidate too few.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_cli_errors import run

from dgan_data.export import ExportDamagedError, ExportedDataset, export_dataset
from dgan_data.uncertainty import StreamingQuantile, num_dropped

NAMES = [f"part{i}" for i in range(14)]


def test_a_resume_with_other_class_names_or_palette_is_refused(tmp_path):
    folder = tmp_path / "data"
    export_dataset("toyface-14", 8, folder, progress=False, merge=False)  # interrupted
    with pytest.raises(ValueError, match=r"was written with classes background, skin, .* "
                       r"asks for part0, part1, .* resume with the same class_names="):  # fmt: skip
        export_dataset("toyface-14", 8, folder, progress=False, class_names=NAMES)
    with pytest.raises(ValueError, match=r"resume with the same palette="):
        other = [[k, 2, 3] for k in range(14)]  # one colour per class, as palettes must be
        export_dataset("toyface-14", 8, folder, progress=False, palette=other)
    assert export_dataset("toyface-14", 8, folder, progress=False).complete
    with pytest.raises(ValueError, match="resume with the same class_names="):  # finished too
        export_dataset("toyface-14", 8, folder, progress=False, class_names=NAMES)
    assert ExportedDataset(folder).class_names[0] == "background"
    named = tmp_path / "named"  # the same names again: resumes
    export_dataset("toyface-14", 8, named, progress=False, merge=False, class_names=NAMES)
    assert export_dataset("toyface-14", 8, named, progress=False, class_names=NAMES).complete
    assert ExportedDataset(named).class_names == NAMES


@pytest.mark.parametrize(
    "fraction",
    [
        np.float32(0.7),
        np.float16(0.7),
        torch.tensor(0.7),
        torch.tensor(0.7, dtype=torch.float16),  # 0.7001953 through float32
        torch.tensor(0.7, dtype=torch.bfloat16),  # 0.69921875: dropped 6 of 10
        np.float64(0.7),
        0.7,
    ],
)
def test_a_float32_fraction_counts_as_the_decimal_it_prints_as(fraction):
    assert num_dropped(10, fraction) == 7
    assert StreamingQuantile(fraction).drop_fraction == 0.7
    assert num_dropped(100, np.float32(0.29)) == 29


def test_an_export_with_a_float32_fraction_drops_as_with_the_decimal(tmp_path):
    summary = export_dataset("toyface-14", 10, tmp_path / "d", progress=False,
                             drop_uncertain=np.float32(0.7))  # fmt: skip
    assert summary.complete and len(ExportedDataset(tmp_path / "d")) == 3


def test_reading_a_hand_edited_export_is_refused(capsys, tmp_path):
    # verify and a rerun refused it; ExportedDataset (and so preview --export and every
    # training script) read the edited class names in silence
    folder = tmp_path / "data"
    export_dataset("toyface-14", 8, folder, progress=False)
    path = folder / "dataset.json"
    info = json.loads(path.read_text())
    info["classes"][1] = "sky"
    path.write_text(json.dumps(info, indent=2))
    with pytest.raises(ExportDamagedError, match=r"dataset\.json was edited after the export"):
        ExportedDataset(folder)
    code, _, err = run(capsys, "preview", "--export", str(folder), "--out",
                       str(tmp_path / "p.png"))  # fmt: skip
    assert code == 2 and "was edited after the export finished" in err
