"""Scripts users run directly (review): settings that ended in a traceback after the
work, or were ignored, are refused at parse time with one line and exit code 2."""

from __future__ import annotations

import pytest
from example_scripts import assert_one_line, load_example

diagnose = load_example("toy/diagnose", "review2_diagnose")
rebuild = load_example("toy/rebuild", "review2_rebuild")
measure = load_example("toy/measure_suggest_balance", "review2_measure")
deeplab = load_example("train_deeplab", "review2_train_deeplab")


def refused(capsys, parse, argv) -> str:
    with pytest.raises(SystemExit) as info:
        parse(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_diagnose_refuses_too_few_eval_samples_for_its_head_size_groups(capsys, tmp_path):
    # --eval-count 2 trained every student, then failed in min() of an empty group
    err = refused(capsys, diagnose.parse_args, ["--out", str(tmp_path / "d"), "--eval-count", "2"])
    assert_one_line(err, "--eval-count", "3..")
    args = diagnose.parse_args(["--out", str(tmp_path / "d"), "--eval-count", "3"])
    assert args.eval_count == 3


def test_diagnose_refuses_a_preset_or_interpreter_of_other_classes(capsys, tmp_path):
    # its labels were scored as toy class ids after the students had trained
    err = refused(
        capsys, diagnose.parse_args, ["--out", str(tmp_path / "d"), "--preset", "celeba-19"]
    )
    assert_one_line(err, "--preset celeba-19", "not the toy classes")

    from dgan_data import Interpreter, load_generator
    from dgan_data.interpreter import feature_layout

    G = load_generator("toyface-14")
    names = ["background", *(f"part{i}" for i in range(18))]
    other = tmp_path / "other.safetensors"
    Interpreter(feature_layout(G), 19, num_models=1, hidden=(4, 4),
                label_size=G.resolution, class_names=names).save(other)  # fmt: skip
    argv = ["--out", str(tmp_path / "d"), "--interpreter", str(other)]
    assert_one_line(
        refused(capsys, diagnose.parse_args, argv), "--interpreter", "not the toy classes"
    )


@pytest.mark.parametrize("script", ["bench_context", "bench_stream_modes"])
def test_benchmarks_refuse_an_unknown_or_uninstalled_preset(capsys, script):
    from test_bench_counts import load_benchmark

    parse = load_benchmark(script).parse_args
    assert_one_line(refused(capsys, parse, ["--preset", "nope"]), "--preset nope", "unknown preset")
    assert_one_line(refused(capsys, parse, ["--preset", "celeba-19"]), "--preset celeba-19")
    assert parse([]).preset == "toyface-14"


@pytest.mark.parametrize("flag", ["--work", "--assets"])
def test_rebuild_refuses_a_folder_under_a_file(capsys, tmp_path, flag):
    (tmp_path / "afile").write_text("x")
    err = refused(capsys, rebuild.parse_args, [flag, str(tmp_path / "afile" / "sub")])
    assert_one_line(err, flag, "is a file, not a folder")  # was NotADirectoryError from mkdir


def test_train_deeplab_refuses_rank_json_without_json(capsys):
    base = ["--preset", "toyface-14", "--eval-toy-test", "5"]
    err = refused(capsys, deeplab.parse_args, [*base, "--rank-json"])  # wrote nothing before
    assert_one_line(err, "--rank-json", "--json")
    assert deeplab.parse_args([*base, "--rank-json", "--json", "r.json"]).rank_json


@pytest.mark.parametrize("content", ["{bad", "[1]"])
def test_measure_names_a_damaged_results_file(capsys, tmp_path, content):
    (tmp_path / "results.json").write_text(content)
    code = measure.main(["--out", str(tmp_path), "--parts", "balance", "--reps", "1"])
    assert code == 2
    assert_one_line(capsys.readouterr().err, "results.json", "measure_suggest_balance.py")
