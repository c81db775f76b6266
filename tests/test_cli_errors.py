"""The command line on bad input: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan_data import Interpreter, StyleGAN2Generator
from dgan_data.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """The exit code (a parse error's too), stdout and stderr of ``dgan-data argv``."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # refused by the parser
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str, *words: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, "no error message"
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def tiny_generator_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    G = StyleGAN2Generator(16, style_dim=16, n_mlp=1, channels={4: 8, 8: 8, 16: 8})
    G.estimate_average_w(256)
    return G.save(tmp_path_factory.mktemp("g") / "g.safetensors")


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "no-such-preset"],
        ["sample", "--generator", "no-such-preset", "--num", "2", "--out", "{tmp}/s"],
        [
            "fit",
            "--generator",
            "no-such-preset",
            "--annotations",
            "{tmp}",
            "--out",
            "{tmp}/i.safetensors",
        ],
        ["preview", "no-such-preset", "--out", "{tmp}/g.png"],
        ["export", "no-such-preset", "--num", "2", "--out", "{tmp}/e"],
        ["demo", "--preset", "no-such-preset", "--quick", "--out", "{tmp}/d"],
    ],
    ids=lambda a: a[0],
)
def test_unknown_preset_is_one_line_and_exit_2(capsys, tmp_path, argv):
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    one_line_error(err, "no-such-preset")
    assert not any(p.name in ("s", "e", "d", "g.png") for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (
            ["sample", "--generator", "toyface-14", "--num", "2", "--out", "x", "--device", "gpu"],
            "gpu",
        ),
        (["demo", "--threads", "-1"], "-1"),
        (["demo", "--steps", "0"], "0"),
        (["demo", "--lr", "0"], "must be > 0"),
        (["demo", "--lr", "-1"], "must be > 0"),
        (
            [
                "sample",
                "--generator",
                "toyface-14",
                "--num",
                "2",
                "--out",
                "x",
                "--truncation",
                "nan",
            ],
            "nan",
        ),
        (["export", "toyface-14", "--num", "2", "--out", "x", "--drop-uncertain", "1.5"], "1.5"),
        (["export", "toyface-14", "--num", "-3", "--out", "x"], "-3"),
    ],
)
def test_nonsense_values_are_refused_at_parse_time(capsys, argv, word):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err
    # one line naming the subcommand, not argparse's usage block
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dgan-data {argv[0]}: error:"), err
    assert f"see dgan-data {argv[0]} --help" in lines[0]


def test_verbose_works_before_and_after_the_subcommand(capsys, tmp_path):
    from dgan_data.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["-v", "presets"]).verbose is True
    assert parser.parse_args(["presets", "-v"]).verbose is True
    assert parser.parse_args(["presets"]).verbose is False
    # after the subcommand too, -v shows the exception instead of the one line
    with pytest.raises(KeyError, match="no-such-preset"):
        main(["preview", "no-such-preset", "--out", str(tmp_path / "g.png"), "-v"])


def test_a_leading_double_dash_is_ignored(capsys):
    """``torchrun -m dgan_data.cli -- export ...``: some Pythons pass the ``--`` on."""
    code, printed, err = run(capsys, "--", "presets")
    assert code == 0, err
    assert "toyface-14" in printed


def test_sample_takes_a_presets_classes_and_needs_them_otherwise(
    capsys, tmp_path, tiny_generator_file
):
    from dgan_data import get_preset

    code, _, err = run(capsys, "sample", "--generator", "toyface-14", "--num", "1", "--out",
                       str(tmp_path / "p"))  # fmt: skip
    assert code == 0, err
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["class_names"] == list(get_preset("toyface-14").class_names)
    out = tmp_path / "f"
    code, _, err = run(capsys, "sample", "--generator", str(tiny_generator_file), "--num", "1",
                       "--out", str(out))  # fmt: skip
    assert code == 2
    one_line_error(err, "--classes is needed")
    assert not out.exists()


def test_presets_shows_one_preset_in_full(capsys):
    from dgan_data import get_preset

    code, printed, err = run(capsys, "presets", "toyface-14")
    assert code == 0, err
    preset = get_preset("toyface-14")
    for i, name in enumerate(preset.class_names):
        colour = tuple(int(v) for v in preset.palette_array[i])
        assert f"{i:>3}  {name:<24} {colour}" in printed
    assert "truncation psi 0.8" in printed and "generator: " in printed
    code, printed, err = run(capsys, "presets", "car-20", "--json")
    assert code == 0, err
    record = json.loads(printed)
    assert record["class_names"] == list(get_preset("car-20").class_names)
    assert len(record["palette"]) == record["num_classes"] == 20
    assert record["truncation_psi"] == get_preset("car-20").truncation_psi
    assert record["expected_generator"] and record["generator_present"] in (True, False)
    code, printed, err = run(capsys, "presets", "--json")
    assert code == 0, err
    assert {r["name"] for r in json.loads(printed)} >= {"toyface-14", "car-20"}
    code, _, err = run(capsys, "presets", "no-such-preset")
    assert code == 2
    one_line_error(err, "no-such-preset")


