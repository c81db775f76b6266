"""Error messages name what the user gave: the target of a failed rename (not the temp
file beside it), the parent of an unknown nested field, and the true defaults in a
benchmark's ``--help``."""

from __future__ import annotations

import pytest
from test_bench_counts import load_benchmark

from dgan_data.fileio import atomic_write_bytes
from dgan_data.schema import Dict, Int, SchemaError, check_document


def test_a_rename_onto_a_folder_names_the_target_not_the_temp_file(tmp_path):
    target = tmp_path / "out.json"
    (target / "inside").mkdir(parents=True)  # a non-empty folder where the file goes
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, b"{}")
    assert info.value.filename == str(target)
    assert info.value.filename2 is None
    assert ".tmp" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left


def test_an_unknown_nested_field_names_its_parent():
    schema = {"config": Dict({"size": Int(1)}, allow_unknown=False)}
    with pytest.raises(SchemaError, match=r"doc.json: unknown field\(s\) \['evil'\] in 'config'"):
        check_document({"config": {"size": 3, "evil": 1}}, schema, "doc.json")


def test_an_unknown_top_level_field_names_no_parent():
    with pytest.raises(SchemaError) as info:
        check_document({"size": 3, "evil": 1}, {"size": Int(1)}, "doc.json", allow_unknown=False)
    assert " in '" not in str(info.value)
    assert "['evil']" in str(info.value)


def test_bench_stream_help_states_the_quick_defaults(capsys):
    bench = load_benchmark("bench_stream")
    with pytest.raises(SystemExit):
        bench.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "timed batches (default 3; 2 with --quick)" in text
    assert "default 4 (quick: 2)" in text
