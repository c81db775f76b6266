"""`dgan-data demo --help` states the numbers the demo's configurations use (it said the
learning curve used 200 validation renders under --quick too, and 2 stream workers by
default where --quick, --stream-pool and a GPU use none)."""

from __future__ import annotations

import pytest
from test_cli_errors import run

from dgan_data.downstream.demo import DemoConfig


@pytest.fixture(autouse=True)
def _wide_help(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wrapping: argparse breaks long words such as --stream-pool at their hyphens."""
    monkeypatch.setenv("COLUMNS", "1000")


def _option(capsys, flag: str) -> str:
    """The help of ``flag`` in ``demo --help``: its lines up to the next option's, joined
    (argparse wraps them)."""
    code, out, _ = run(capsys, "demo", "--help")
    assert code == 0
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"{flag} "))
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("-")),
        len(lines),
    )
    return " ".join(" ".join(lines[start:end]).split())


def test_quick_help_states_the_quick_configuration(capsys):
    quick = DemoConfig.quick_config()
    text = _option(capsys, "--quick")
    assert f"{quick.steps} steps of {quick.batch_size} images" in text
    assert f"{quick.test_count} test images" in text
    assert f"{quick.validation_count} validation renders" in text
    assert "no stream workers" in text and quick.stream_workers == 0


def test_eval_every_help_states_both_validation_counts(capsys):
    text = _option(capsys, "--eval-every")
    assert f"{DemoConfig().validation_count} validation renders" in text
    assert f"({DemoConfig.quick_config().validation_count} with --quick" in text


def test_full_help_states_the_full_configuration(capsys):
    full = DemoConfig.full_config()
    text = _option(capsys, "--full")
    assert f"{full.steps:,} steps x {full.batch_size}" in text
    assert f"{full.test_count:,} test renders" in text
    assert f"every {full.eval_every} steps" in text


def test_stream_workers_help_names_where_the_default_is_none(capsys):
    text = _option(capsys, "--stream-workers")
    assert "0 on a GPU, with --stream-pool or --quick" in text
