"""``dgan-data sample`` lists the colour of every class and the command that turns masks
painted in those colours into class-id masks: it said only "draw masks as single-channel
PNG class ids", which no image editor shows (ids 0, 1, 2 all look black)."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image
from test_cli_errors import run

from dgan_data import Annotations

GENERATOR = Path(__file__).parent / "fixtures" / "reference" / "rosinality_stylegan2_32px.pt"
ROW = re.compile(r"^\s+(\d+)\s+(\S+)\s+(\(\d+, \d+, \d+\))$")


def test_paint_in_the_listed_colours_then_run_the_listed_command(capsys, tmp_path):
    folder = tmp_path / "my ann"
    code, out, err = run(capsys, "sample", "--generator", str(GENERATOR), "--num", "2",
                         "--out", str(folder), "--classes", "bg,car,wheel")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    colours = {}
    for line in lines:
        if match := ROW.match(line):
            colours[match[2]] = (int(match[1]), ast.literal_eval(match[3]))
    assert [colours[n][0] for n in ("bg", "car", "wheel", "(ignore)")] == [0, 1, 2, 255]
    # paint: left half car, right half wheel, one ignored row
    for sample_id in ("00000", "00001"):
        painted = np.zeros((32, 32, 3), np.uint8)
        painted[:, :16] = colours["car"][1]
        painted[:, 16:] = colours["wheel"][1]
        painted[0] = colours["(ignore)"][1]
        Image.fromarray(painted).save(folder / "masks" / f"{sample_id}.png")
    command = next(line for line in lines if "import-masks" in line).split("with: ", 1)[1]
    code, _, err = run(capsys, *shlex.split(command)[1:])
    assert code == 0, err
    masks = Annotations.load(folder).masks
    assert masks[:, 1:, :16].eq(1).all() and masks[:, 1:, 16:].eq(2).all()
    assert masks[:, 0].eq(255).all()