def test_empty_class_names_are_refused_and_nothing_is_written(
    capsys, tmp_path, tiny_generator_file
):
    out = tmp_path / "s"
    code, _, err = run(
        capsys,
        "sample",
        "--generator",
        str(tiny_generator_file),
        "--num",
        "2",
        "--out",
        str(out),
        "--classes",
        ",,",
    )
    assert code == 2
    one_line_error(err, "empty class name")
    assert not out.exists()


def test_preview_to_a_folder_names_the_path(capsys, tmp_path):
    code, _, err = run(capsys, "preview", "toyface-14", "--num", "1", "--out", str(tmp_path))
    assert code == 2
    one_line_error(err, str(tmp_path), "is a folder; give the path of the file to write")


def test_preset_names_work_wherever_a_file_is_asked_for(capsys, tmp_path):
    out = tmp_path / "grid.png"
    code, _, err = run(
        capsys,
        "preview",
        "--generator",
        "toyface-14",
        "--interpreter",
        "toyface-14",
        "--num",
        "2",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert out.is_file()
    code, _, err = run(
        capsys,
        "export",
        "--generator",
        "toyface-14",
        "--interpreter",
        "toyface-14",
        "--num",
        "2",
        "--out",
        str(tmp_path / "e"),
    )
    assert code == 0, err
    assert (tmp_path / "e" / "index.jsonl").is_file()


def test_the_readme_fit_command_runs_as_written(capsys, tmp_path, tiny_generator_file):
    """``dgan-data fit --generator G --annotations DIR --out i.safetensors``: no --max-steps."""
    ann = tmp_path / "ann"
    code, _, err = run(
        capsys,
        "sample",
        "--generator",
        str(tiny_generator_file),
        "--num",
        "2",
        "--out",
        str(ann),
        "--classes",
        "background,thing",
    )
    assert code == 0, err
    rng = np.random.default_rng(0)
    for i in range(2):
        mask = (rng.random((16, 16)) > 0.5).astype(np.uint8)
        Image.fromarray(mask).save(ann / "masks" / f"{i:05d}.png")
    out = tmp_path / "i.safetensors"
    code, printed, err = run(
        capsys,
        "fit",
        "--generator",
        str(tiny_generator_file),
        "--annotations",
        str(ann),
        "--out",
        str(out),
    )
    assert code == 0, err
    assert str(out) in printed
    interp = Interpreter.load(out)
    assert interp.num_models == 10 and interp.class_names == ["background", "thing"]
    assert interp.training_info["max_steps"] == 20_000  # the documented default


def test_fit_on_a_nan_latent_writes_nothing(capsys, tmp_path, tiny_generator_file):
    ann = tmp_path / "ann"
    assert (
        run(
            capsys,
            "sample",
            "--generator",
            str(tiny_generator_file),
            "--num",
            "2",
            "--out",
            str(ann),
            "--classes",
            "a,b",
        )[0]
        == 0
    )
    for i in range(2):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(ann / "masks" / f"{i:05d}.png")
    latent = ann / "latents" / "00001.npy"
    w = np.load(latent)
    w[0, 0] = np.nan
    np.save(latent, w)
    out = tmp_path / "i.safetensors"
    code, _, err = run(
        capsys,
        "fit",
        "--generator",
        str(tiny_generator_file),
        "--annotations",
        str(ann),
        "--out",
        str(out),
        "--skip-validation",
    )
    assert code == 2
    assert "NaN" in err and "00001.npy" in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["fit", "preview"])
@pytest.mark.parametrize(
    ("out", "what"), [("adir", "is a folder"), ("afile/x.png", "afile is a file, not a folder")]
)
def test_an_output_file_that_cannot_be_written_is_refused_before_the_work(
    capsys, tmp_path, monkeypatch, command, out, what
):
    """fit trains for minutes, then saves: a bad --out is named before it starts."""
    from dgan_data.cli import data, models

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before --out was checked")

    monkeypatch.setattr(models, "load_generator", no_work)
    monkeypatch.setattr(data, "preview", no_work)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("mine")
    argv = {
        "fit": ["fit", "--generator", "G.pkl", "--annotations", str(tmp_path)],
        "preview": ["preview", "toyface-14", "--num", "2"],
    }[command]
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / out))
    assert code == 2
    one_line_error(err, what)
    assert (tmp_path / "afile").read_text() == "mine" and not any((tmp_path / "adir").iterdir())


def test_output_types_name_what_is_in_the_way(tmp_path):
    import argparse

    from dgan_data.cli.common import output_file, output_folder

    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    assert output_file(str(tmp_path / "new" / "deeper" / "x.png")) == tmp_path / "new/deeper/x.png"
    assert output_folder(str(tmp_path / "d")) == tmp_path / "d"
    assert output_file(str(tmp_path / "f")) == tmp_path / "f"  # replaced atomically
    cases = [
        (output_file, "d", "is a folder"),
        (output_file, "f/x.png", "f is a file, not a folder"),
        (output_folder, "f", "exists and is not a folder"),
        (output_folder, "f/a/b", "f is a file, not a folder"),
    ]
    for check, rel, words in cases:
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            check(str(tmp_path / rel))
