"""Where a stream iterator runs: its shard of the candidate sequence and its device.

Candidates are interleaved over distributed ranks and DataLoader workers, so every
iterator owns a disjoint slice. CUDA is refused in forked DataLoader workers, where it
fails with a cryptic error as soon as the parent has touched it.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
import weakref
from dataclasses import dataclass
from multiprocessing.context import get_spawning_popen
from typing import Any

import torch
from lightning_utilities.core.imports import RequirementCache
from torch.utils.data import DataLoader, get_worker_info

from ..seeds import distributed_context

#: Process that imported this module. A forked DataLoader worker inherits the value, a
#: spawned one imports the module afresh: a different pid means "forked from a parent".
_IMPORT_PID = os.getpid()
#: torchdata, whose StatefulDataLoader keeps the stream position of every worker.
TORCHDATA = RequirementCache("torchdata>=0.8")


@dataclass
class Shard:
    """Which slice of the global candidate sequence this iterator owns."""

    rank: int
    world_size: int
    worker: int
    num_workers: int

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers

    def as_list(self) -> list[int]:
        return [self.rank, self.world_size, self.worker, self.num_workers]


def current_shard(parent_context: tuple[int, int] | None = None) -> Shard:
    """The shard of the calling process: its distributed rank and DataLoader worker.

    ``parent_context`` is the (rank, world size) the main process saw when it pickled
    the dataset for a worker. A spawned worker has no process group of its own and,
    started by ``mp.spawn`` or Lightning, no ``RANK`` either: without the parent's
    context every rank's workers would act as rank 0 and draw the same samples.
    """
    info = get_worker_info()
    live_group = torch.distributed.is_available() and torch.distributed.is_initialized()
    if info is not None and parent_context is not None and not live_group:
        rank, world = parent_context
    else:
        rank, world = distributed_context()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return Shard(rank, world, worker, workers)


def new_epoch_signal() -> Any:
    """``[epoch, times set_epoch was called, next epoch, times a worker's epoch ended]``
    in shared memory (a multiprocessing heap block,
    inherited by forked DataLoader workers and handed to spawned ones): the way
    ``set_epoch`` in the main process reaches persistent workers, which keep the copy of
    the stream they started with, and the way an epoch that ended in workers reaches the
    next workers, which are new copies of the main process's stream."""
    signal = multiprocessing.RawArray("q", 4)
    _SIGNALS[id(signal)] = signal
    return signal


#: This process's epoch signals by id, and their (next epoch, epoch ends) when this
#: process was forked: what a forked DataLoader worker compares with what it has seen.
_SIGNALS: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_ENDS_AT_FORK: dict[int, tuple[int, int]] = {}


def _snapshot_signals() -> None:
    """In a forked child: every signal's ended epoch as the parent left it."""
    _ENDS_AT_FORK.clear()
    for key, signal in list(_SIGNALS.items()):
        _ENDS_AT_FORK[key] = (signal[2], signal[3])


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_snapshot_signals)


def ends_at_start(signal: Any) -> tuple[int, int] | None:
    """(next epoch, epoch ends) of ``signal`` now, for the pickled copy of a spawned
    worker, else None (a copy made by ``copy.deepcopy`` or ``pickle``)."""
    return (signal[2], signal[3]) if signal is not None and get_spawning_popen() else None


def take_ended_epoch(signal: Any, pickled: tuple[int, int] | None) -> tuple[int, int] | None:
    """The (next epoch, epoch ends) an iterator compares with the ends it has seen: the
    live values in the main process; in a DataLoader worker, once, those when its
    process started (``pickled`` for a spawned one, the fork snapshot otherwise), so
    that the ends of its siblings, which run the same epoch, never count, whatever the
    loader's seed (a loader seeded alike every pass repeated the first epoch)."""
    if signal is None:
        return None
    if get_worker_info() is None:
        return signal[2], signal[3]
    return pickled if pickled is not None else _ENDS_AT_FORK.pop(id(signal), None)


