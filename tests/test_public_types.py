"""Type hints a user's type checker reads from this py.typed package. mypy on
``examples/stream_quickstart.py`` said ``"Tensor" not callable`` for
``interp.bn1_var.fill_(...)`` (an attribute made by name is ``Tensor | Module`` to it),
and ``five_fold_protocol({0: conf})`` was refused: ``Mapping`` is invariant in its key,
so a ``dict[int, Tensor]`` is no ``Mapping[Hashable, ...]``."""

from __future__ import annotations

import typing
from typing import Any

import torch

from dgan_data import Interpreter, five_fold_protocol, holdout_protocol
from dgan_data.interpreter import io as interpreter_io
from dgan_data.metrics.protocols import CrossValidationResult, HoldoutResult


def test_every_interpreter_tensor_is_declared_a_tensor():
    names = set(interpreter_io.expected_shapes(2, (4, 4), 3, 2))
    hints = typing.get_type_hints(Interpreter)
    assert names <= set(hints)  # a new tensor of the file format is declared too
    assert {hints[n] for n in names} == {torch.Tensor}
    interp = Interpreter([(3, 4, 4)], 2, num_models=2, hidden=(4, 4))
    assert all(isinstance(getattr(interp, n), torch.Tensor) for n in names)


def test_protocols_take_any_checkpoint_keys():
    mapping = typing.get_type_hints(five_fold_protocol)["confusions"]
    assert typing.get_args(mapping)[0] is Any
    val, test = (typing.get_type_hints(holdout_protocol)[k] for k in ("val_scores", "test"))
    assert typing.get_args(val)[0] is Any
    assert typing.get_args(typing.get_args(test)[0])[0] is Any
    assert typing.get_type_hints(HoldoutResult)["checkpoint"] is Any
    assert typing.get_type_hints(CrossValidationResult)["chosen"] == list[Any]
