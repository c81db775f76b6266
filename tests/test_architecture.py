"""The package's layering rules, measured on its own import graph (``import_graph.py``)."""

from __future__ import annotations

import ast

import pytest
from import_graph import PACKAGE_DIR, cycles, edges, load_graph

#: Layer of every module, by dotted-name prefix (longest prefix wins). A module may
#: import from its own layer or below, never above.
LAYERS = {
    "dgan_data._version": 0,
    "dgan_data.conventions": 0,
    "dgan_data.seeds": 0,
    "dgan_data.schema": 0,
    "dgan_data.fileio": 0,
    "dgan_data.palette": 0,
    "dgan_data.viz": 0,
    "dgan_data.uncertainty": 0,
    "dgan_data.metrics": 0,
    "dgan_data.augment": 0,
    "dgan_data.balance": 0,
    "dgan_data.novelty": 0,
    "dgan_data.progress": 0,
    "dgan_data.generators": 1,
    "dgan_data.interpreter": 2,
    "dgan_data.annotations": 3,
    "dgan_data.toy": 3,
    "dgan_data.presets": 4,
    "dgan_data.labeler": 5,
    "dgan_data.stream": 6,
    "dgan_data.export": 6,
    "dgan_data.preview": 6,
    "dgan_data.holdout": 6,
    "dgan_data.suggest": 6,
    "dgan_data.downstream": 7,
    "dgan_data.cli": 8,
    "dgan_data": 9,
}
#: Third-party packages a module may import inside a function (optional dependencies).
#: torchvision is a dependency, imported on first use: its import loads torch._dynamo.
LAZY_ALLOWED = {
    "kornia",
    "albumentations",
    "segmentation_models_pytorch",
    "torchdata",
    "torchvision",
}


def layer_of(name: str) -> int:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[best]


@pytest.fixture(scope="module")
def graph():
    mods = load_graph()
    return mods, edges(mods)


def test_every_module_has_a_layer(graph):
    mods, _ = graph
    for name in mods:
        assert layer_of(name) is not None


def test_no_import_circles(graph):
    _, g = graph
    assert cycles(g) == []


def test_no_import_runs_up_a_layer(graph):
    _, g = graph
    upward = [
        f"{a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})"
        for a, targets in g.items()
        for b in targets
        if layer_of(b) > layer_of(a)
    ]
    assert upward == []


def test_submodules_never_import_the_root_package(graph):
    mods, _ = graph
    offenders = [
        m.name for m in mods.values() if m.name != "dgan_data" and "dgan_data" in m.top | m.inner
    ]
    assert offenders == []


def test_generators_know_nothing_of_labels_presets_or_streams(graph):
    _, g = graph
    allowed = {
        "dgan_data._version",
        "dgan_data.conventions",
        "dgan_data.fileio",
        "dgan_data.schema",
        "dgan_data.seeds",
    }
    for name, targets in g.items():
        if name.startswith("dgan_data.generators"):
            outside = {t for t in targets if not t.startswith("dgan_data.generators")}
            assert outside <= allowed, (name, outside - allowed)


def test_interpreter_knows_nothing_of_generators_or_streams(graph):
    _, g = graph
    for name, targets in g.items():
        if name.startswith("dgan_data.interpreter"):
            bad = {
                t for t in targets if layer_of(t) >= 1 and not t.startswith("dgan_data.interpreter")
            }
            assert bad == set(), (name, bad)


def test_package_imports_sit_at_module_level(graph):
    mods, _ = graph
    inner = {m.name: sorted(m.inner) for m in mods.values() if m.inner}
    assert inner == {}
    lazy = {m.name: sorted(m.inner_external - LAZY_ALLOWED) for m in mods.values()}
    assert {k: v for k, v in lazy.items() if v} == {}


def test_only_the_cli_prints():
    offenders = []
    for path in PACKAGE_DIR.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE_DIR).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_one_copy_of_each_helper():
    """Names that used to be duplicated are defined once in the package."""
    defs: dict[str, list[str]] = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defs.setdefault(node.name, []).append(path.name)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        defs.setdefault(t.id, []).append(path.name)
    for name in (
        "IGNORE_INDEX",
        "atomic_write",
        "short_list",
        "to_uint8_image",
        "confusion_matrix",
        "derive_seed",
        "splitmix64",
        "make_palette",
        "__version__",
        "_short_list",
        "_atomic_write",
        "_atomic_torch_save",
        "_splitmix64",
        "_derive_seed",
        "atomic_save_file",
    ):
        assert len(defs.get(name, [])) <= 1, (name, defs.get(name))
