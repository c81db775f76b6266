"""A mistyped keyword argument of the public API gets the close names, as a mistyped
file, preset or option does: Python 3.11 and 3.12 said only ``DatasetGANStream.__init__()
got an unexpected keyword argument 'trunction_psi'``, and a function that passes
``**labeler_options`` on blamed its own misspelt ``batch_size`` on the labeler."""

from __future__ import annotations

import inspect

import pytest

import dgan_data
from dgan_data import (
    Annotations,
    DatasetGANStream,
    Interpreter,
    Labeler,
    Preset,
    export_dataset,
    make_palette,
    preview,
)
from dgan_data.downstream import batches, demo, models, realdata, train
from dgan_data.interpreter import frames, inference, rows

MARK = "__dgan_data_keyword_hints__"
#: Public callables that take ``**labeler_options`` and check those themselves.
PASS_ON = {"export_dataset", "preview"}
EXTRA = [
    train.train_segmentation,
    train.evaluate,
    models.build_deeplab,
    batches.real_batches,
    batches.render_batches,
    realdata.LabeledFolder,
    demo.run_demo,
    demo.DemoConfig,
    inference.FactorizedInference,
    rows.RowsInference,
    frames.FramesInference,
]


def keyword_names(func) -> set[str]:
    params = inspect.signature(func).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return set()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in params if p.kind in named} - {"self", "cls"}


def public_callables():
    """(name, function) for every public function, and every class's ``__init__`` and
    public methods defined in the package, that takes keyword arguments."""
    objects = [getattr(dgan_data, n) for n in dgan_data.__all__ if n != "__version__"]
    for obj in objects + EXTRA:
        if inspect.isclass(obj):
            if issubclass(obj, BaseException):
                continue
            for klass in obj.__mro__:
                if not klass.__module__.startswith("dgan_data"):
                    continue
                for name, member in vars(klass).items():
                    if name != "__init__" and (name.startswith("_") or name == "forward"):
                        continue
                    func = getattr(member, "__func__", member)
                    if inspect.isfunction(func) and keyword_names(func):
                        yield f"{klass.__name__}.{name}", func
        elif obj.__name__ not in PASS_ON and keyword_names(obj):
            yield obj.__name__, obj


def test_every_public_callable_hints_its_keywords():
    found = dict(public_callables())
    assert len(found) > 60  # the walk finds the API, not an empty list
    assert sorted(name for name, func in found.items() if not getattr(func, MARK, False)) == []


def test_a_stream_setting_with_a_typo():
    with pytest.raises(TypeError) as err:
        DatasetGANStream("toyface-14", trunction_psi=0.7)
    assert str(err.value) == (
        "DatasetGANStream() got an unexpected keyword argument 'trunction_psi'. "
        "Did you mean 'truncation_psi', 'truncation_cutoff'?"
    )


def test_methods_classmethods_and_dataclasses():
    with pytest.raises(
        TypeError, match=r"^Annotations.load\(\) .*'foldr'. Did you mean 'folder'\?$"
    ):
        Annotations.load(foldr="ann")
    with pytest.raises(TypeError, match=r"^Preset\(\) .*'nmae'. Did you mean 'name'\?$"):
        Preset(nmae="x")
    with pytest.raises(TypeError, match=r"^Labeler.from_sources\(\) .*Did you mean 'label_size'"):
        Labeler.from_sources("toyface-14", lable_size=(8, 8))


def test_nothing_close_means_no_guess():
    with pytest.raises(TypeError) as err:
        Interpreter.load("x.safetensors", map_locaton="cpu")
    assert str(err.value) == "Interpreter.load() got an unexpected keyword argument 'map_locaton'"


@pytest.mark.parametrize("call", [export_dataset, preview], ids=["export_dataset", "preview"])
def test_own_arguments_misspelt_into_the_labeler_options(tmp_path, call):
    with pytest.raises(TypeError) as err:
        call("toyface-14", 2, tmp_path / "out", batchsize=2)
    assert "unexpected keyword argument 'batchsize': neither its own nor a labeler option" in (
        str(err.value)
    )
    assert str(err.value).endswith("Did you mean 'batch_size'?")
    assert not (tmp_path / "out").exists()


def test_signatures_and_good_calls_are_unchanged():
    wrapped = DatasetGANStream.__init__
    assert inspect.signature(wrapped) == inspect.signature(wrapped.__wrapped__)
    assert make_palette(num_classes=5, seed=3).tolist() == make_palette(5, 3).tolist()
    assert make_palette.__name__ == "make_palette" and "palette" in (make_palette.__doc__ or "")


def test_type_checkers_still_see_each_function():
    """``keyword_hints`` returns what it is given, to type checkers too (typed ``Any ->
    Any``, mypy saw every decorated function of the py.typed package as ``Any``)."""
    from typing import TypeVar, get_type_hints

    from dgan_data.conventions import keyword_hints

    hints = get_type_hints(keyword_hints)
    assert isinstance(hints["target"], TypeVar) and hints["return"] is hints["target"]
    assert get_type_hints(make_palette)["num_classes"] is int  # annotations kept on wrappers


def test_stream_states_describe_the_method_not_the_wrapper():
    """A stream records its augment by code file and line: through the wrapper, a bound
    method of the package was named by the wrapper's line in conventions.py (and its
    closure), which any edit there would change, refusing the resume of a saved state."""
    from dgan_data import BatchAugment
    from dgan_data.stream.state import describe_augment

    text = describe_augment(BatchAugment().apply)
    assert text.startswith("dgan_data.augment.batch.BatchAugment.apply (batch.py:")
    assert "conventions.py" not in text and "closure" not in text
