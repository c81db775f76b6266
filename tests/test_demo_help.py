"""`dgan-data demo --help` states the numbers the demo's configurations use (it said the
learning curve used 200 validation renders under --quick too, and 2 stream workers by
default where --quick, --stream-pool and a GPU use none)."""

from __future__ import annotations

from test_cli_errors import run

from dgan_data.downstream.demo import DemoConfig


def _help(capsys) -> str:
    code, out, _ = run(capsys, "demo", "--help")
    assert code == 0
    return " ".join(out.split())  # argparse wraps the lines


def _option(text: str, flag: str) -> str:
    """The help of ``flag``: from its name to the next option's."""
    start = text.index(f"{flag} ", text.index("options:"))  # not the usage line
    end = text.find(" --", start + len(flag) + 1)
    return text[start:end]


def test_quick_help_states_the_quick_configuration(capsys):
    quick = DemoConfig.quick_config()
    text = _option(_help(capsys), "--quick")
    assert f"{quick.steps} steps of {quick.batch_size} images" in text
    assert f"{quick.test_count} test images" in text
    assert f"{quick.validation_count} validation renders" in text
    assert "no stream workers" in text and quick.stream_workers == 0


def test_eval_every_help_states_both_validation_counts(capsys):
    text = _option(_help(capsys), "--eval-every")
    assert f"{DemoConfig().validation_count} validation renders" in text
    assert f"({DemoConfig.quick_config().validation_count} with --quick" in text


def test_full_help_states_the_full_configuration(capsys):
    full = DemoConfig.full_config()
    text = _option(_help(capsys), "--full")
    assert f"{full.steps:,} steps x {full.batch_size}" in text
    assert f"{full.test_count:,} test renders" in text
    assert f"every {full.eval_every} steps" in text


def test_stream_workers_help_names_where_the_default_is_none(capsys):
    text = _option(_help(capsys), "--stream-workers")
    assert "0 on a GPU, with --stream-pool or --quick" in text
