"""Spawned DataLoader workers draw their own rank's samples.

A spawned worker has no process group, and ranks started by ``mp.spawn`` (or
Lightning, which sets ``WORLD_SIZE`` but not ``RANK``) leave no ``RANK`` in the
environment: the worker must take the rank its parent saw when it pickled the stream.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_stream import gloo_rank, random_interpreter, tiny_generator
from torch.utils.data import DataLoader

import dgan_data.stream.workers as workers_mod
from dgan_data.seeds import distributed_context, sample_seed
from dgan_data.stream import DatasetGANStream

RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")


@pytest.fixture(autouse=True)
def _no_torchrun_env(monkeypatch):
    for var in RANK_VARS:
        monkeypatch.delenv(var, raising=False)
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory) -> tuple[str, str]:
    G = tiny_generator()
    d = tmp_path_factory.mktemp("models")
    return str(G.save(d / "generator.safetensors")), str(
        random_interpreter(G).save(d / "interpreter.safetensors")
    )


def _stream(paths: tuple[str, str]) -> DatasetGANStream:
    generator, interpreter = paths
    return DatasetGANStream(
        generator=generator,
        interpreter=interpreter,
        batch_size=2,
        output="dict",
        device="cpu",
        drop_uncertain=0.0,
    )


def test_world_size_without_rank_is_refused(monkeypatch):
    """Lightning's launcher environment: rank 0 would be a silent guess."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ValueError, match="WORLD_SIZE=2 but RANK is not set"):
        distributed_context()
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: rank 0 is the only one
    assert distributed_context() == (0, 1)


def test_pickled_stream_carries_the_parents_rank(tiny_paths, monkeypatch):
    """Pickled as rank 1 of 2, then iterated in a (simulated) worker without a process
    group or RANK: it draws rank 1's candidates, not rank 0's."""
    monkeypatch.setattr(workers_mod, "distributed_context", lambda: (1, 2))
    blob = pickle.dumps(_stream(tiny_paths))
    monkeypatch.undo()
    for var in RANK_VARS:
        monkeypatch.delenv(var, raising=False)
    in_worker = SimpleNamespace(id=0, num_workers=1)
    monkeypatch.setattr(workers_mod, "get_worker_info", lambda: in_worker)
    batch = next(iter(pickle.loads(blob)))
    assert batch["seed"].tolist() == [sample_seed(0, 0, 2 * i + 1) for i in range(2)]


def test_main_process_ignores_a_pickled_rank(tiny_paths, monkeypatch):
    """Outside a worker the live context wins (a stream unpickled elsewhere)."""
    monkeypatch.setattr(workers_mod, "distributed_context", lambda: (1, 2))
    blob = pickle.dumps(_stream(tiny_paths))
    monkeypatch.undo()
    for var in RANK_VARS:
        monkeypatch.delenv(var, raising=False)
    batch = next(iter(pickle.loads(blob)))
    assert batch["seed"].tolist() == [sample_seed(0, 0, i) for i in range(2)]


def _spawned_rank(rank: int, init_file: str, out_dir: str, generator: str, interpreter: str):
    with gloo_rank(rank, init_file):
        loader = DataLoader(
            _stream((generator, interpreter)),
            batch_size=None,
            num_workers=1,
            multiprocessing_context="spawn",
        )
        it = iter(loader)
        seeds = torch.cat([next(it)["seed"] for _ in range(2)])
        torch.save(seeds, Path(out_dir) / f"rank{rank}.pt")
        torch.distributed.barrier()


def test_spawned_workers_of_spawned_ranks_draw_disjoint_samples(tiny_paths, tmp_path):
    """The real case: mp.spawn ranks (no RANK in the environment) with spawned workers."""
    torch.multiprocessing.spawn(
        _spawned_rank,
        args=(str(tmp_path / "init"), str(tmp_path), *tiny_paths),
        nprocs=2,
        join=True,
    )
    s0 = torch.load(tmp_path / "rank0.pt").tolist()
    s1 = torch.load(tmp_path / "rank1.pt").tolist()
    assert s0 == [sample_seed(0, 0, 2 * i) for i in range(4)]
    assert s1 == [sample_seed(0, 0, 2 * i + 1) for i in range(4)]


def test_a_stream_pickled_without_the_new_attributes_still_works(tiny_paths):
    """A stream pickled by a version without the recorded rank or the finished-epoch
    state (a cached dataset object) iterates and reports its state."""
    state = _stream(tiny_paths).__getstate__()
    del state["_parent_context"], state["_ended"]
    old = DatasetGANStream.__new__(DatasetGANStream)
    old.__dict__.update(state)  # what unpickling does (no __setstate__)
    assert old.state_dict()["epoch"] == 0
    batch = next(iter(old))
    assert batch["seed"].tolist() == [sample_seed(0, 0, i) for i in range(2)]