def in_worker() -> bool:
    """Whether this process is a DataLoader worker."""
    return get_worker_info() is not None


def signal_for_pickling(signal: Any) -> Any:
    """The epoch signal when a worker process is being started (it shares the block),
    else None: a copy made by ``copy.deepcopy`` or ``pickle`` gets no link to it."""
    return signal if get_spawning_popen() is not None else None


def pickling_context() -> tuple[int, int] | None:
    """(rank, world size) of the process pickling a stream for its workers, or None when
    it cannot be known here (the worker then finds, or refuses, its own)."""
    try:
        return distributed_context()
    except ValueError:
        return None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, else CUDA when available (the current device; under torchrun
    ``cuda:LOCAL_RANK`` when ``torch.cuda.set_device`` was not called), else CPU."""
    if device is not None:
        resolved = torch.device(device)
        check_worker_device(resolved)
        return resolved
    if not torch.cuda.is_available():
        return torch.device("cpu")
    check_worker_device(torch.device("cuda"))  # before anything initialises CUDA
    index = torch.cuda.current_device()
    local = os.environ.get("LOCAL_RANK")
    if index == 0 and local and local.isdecimal() and int(local) < torch.cuda.device_count():
        index = int(local)
    return torch.device("cuda", index)


def check_worker_device(device: torch.device) -> None:
    """Refuse CUDA in a forked DataLoader worker, with the fix in the message.

    A forked worker inherits this module from its parent (so ``_IMPORT_PID`` is the
    parent's pid); a spawned one imports it afresh. CUDA in a forked child fails with a
    cryptic error as soon as the parent has touched CUDA, so it is refused whether or
    not the parent has (the behaviour must not depend on the order).
    """
    if device.type != "cuda" or get_worker_info() is None:
        return
    bad_fork = getattr(torch.cuda, "_is_in_bad_fork", lambda: False)()
    if bad_fork or os.getpid() != _IMPORT_PID:
        raise RuntimeError(
            f"DatasetGANStream on {device} cannot run in a forked DataLoader worker "
            "(CUDA does not survive fork). Use num_workers=0 (recommended: the stream "
            "already generates whole batches on the GPU), or "
            "DataLoader(..., multiprocessing_context='spawn'), or device='cpu'."
        )


def stateful_loader(dataset: Any, num_workers: int, **kwargs: Any) -> DataLoader:
    """torchdata's ``StatefulDataLoader`` over ``dataset``: with workers, its
    ``state_dict()`` holds every worker's stream state (snapshotted with each batch) and
    ``load_state_dict()`` hands each worker its own back, which a plain DataLoader cannot.
    Needs torchdata (``TORCHDATA`` says whether it is installed)."""
    if not TORCHDATA:
        raise ModuleNotFoundError(f"stateful_loader needs torchdata: {TORCHDATA.message}")
    from torchdata.stateful_dataloader import StatefulDataLoader

    with warnings.catch_warnings():  # torchdata 0.11 calls a deprecated torch hook
        warnings.filterwarnings("ignore", message=".*set_vital.* is deprecated")
        return StatefulDataLoader(dataset, num_workers=num_workers, **kwargs)


def resumable_stream_loader(
    stream: Any, num_workers: int, persistent_workers: bool = False
) -> tuple[DataLoader, Any | None]:
    """A whole-batch DataLoader over ``stream`` and the object that holds its position
    (what ``train_segmentation(resumable_source=...)`` saves): the stream itself with 0
    workers; with workers torchdata's ``StatefulDataLoader`` when installed (every
    worker's stream state), else a plain DataLoader and None (its workers restart at
    their first samples)."""
    if not num_workers:
        return DataLoader(stream, batch_size=None, num_workers=0), stream
    if TORCHDATA:
        loader = stateful_loader(
            stream, num_workers, batch_size=None, persistent_workers=persistent_workers
        )
        return loader, loader
    plain = DataLoader(
        stream, batch_size=None, num_workers=num_workers, persistent_workers=persistent_workers
    )
    return plain, None
