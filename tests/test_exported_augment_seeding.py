"""ExportedDataset(albumentations=...) draws its transforms from torch's RNG, one seed per
sample: the Compose keeps its own generators, copied unchanged into every DataLoader
worker, so each worker's k-th sample got the same transform, epoch after epoch."""

from __future__ import annotations

import pytest
import torch
from test_export import models, reference  # noqa: F401 (fixtures: a finished 18-sample export)
from torch.utils.data import DataLoader

from dgan_data.export import ExportedDataset

A = pytest.importorskip("albumentations")


def _dataset(root) -> ExportedDataset:
    warp = A.Compose([A.Affine(translate_px=(-6, 6), rotate=(-30, 30), p=1.0)])
    return ExportedDataset(root, albumentations=warp)


def _masks(loader: DataLoader) -> torch.Tensor:
    return torch.cat([masks for _, masks in loader])


def test_workers_and_epochs_draw_their_own_transforms(reference):  # noqa: F811
    same = _dataset(reference)
    # four identical samples: whatever differs between them is the augmentation
    same.entries = [same.entries[0]] * 4
    loader = DataLoader(same, batch_size=1, num_workers=2)
    first, second = _masks(loader), _masks(loader)
    assert not torch.equal(first[0], first[1])  # worker 0's and worker 1's first samples
    assert not torch.equal(first, second)  # the next epoch
    assert len({m.numpy().tobytes() for m in first}) == 4


def test_torch_manual_seed_reproduces_the_augmentation(reference):  # noqa: F811
    data = _dataset(reference)
    torch.manual_seed(3)
    a = [data[i][1] for i in range(3)]
    torch.manual_seed(3)
    b = [data[i][1] for i in range(3)]
    torch.manual_seed(4)
    c = [data[i][1] for i in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
