"""The wheel users install holds the package, its shipped weights and the preset files."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import REPO_ROOT


def test_wheel_contains_package_and_preset_files(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheels = list(tmp_path.glob("dgan_data-*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    expected = {
        "dgan_data/__init__.py",
        "dgan_data/_version.py",
        "dgan_data/cli/__init__.py",
        "dgan_data/cli/__main__.py",
        "dgan_data/stream/__init__.py",
        "dgan_data/stream/dataset.py",
        "dgan_data/stream/state.py",
        "dgan_data/stream/workers.py",
        "dgan_data/labeler.py",
        "dgan_data/interpreter/model.py",
        "dgan_data/annotations/folder.py",
        "dgan_data/presets/builtin.json",
        "dgan_data/downstream/train.py",
        "dgan_data/downstream/demo_report.py",
        "dgan_data/generators/stylegan2.py",
        "dgan_data/generators/stylegan1.py",
        "dgan_data/generators/nvidia.py",
        "dgan_data/py.typed",
        "dgan_data/toy/assets/generator.safetensors",
        "dgan_data/toy/assets/interpreter.safetensors",
        "dgan_data/toy/assets/annotator.safetensors",
        "dgan_data/toy/assets/annotations/manifest.json",
    }
    for world_dir in ("assets", "assets_wide"):  # toyface-14 and toyface-14-wide
        for name in ("generator", "interpreter", "annotator"):
            expected.add(f"dgan_data/toy/{world_dir}/{name}.safetensors")
        expected |= {f"dgan_data/toy/{world_dir}/annotator.json"}
        expected |= {f"dgan_data/toy/{world_dir}/annotations/manifest.json"}
    missing = expected - names
    assert not missing, f"wheel lacks {sorted(missing)}"
    for world_dir in ("assets", "assets_wide"):
        folder = f"dgan_data/toy/{world_dir}/annotations/"
        masks = [n for n in names if n.startswith(f"{folder}masks/")]
        images = [n for n in names if n.startswith(f"{folder}images/")]
        assert len(masks) == 16 and len(images) == 16, world_dir
    # the shipped data (weights, annotations, tables) stays within its 25 MB budget
    with zipfile.ZipFile(wheels[0]) as wheel:
        data = [i for i in wheel.infolist() if i.filename.startswith("dgan_data/")]
        data_bytes = sum(i.file_size for i in data if not i.filename.endswith(".py"))
    assert data_bytes <= 25 * 1024**2, f"package data {data_bytes / 1024**2:.1f} MB"
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheels[0]).read(metadata).decode()
    # the package asks for ranges, never this machine's exact pins
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: torch>=2.1" in requires
    assert not any("==" in line.split(";")[0] for line in requires), requires
    from dgan_data import __version__

    assert f"Version: {__version__}" in text.splitlines()
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "dgan-data = dgan_data.cli:main" in zipfile.ZipFile(wheels[0]).read(entry).decode()


def test_every_public_name_is_importable():
    import dgan_data

    missing = [name for name in dgan_data.__all__ if not hasattr(dgan_data, name)]
    assert missing == []
    namespace: dict = {}
    exec("from dgan_data import *", namespace)
    assert {"suggest_annotations", "FeatureNovelty", "verify_export"} <= set(namespace)


def test_the_namespace_holds_the_api_and_its_modules_only():
    """``dir(dgan_data)`` listed ``os``, which a tab completion offered as if public."""
    import types

    import dgan_data

    stray = [
        name
        for name, value in vars(dgan_data).items()
        if not name.startswith("_")
        and name not in dgan_data.__all__
        and not (isinstance(value, types.ModuleType) and value.__name__ == f"dgan_data.{name}")
    ]
    assert stray == []
