"""Generators built with numpy numbers (read from an .npz or computed with numpy) kept
them in their config, which ``config`` promises is JSON: ``fingerprint()`` and ``save()``
failed with "Object of type int64 is not JSON serializable"."""

from __future__ import annotations

import json

import numpy as np
import torch

from dgan_data import load_generator
from dgan_data.generators.stylegan1 import StyleGAN1Generator
from dgan_data.generators.stylegan2 import StyleGAN2Generator


def _stylegan2(number) -> StyleGAN2Generator:
    torch.manual_seed(0)
    return StyleGAN2Generator(
        size=number(16),
        style_dim=number(32),
        n_mlp=number(2),
        channels={4: 16, 8: 16, 16: 16},
        lr_mlp=np.float32(0.01) if number is np.int64 else 0.01,
        include_const_input=np.bool_(False) if number is np.int64 else False,
    )


def _stylegan1(number) -> StyleGAN1Generator:
    torch.manual_seed(0)
    return StyleGAN1Generator(
        resolution=number(8), channels=[8, 8], z_dim=16, w_dim=16, mapping_layers=2
    )


def test_numpy_settings_give_the_generator_of_python_settings(tmp_path):
    for build in (_stylegan2, _stylegan1):
        from_numpy, from_python = build(np.int64), build(int)
        json.dumps(from_numpy.config)  # the promise: JSON-able
        assert from_numpy.config == from_python.config
        assert from_numpy.fingerprint() == from_python.fingerprint()
        path = from_numpy.save(tmp_path / f"{build.__name__}.safetensors")
        assert load_generator(path).fingerprint() == from_python.fingerprint()
