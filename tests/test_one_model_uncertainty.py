"""An interpreter of one model has no ensemble disagreement: its JS uncertainty is 0 at
every pixel. Export then dropped its last candidates by index while reporting them as
"the most uncertain", the stream's filter did nothing and preview drew a blank row, all
without a word. Each now says so once, before it starts."""

from __future__ import annotations

import json
import logging

import pytest
from test_cli_errors import run

from dgan_data import DatasetGANStream, export_dataset, load_interpreter, preview
from dgan_data.presets import resolve_preset_file

ANNOTATIONS = resolve_preset_file("toyface-14", "interpreter").parent / "annotations"
WARNING = "the interpreter has one model, so its uncertainty"


@pytest.fixture(scope="module")
def one_model(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("one") / "one.safetensors"
    from dgan_data.cli import main

    argv = ["fit", "--generator", "toyface-14", "--annotations", str(ANNOTATIONS), "--out",
            str(out), "--num-models", "1", "--max-steps", "2", "--skip-validation",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert load_interpreter(out).num_models == 1
    return str(out)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]


def test_export_says_its_drop_follows_the_index(caplog, tmp_path, one_model):
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        export_dataset(None, 10, tmp_path / "d", generator="toyface-14",
                       interpreter=one_model, progress=False)  # fmt: skip
    (message,) = _warnings(caplog)
    assert "drop_uncertain=0.1 drops 1 of 10 candidates by their index" in message
    assert "--drop-uncertain 0" in message
    # what the warning says is what happened: every score is 0 and the last one went
    lines = [json.loads(x) for x in (tmp_path / "d" / "candidates.jsonl").read_text().split()]
    assert {x["uncertainty"] for x in lines} == {0.0}
    assert [x["index"] for x in lines if not x["kept"]] == [9]


def test_the_export_summary_and_its_record_say_the_drop_was_by_index(tmp_path, one_model):
    """The command printed "(1 most uncertain dropped)" after the warning said otherwise."""
    summary = export_dataset(None, 10, tmp_path / "d", generator="toyface-14",
                             interpreter=one_model, progress=False)  # fmt: skip
    assert summary.tied is True
    record = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert record["selection"]["tied_at_cutoff"] is True
    again = export_dataset(None, 10, tmp_path / "d", generator="toyface-14",
                           interpreter=one_model, progress=False)  # fmt: skip
    assert again.tied is True  # a rerun of the finished export reads the record


def test_the_export_command_prints_the_drop_by_index(capsys, tmp_path, one_model):
    out_dir = tmp_path / "d"
    argv = ["export", "toyface-14", "--interpreter", one_model, "--num", "10",
            "--batch-size", "5", "--out", str(out_dir), "--no-progress"]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "1 dropped, by index where their scores tie" in out and "most uncertain" not in out


def test_an_ensemble_export_still_drops_the_most_uncertain(tmp_path):
    summary = export_dataset("toyface-14", 10, tmp_path / "d", progress=False)
    assert summary.tied is False
    scores = [json.loads(x) for x in (tmp_path / "d" / "candidates.jsonl").read_text().split()]
    dropped = [x["uncertainty"] for x in scores if not x["kept"]]
    assert min(dropped) > max(x["uncertainty"] for x in scores if x["kept"])


def test_export_without_a_drop_says_nothing(caplog, tmp_path, one_model):
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        export_dataset(None, 4, tmp_path / "d", generator="toyface-14", interpreter=one_model,
                       drop_uncertain=0, progress=False)  # fmt: skip
    assert not _warnings(caplog)


def test_stream_says_its_filters_do_nothing(caplog, one_model):
    stream = DatasetGANStream(generator="toyface-14", interpreter=one_model,
                              samples_per_epoch=4, ignore_uncertain_pixels=0.01)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        masks = [mask for _, mask in stream]
    (message,) = _warnings(caplog)
    assert "drop_uncertain=0.1 drops nothing" in message
    assert "ignore_uncertain_pixels ignores no pixel" in message
    assert len(masks) == 4 and all((m != 255).all() for m in masks)
    assert stream.statistics()["kept_by_uncertainty"] == 1.0


def test_preview_says_its_uncertainty_row_is_blank(caplog, tmp_path, one_model):
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        preview(None, 2, tmp_path / "p.png", generator="toyface-14", interpreter=one_model)
    (message,) = _warnings(caplog)
    assert "the uncertainty row is blank" in message


def test_an_ensemble_gets_no_warning(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        list(DatasetGANStream("toyface-14", samples_per_epoch=2))
        export_dataset("toyface-14", 4, tmp_path / "e", progress=False)
    assert not _warnings(caplog)
