"""``dgan-data fit`` says how the fit went: it printed only ``wrote PATH``, so a user
could not tell an ensemble cut off by ``--max-steps`` from one that converged without
opening the file's training record."""

from __future__ import annotations

from test_cli_errors import run

from dgan_data import load_interpreter
from dgan_data.cli.models import fit_summary
from dgan_data.presets import resolve_preset_file

ANNOTATIONS = resolve_preset_file("toyface-14", "interpreter").parent / "annotations"


def _fit(capsys, out, *extra: str) -> str:
    code, stdout, err = run(
        capsys, "fit", "--generator", "toyface-14", "--annotations", str(ANNOTATIONS),
        "--out", str(out), "--num-models", "2", "--skip-validation", "--no-progress", *extra,
    )  # fmt: skip
    assert code == 0, err
    return stdout.strip()


def test_the_summary_reports_the_saved_training_record(capsys, tmp_path):
    out = tmp_path / "i.safetensors"
    line = _fit(capsys, out, "--max-steps", "30")
    info = load_interpreter(out).training_info
    assert line.startswith(f"wrote {out}: 2 models on {info['num_images']} annotated images ")
    assert f"({info['annotated_pixels']:,} pixels)" in line
    assert "; 30 steps;" in line
    low, high = sorted(info["final_accuracy"])
    assert f"accuracy on the annotated pixels {low:.3f}-{high:.3f}" in line or (
        f"{low:.3f}" == f"{high:.3f}" and f"pixels {low:.3f}," in line
    )
    assert "2 of 2 stopped at the step cap 30 (--max-steps 30) before a plateau" in line


def test_no_cap_warning_when_every_model_plateaus():
    info = {
        "steps": [1400, 2200], "final_accuracy": [0.91, 0.93], "final_loss": [0.2, 0.25],
        "num_images": 1, "annotated_pixels": 4096, "train_seconds": 3.0, "store_seconds": 0.5,
        "max_steps": 20_000,
    }  # fmt: skip
    text = fit_summary(info, None)
    assert text == (
        "2 models on 1 annotated image (4,096 pixels); 1,400-2,200 steps; accuracy on the "
        "annotated pixels 0.910-0.930, loss 0.200-0.250; 3.5 s to store the features and train"
    )
    capped = fit_summary({**info, "steps": [1400, 20_000]}, None)
    assert capped.endswith(
        "1 of 2 stopped at the step cap 20,000 before a plateau: more steps may fit better"
    )
