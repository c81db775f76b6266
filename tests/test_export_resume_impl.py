"""Export settings a review found unrecorded or unevenly read:

- the interpreter's inference path (``impl``: "rows" or "interpolate", "auto" picks by
  device) changes labels and scores by float rounding, yet was not recorded, so a
  resume with the other path (or on another kind of device) finished a folder that
  mixed two datasets;
- ``truncation_psi=np.float32(0.7)`` was recorded as 0.699999988, and a resume asking
  for 0.7 (``--truncation 0.7``) was refused;
- a 0-d float64 tensor ``drop_uncertain`` was refused while float32 ones were taken;
- a cutoff among equal scores was reported as "N dropped by index" even where only some
  of the N tied (the others went by uncertainty).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dgan_data.conventions import check_truncation_psi
from dgan_data.export import ExportedDataset, export_dataset
from dgan_data.export.select import dropped_phrase


def _settings(folder) -> dict:
    return json.loads((folder / "dataset.json").read_text())["settings"]


def test_the_inference_path_is_recorded_and_a_resume_on_the_other_is_refused(tmp_path):
    folder = tmp_path / "data"
    export_dataset("toyface-14", 6, folder, progress=False, merge=False)  # interrupted
    assert _settings(folder)["impl"] == "rows"  # "auto" on the CPU
    with pytest.raises(ValueError, match=r"impl='rows', this export asks for "
                       r"impl='interpolate' \(impl 'auto' is interpolate on CUDA"):  # fmt: skip
        export_dataset("toyface-14", 6, folder, progress=False, impl="interpolate")
    assert export_dataset("toyface-14", 6, folder, progress=False, impl="rows").complete


def test_the_paths_do_give_other_files(tmp_path):
    """Why the path is a setting: the same export through each differs."""
    rows, interp = tmp_path / "rows", tmp_path / "interp"
    export_dataset("toyface-14", 6, rows, progress=False, impl="rows")
    export_dataset("toyface-14", 6, interp, progress=False, impl="interpolate")
    a, b = (json.loads((f / "dataset.json").read_text())["selection"] for f in (rows, interp))
    assert a["candidates_sha256"] != b["candidates_sha256"]
    assert _settings(interp)["impl"] == "interpolate"


def test_an_export_made_before_the_field_still_resumes(tmp_path):
    folder = tmp_path / "data"
    export_dataset("toyface-14", 6, folder, progress=False, merge=False)
    desc = json.loads((folder / "dataset.json").read_text())
    del desc["settings"]["impl"]
    (folder / "dataset.json").write_text(json.dumps(desc))
    assert export_dataset("toyface-14", 6, folder, progress=False).complete
    assert len(ExportedDataset(folder)) == 6 - int(0.1 * 6)


def test_a_float32_truncation_is_recorded_as_the_decimal_it_prints_as(tmp_path):
    assert check_truncation_psi(np.float32(0.7)) == 0.7
    assert check_truncation_psi(torch.tensor(0.7)) == 0.7
    folder = tmp_path / "data"
    export_dataset(
        "toyface-14", 6, folder, progress=False, merge=False, truncation_psi=np.float32(0.7)
    )
    assert _settings(folder)["truncation_psi"] == 0.7
    assert export_dataset("toyface-14", 6, folder, progress=False, truncation_psi=0.7).complete


def test_a_float64_tensor_fraction_is_taken_like_a_float32_one(tmp_path):
    folder = tmp_path / "data"
    drop = torch.tensor(0.5, dtype=torch.float64)
    summary = export_dataset("toyface-14", 6, folder, progress=False, drop_uncertain=drop)
    assert summary.complete and _settings(folder)["drop_uncertain"] == 0.5
    assert len(ExportedDataset(folder)) == 3


def test_a_partial_tie_is_not_reported_as_all_dropped_by_index():
    phrase = dropped_phrase(3, True)
    assert "3 dropped by index" not in phrase
    assert phrase.startswith("3 dropped, by index where their scores tie with kept ones")
    assert dropped_phrase(3, False) == "3 most uncertain dropped"
