"""One rule, one wording: the API's ``check_device`` and the commands' ``--device`` give
the same reason for a refused device, each naming the value once, quoted the same way
whether it came as a name or as a ``torch.device``."""

from __future__ import annotations

import argparse

import pytest
import torch

from dgan_data.cli.common import device_name
from dgan_data.conventions import check_device, device_problem


def _api_message(device) -> str:
    with pytest.raises(ValueError) as err:
        check_device(device)
    return str(err.value)


def _cli_message(text: str) -> str:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        device_name(text)
    return str(err.value)


@pytest.fixture
def one_gpu_no_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("text", ["gpu", "meta", "xpu", "cuda:3", "mps"])
def test_api_and_command_give_one_reason_and_name_the_value_once(one_gpu_no_mps, text):
    _, reason = device_problem(text)
    assert reason
    assert _api_message(text) == f"device {text!r} {reason}"
    assert _cli_message(text) == f"{text!r} {reason}"
    assert _api_message(text).count(text) == 1


def test_a_torch_device_is_quoted_as_its_name_not_its_repr(one_gpu_no_mps):
    message = _api_message(torch.device("cuda", 3))
    assert message.startswith("device 'cuda:3' ")
    assert "type=" not in message and "index=" not in message
    assert "1 CUDA device" in message
    assert _api_message(torch.device("xpu")).startswith("device 'xpu' cannot be used")


def test_usable_devices_have_no_problem(one_gpu_no_mps):
    assert device_problem("cpu") == (torch.device("cpu"), None)
    assert device_problem(torch.device("cuda", 0)) == (torch.device("cuda", 0), None)
    assert check_device("cuda:0") == torch.device("cuda", 0)
    assert device_name("cuda:0") == "cuda:0"
    assert check_device(None) is None
