"""environment_info: the hardware record of results files checks its device first."""

from __future__ import annotations

import pytest
import torch

from dgan_data.downstream.train import environment_info


@pytest.fixture
def no_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same answers on every machine: neither CUDA nor MPS is available."""
    environment_info("cpu")  # its lazy imports (smp, then torch's compiler) run unpatched
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        ("cuda", "CUDA is not available"),
        ("cuda:1", "CUDA is not available"),
        (torch.device("cuda"), "CUDA is not available"),
        ("mps", "MPS is not available"),
        ("cpux", "not a device name"),
    ],
)
def test_a_device_this_machine_lacks_is_a_clear_value_error(
    no_accelerators: None, device: object, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason) as err:
        environment_info(device)  # type: ignore[arg-type]
    assert "device" in str(err.value)


@pytest.mark.parametrize("device", [None, "cpu", torch.device("cpu")])
def test_the_cpu_record_names_the_cpu(no_accelerators: None, device: object) -> None:
    info = environment_info(device)  # type: ignore[arg-type]
    assert info["hardware"]["device"] == "cpu"
    assert "gpu" not in info["hardware"]
    assert info["versions"]["torch"] == torch.__version__
