"""Review of ``suggest_annotations`` / ``write_suggestions``:

- a report written with another generator (same classes) made a folder of that
  generator's images, which the report's reasons do not describe;
- ``exclude_seeds`` of floats (a JSON round trip) left nothing out, silently, a string
  was read letter by letter, and too many excluded seeds were blamed on annotations that
  were never given;
- writing into an existing annotation folder rewrote its manifest and images.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from test_stream import random_interpreter, tiny_generator
from test_suggest_review import NAMES, labeler  # noqa: F401

from dgan_data.labeler import Labeler
from dgan_data.suggest import candidate_seeds, suggest_annotations, write_suggestions

WEIGHTS = (1.0, 1.0, 0.5, 0.0)


@pytest.fixture(scope="module")
def report(labeler):  # noqa: F811
    return suggest_annotations(labeler, 2, pool=4, seed=3, weights=WEIGHTS)


def _bytes_of(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_report_is_not_written_with_another_generator(labeler, report, tmp_path):  # noqa: F811
    other = tiny_generator()
    with torch.no_grad():
        next(other.parameters()).add_(0.5)
    assert other.fingerprint() != labeler.G.fingerprint()
    with pytest.raises(ValueError, match=r"differs .* in generator_fingerprint"):
        write_suggestions(Labeler(other, labeler.interpreter, device="cpu"), report, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_report_is_not_written_with_another_interpreter(labeler, report, tmp_path):  # noqa: F811
    interp = random_interpreter(labeler.G, num_classes=5)
    interp.class_names = list(NAMES)
    with torch.no_grad():
        next(interp.parameters()).add_(0.5)
    with pytest.raises(ValueError, match="interpreter_fingerprint"):
        write_suggestions(Labeler(labeler.G, interp, device="cpu"), report, tmp_path / "o")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("floats", TypeError),
        (np.array([1.0, 2.0]), TypeError),
        ("abc", TypeError),
        (None, TypeError),
        (7, TypeError),
        ([-1], ValueError),
    ],
)
def test_exclude_seeds_must_be_seeds(labeler, value, error):  # noqa: F811
    if isinstance(value, str) and value == "floats":
        value = [float(s) for s in candidate_seeds(0, 3)]
    with pytest.raises(error, match=r"^exclude_seeds: "):
        suggest_annotations(labeler, 1, pool=3, weights=WEIGHTS, exclude_seeds=value)


def test_excluded_seeds_are_named_as_such_when_too_many(labeler):  # noqa: F811
    seeds = candidate_seeds(0, 3)
    with pytest.raises(ValueError) as err:
        suggest_annotations(labeler, 1, pool=3, weights=WEIGHTS, exclude_seeds=seeds)
    assert str(err.value).startswith("exclude_seeds names 3 of the pool's 3 candidates")
    assert "existing annotations" not in str(err.value)
    report = suggest_annotations(labeler, 1, pool=3, weights=WEIGHTS, exclude_seeds=seeds[:2])
    assert [s.seed for s in report.suggestions] == [seeds[2]] and report.excluded == 2


def test_an_annotation_folder_is_not_rewritten(labeler, report, tmp_path):  # noqa: F811
    other = suggest_annotations(labeler, 2, pool=4, seed=11, weights=WEIGHTS)
    root = tmp_path / "ann"
    write_suggestions(labeler, other, root, preview=False)
    (root / "masks" / "s00000.png").write_bytes(b"the annotator's work")
    kept = _bytes_of(root)
    with pytest.raises(ValueError, match=r"ann: is not empty and holds no earlier write"):
        write_suggestions(labeler, report, root, preview=False)
    assert _bytes_of(root) == kept
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"other: is not empty"):
        write_suggestions(labeler, report, tmp_path / "other", preview=False)


def test_an_interrupted_write_is_resumed(labeler, report, tmp_path):  # noqa: F811
    whole = tmp_path / "whole"
    write_suggestions(labeler, report, whole, preview=False)
    cut = tmp_path / "cut"
    write_suggestions(labeler, report, cut, preview=False)
    (cut / "suggestions.json").unlink()
    next((cut / "images").iterdir()).unlink()
    write_suggestions(labeler, report, cut, preview=False)
    assert _bytes_of(cut) == _bytes_of(whole)
