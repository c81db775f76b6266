"""NVIDIA network pickles read as plain data; nothing found in the file is run or trusted.

NVIDIA's ``.pkl`` networks (stylegan2-ada-pytorch, stylegan3) are pickles whose network
objects go through ``torch_utils.persistence``: a hook that receives the Python source
of the network's module and executes it. What such a pickle holds, and all that is
accepted here:

- persistent objects: ``_reconstruct_persistent_obj(meta)``, with ``meta`` a dict of
  ``class_name``, ``module_src`` and ``state`` (the module's ``__dict__``);
- tensors: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` (possibly inside
  ``torch._tensor._rebuild_from_type_v2``) on storages that plain pickling writes as
  small legacy ``torch.save`` files (``torch.storage._load_from_bytes``);
- containers: ``dict``, ``list``, ``tuple``, ``set``, ``collections.OrderedDict``,
  ``dnnlib.EasyDict``; numbers and strings;
- numpy values: float64 gains (``numpy.core.multiarray.scalar``), small arrays in
  StyleGAN3 layers (``_reconstruct`` + state), with their ``numpy.dtype``.

How it is read:

- The pure-Python unpickler (its memo is a dict; the C unpickler preallocates a list as
  long as the largest memo index a file names, so 10 bytes could ask for gigabytes),
  with ``BYTEARRAY8`` read from the bytes present (pickle's own zeroes the length the
  file declares first: 4 GiB for a 16-byte file).
- ``find_class`` resolves the allow-list only, each name to a function of ours; the
  persistence hook becomes one that keeps the state as data and drops the source.
- Our functions return inert records, and ``BUILD`` (``__setstate__``) is refused on
  everything but our numpy dtype and array records, so no torch or numpy object ever
  receives state from the file.
- Storage blobs are parsed here, never by ``torch.load``: their declared sizes must
  match the bytes present. Tensors are views checked against their storage's length
  (no stride 0, no overlap, inside the storage), then copied out. Numpy dtypes are
  made by name from a fixed list of numeric types; scalars and arrays from exactly as
  many bytes as their shape needs.
- A running budget: every tensor and array made, and every copy of bytes, adds its
  bytes (before it is allocated); beyond the file's size plus ``BUDGET_SLACK`` the
  pickle is refused (:class:`PickleTooLarge`). A pickle can name one memoised storage
  in any number of ``_rebuild_tensor_v2`` calls for 5 bytes each: without the budget,
  2.5 KB asked for 1.9 GB. Containers made by allow-listed calls (``OrderedDict(l)``,
  ``set(l)`` on a memoised ``l``) count their entries against ``MAX_OBJECTS``.
- One pass then visits every object once (bounded depth and count; shared and
  circular references stay shared or circular) and turns records into tensors, numpy
  values and :class:`PersistentObject`.

``torch.save`` files (``.pt``) are read by torch's ``weights_only`` loader, which calls
``bytearray(n)``, tensor constructors and ``_rebuild_qtensor`` and allocates legacy
storages at the sizes the pickle declares. :func:`scan_torch_file` reads their pickles
first, with inert objects only, and refuses sizes beyond what the file holds.
"""

from __future__ import annotations

import _compat_pickle
import contextvars
import io
import logging
import math
import mmap
import os
import pickle
import re
import struct
import sys
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .files import CheckpointError, check_file, layout_problem, printable, short_repr

log = logging.getLogger(__name__)

__all__ = [
    "PERSISTENCE_HOOK",
    "PersistentObject",
    "PickleTooLarge",
    "PlainPickle",
    "read_nvidia_pickle",
]

#: The dotted name NVIDIA's persistence module pickles as the reconstruct function.
PERSISTENCE_HOOK = ("torch_utils.persistence", "_reconstruct_persistent_obj")
#: Deepest nesting of containers in the unpickled data (real networks stay below 30).
MAX_DEPTH = 64
#: Most objects in the unpickled data (a 1024 px training snapshot has about 10^5).
MAX_OBJECTS = 5_000_000
#: Fewest containers, marks and memo entries a pickle may make while it is read (beyond
#: ``CONTAINERS_PER_BYTE`` times its size): each costs 50-220 bytes of memory for one
#: byte of opcode (10^6 empty sets from 1 MB take 216 MB; a 1024 px snapshot makes ~10^5).
MIN_CONTAINER_CAP = 1_000_000
CONTAINERS_PER_BYTE = 1 / 64
#: Python hashes an int as its value modulo this prime, unsalted: ints beyond it can be
#: chosen to collide (every ``k * (2**61 - 1)`` hashes to 0) and make dicts quadratic.
_INT_HASH_MODULUS = sys.hash_info.modulus
#: Longest tuple accepted as a dict key or set element (its hash is not cached).
MAX_KEY_TUPLE = 16
#: Magic number and protocol of the legacy ``torch.save`` format of storage blobs.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
#: Bytes of tensors and arrays a network pickle may produce beyond its file's size.
#: Each stored element is copied out once, so a real network stays below its file size.
BUDGET_SLACK = 2**20

#: Words whose presence in a module's embedded source identifies the architecture.
_SOURCE_MARKERS = ("SynthesisInput", "filtered_lrelu")


# --------------------------------------------------------------- plain data
@dataclass
class PersistentObject:
    """A persistent NVIDIA object as data: its class name and its ``__dict__``.

    ``source_mentions`` holds the marker words (see ``_SOURCE_MARKERS``) found in the
    embedded module source by substring search; the source itself is dropped.
    """

    class_name: str
    state: dict[str, Any] = field(repr=False)  # may be shared or circular: never printed
    source_mentions: frozenset[str] = field(default_factory=frozenset)

    def modules(self) -> dict[str, Any]:
        """The sub-modules (``_modules``); empty when absent or not a dict."""
        return _as_dict(self.state.get("_modules"))

    def attr(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)

    def init_kwargs(self) -> dict[str, Any]:
        """The constructor's keyword arguments; empty when absent or not a dict."""
        return _as_dict(self.state.get("_init_kwargs"))


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


class _AttrDict(dict):
    """Stand-in for ``dnnlib.EasyDict``: a dict."""


# ------------------------------------------------------------------ budget
class PickleTooLarge(pickle.UnpicklingError):
    """A pickle asks for far more memory than its file holds."""


class PlainPickle(pickle.UnpicklingError):
    """A file that is one plain pickle (``pickle.dump``), not a ``torch.save`` file."""


class _Budget:
    """What one network pickle has made so far: bytes of tensors, arrays and byte copies
    against ``limit``, and entries of containers made by calls against ``MAX_OBJECTS``."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.entries = limit, 0, 0
        self.encoded: dict[int, tuple[str, bytes]] = {}  # id(text) -> (text, its bytes)

    def charge(self, nbytes: int, what: str) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise PickleTooLarge(
                f"the tensors and arrays it makes add up to more than {self.limit} bytes, "
                f"its file's size plus {BUDGET_SLACK} (a {what} of {nbytes} bytes went over): "
                "it reuses stored data over and over"
            )

    def count(self, entries: int) -> None:
        self.entries += entries
        if self.entries > MAX_OBJECTS:
            raise PickleTooLarge(
                f"its calls build containers of more than {MAX_OBJECTS} entries in all"
            )


#: The budget of the network pickle being read (None outside ``read_nvidia_pickle``).
_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "dgan_data_pickle_budget", default=None
)


def _charge(nbytes: int, what: str) -> None:
    """Count ``nbytes`` about to be allocated against the current pickle's budget."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(nbytes, what)


# ------------------------------------------------------------------ records
class _Record:
    """Base of the inert objects our allow-listed functions hand to the unpickler."""

    __slots__ = ()


class _Marker(_Record):
    """A class named in the pickle (``torch.Tensor``, ``numpy.ndarray``, a storage type)."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: torch.dtype | None = None) -> None:
        self.name, self.dtype = name, dtype


class _Value(_Record):
    """A finished tensor, kept away from the unpickler until the final pass."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Storage(_Record):
    """A storage blob's bytes and dtype; its tensor is made once, on first use."""

    __slots__ = ("_flat", "data", "dtype", "numel")

    def __init__(self, dtype: torch.dtype, data: memoryview) -> None:
        self.dtype, self.data = dtype, data
        self.numel = len(data) // _itemsize(dtype)
        self._flat: torch.Tensor | None = None

    def flat(self) -> torch.Tensor:
        if self._flat is None:
            with warnings.catch_warnings():  # read-only bytes: every view is cloned
                warnings.simplefilter("ignore", UserWarning)
                self._flat = (
                    torch.frombuffer(self.data, dtype=self.dtype)
                    if self.data
                    else torch.empty(0, dtype=self.dtype)
                )
        return self._flat


class _PersistentRecord(_Record):
    __slots__ = ("class_name", "mentions", "state")

    def __init__(self, class_name: str, state: dict, mentions: frozenset[str]) -> None:
        self.class_name, self.state, self.mentions = class_name, state, mentions


class _DTypeRecord(_Record):
    """``numpy.dtype(name)``; ``BUILD`` may only set the byte order."""

    __slots__ = ("built", "dtype")

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype, self.built = dtype, False

    def build(self, state: Any) -> None:
        if self.built or not isinstance(state, tuple) or len(state) not in (8, 9):
            raise pickle.UnpicklingError("refused numpy dtype state")
        version, order, subarray, names, fields = state[:5]
        if version not in (3, 4) or order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"refused numpy dtype state ({short_repr(order)})")
        if subarray is not None or names is not None or fields is not None:
            raise pickle.UnpicklingError("refused structured numpy dtype")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)
        self.built = True


class _ArrayRecord(_Record):
    """``numpy.ndarray`` state: built from exactly as many bytes as its shape needs."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def build(self, state: Any) -> None:
        if self.array is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("refused numpy array state")
        if len(state) == 5:
            if state[0] != 1:
                raise pickle.UnpicklingError("refused numpy array state (version)")
            state = state[1:]
        shape, dtype, fortran, raw = state
        if not isinstance(fortran, bool):
            raise pickle.UnpicklingError("refused numpy array state (order)")
        self.array = _array_from_bytes(raw, dtype, shape, "F" if fortran else "C")


# --------------------------------------------------------------- numpy values
#: The only numpy dtypes accepted, by the names numpy pickles them under.
_NUMPY_DTYPES = {
    name: np.dtype(name)
    for name in ("b1", "?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")
}


def _np_dtype(spec: Any, align: Any = False, copy: Any = True) -> _DTypeRecord:
    dtype = _NUMPY_DTYPES.get(spec) if isinstance(spec, str) else None
    if dtype is None:
        raise pickle.UnpicklingError(
            f"refused numpy dtype {short_repr(spec)} (only bool, int, uint and float dtypes)"
        )
    return _DTypeRecord(dtype)


def _as_bytes(raw: Any) -> bytes:
    """``raw`` as bytes; a copy (of text or a bytearray) is charged to the budget."""
    if isinstance(raw, str):  # protocol-2 pickles of bytes come back as latin-1 text
        return _latin1_encode(raw)
    if isinstance(raw, bytearray):
        _charge(len(raw), "copy of a bytearray")
        return bytes(raw)
    if not isinstance(raw, bytes):
        raise pickle.UnpicklingError(f"expected bytes, found {type(raw).__name__}")
    return raw


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > 32:
        raise pickle.UnpicklingError(f"{what}: not a shape")
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in value):
        raise pickle.UnpicklingError(f"{what}: not a shape")
    return tuple(value)


def _array_from_bytes(raw: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    if not isinstance(dtype, _DTypeRecord):
        raise pickle.UnpicklingError("numpy array without an accepted dtype")
    raw = _as_bytes(raw)
    shape = _shape(shape, "numpy array")
    if math.prod(shape) * dtype.dtype.itemsize != len(raw):
        raise pickle.UnpicklingError(
            f"numpy array of shape {shape} needs {math.prod(shape) * dtype.dtype.itemsize} "
            f"bytes, the pickle has {len(raw)}"
        )
    _charge(len(raw), "numpy array")
    return np.frombuffer(raw, dtype=dtype.dtype).reshape(shape, order=order).copy()


def _np_scalar(dtype: Any, *args: Any) -> int | float | bool:
    """``numpy.core.multiarray.scalar``: a numeric scalar as a Python number."""
    if not isinstance(dtype, _DTypeRecord) or len(args) != 1:
        raise pickle.UnpicklingError("refused numpy scalar")
    raw = _as_bytes(args[0])
    if len(raw) != dtype.dtype.itemsize:
        raise pickle.UnpicklingError("numpy scalar of the wrong size")
    return np.frombuffer(raw, dtype=dtype.dtype, count=1)[0].item()


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> _ArrayRecord:
    """``numpy.core.multiarray._reconstruct``: an empty record that ``BUILD`` fills."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"refused numpy array subtype {short_repr(subtype)}")
    return _ArrayRecord()


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _Value:
    """``numpy.core.numeric._frombuffer`` (protocol-5 arrays)."""
    if isinstance(buf, pickle.PickleBuffer):
        raw = buf.raw()
        _charge(raw.nbytes, "copy of a pickle buffer")
        buf = bytes(raw)
    if order not in ("C", "F"):
        raise pickle.UnpicklingError("refused numpy array order")
    return _Value(_array_from_bytes(buf, dtype, shape, order))


_NDARRAY = _Marker("numpy.ndarray")


# ----------------------------------------------------------------- tensors
#: torch storage classes -> dtype (the names legacy ``torch.save`` pickles).
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


#: Bytes per element of storage types a generator never holds (complex, quantized,
#: float8...): a ``.pt`` that names one is refused; until then its storages count at
#: their true size, and any other unknown type at the largest, 16 bytes.
_REFUSED_STORAGE_ITEMSIZE = {
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "ComplexHalfStorage": 4,
    "QInt32Storage": 4,
    "QInt8Storage": 1,
    "QUInt8Storage": 1,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}
_MAX_ITEMSIZE = 16


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _rebuild_tensor(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _Value:
    """``torch._utils._rebuild_tensor_v2``, checked against the storage's length."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage")
    size, stride = _shape(size, "tensor size"), _shape(stride, "tensor stride")
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise pickle.UnpicklingError("tensor offset is not an integer")
    if backward_hooks or metadata:
        raise pickle.UnpicklingError("refused tensor with hooks or metadata")
    problem = layout_problem(size, stride, offset, storage.numel)
    if problem is not None:
        raise pickle.UnpicklingError(f"refused tensor of size {size}: {problem}")
    if math.prod(size) == 0:
        return _Value(torch.empty(size, dtype=storage.dtype))
    _charge(math.prod(size) * _itemsize(storage.dtype), "tensor")
    flat = storage.flat()
    view = torch.as_strided(flat, size, stride, offset)
    return _Value(view.clone(memory_format=torch.contiguous_format))


def _rebuild_tensor_v1(storage: Any, offset: Any, size: Any, stride: Any) -> _Value:
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None) -> _Value:
    """``torch._utils._rebuild_parameter``: parameters are kept as plain tensors."""
    if not isinstance(data, _Value) or not isinstance(data.value, torch.Tensor) or hooks:
        raise pickle.UnpicklingError("refused parameter")
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, hooks: Any, state: Any) -> _Value:
    return _rebuild_parameter(data, requires_grad, hooks)


_TENSOR = _Marker("torch.Tensor")
_PARAMETER = _Marker("torch.nn.Parameter")


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> _Value:
    """``torch._tensor._rebuild_from_type_v2`` for plain tensors and parameters only."""
    if func not in (_rebuild_tensor, _rebuild_tensor_v1, _rebuild_parameter):
        raise pickle.UnpicklingError("refused tensor rebuild function")
    if new_type not in (_TENSOR, _PARAMETER) or state or not isinstance(args, tuple):
        raise pickle.UnpicklingError("refused tensor subclass or tensor state")
    return func(*args)


# -------------------------------------------------------------- storage blobs
class _UnknownOpcode(pickle.UnpicklingError):
    """A byte that is no pickle opcode where an opcode should be."""


class _Truncated(pickle.UnpicklingError):
    """The file ends inside the pickle."""


class _OpcodeTable(dict):
    """The unpickler's opcode -> handler table; a byte that is no opcode raises
    :class:`_UnknownOpcode` (pickle's own table raises a bare ``KeyError: 216``)."""

    def __missing__(self, key: int) -> Any:
        raise _UnknownOpcode(f"unknown opcode 0x{key:02x}")


def container_cap(size: int) -> int:
    """Containers, marks and memo entries a pickle of ``size`` bytes may make."""
    return max(MIN_CONTAINER_CAP, int(size * CONTAINERS_PER_BYTE))


def check_hash_keys(items: Any) -> None:
    """Refuse dict keys or set elements whose hashes can be made to collide (ints beyond
    Python's hash modulus, also inside tuples) or cost their length at each use (tuples
    longer than ``MAX_KEY_TUPLE``, nested tuples): a few hundred kB of such keys kept
    the unpickler busy for minutes before any check ran."""
    for item in items:
        kind = type(item)
        if kind is int and not -_INT_HASH_MODULUS < item < _INT_HASH_MODULUS:
            raise pickle.UnpicklingError(
                f"a dict key or set element is an int of {item.bit_length()} bits (ints "
                "that large can be chosen to share one hash)"
            )
        if kind is tuple:
            if len(item) > MAX_KEY_TUPLE or any(type(v) in (tuple, frozenset) for v in item):
                raise pickle.UnpicklingError(
                    f"a dict key or set element is a tuple of {len(item)} items or a nested "
                    f"one (at most {MAX_KEY_TUPLE} scalars)"
                )
            check_hash_keys(item)


def _check_call_keys(func: Any, args: Any) -> None:
    """``set(l)``, ``frozenset(l)``, ``OrderedDict(pairs)``, ``EasyDict(pairs)``: the keys
    such a call will hash, checked first, whichever opcode makes the call (REDUCE, OBJ,
    INST, NEWOBJ, NEWOBJ_EX); the allow-list hands out no other callable that hashes."""
    if not (isinstance(func, type) and issubclass(func, (set, frozenset, dict))):
        return
    if not (isinstance(args, (list, tuple)) and args and type(args[0]) in (list, tuple)):
        return  # no arguments, or a dict or set whose keys were checked when it was made
    items = args[0]
    if issubclass(func, dict):
        items = [p[0] for p in items if type(p) in (list, tuple) and p]
    check_hash_keys(items)


def _makes_container(handler: Any) -> Any:
    """An opcode handler that first counts the container, mark or memo entry it makes."""

    def load(self: _SafeUnpickler) -> None:
        self.containers += 1
        if self.containers > self.max_containers:
            raise PickleTooLarge(
                f"it makes more than {self.max_containers} containers, marks and memo "
                "entries, far more than a network's pickle of its size"
            )
        handler(self)

    return load


def _hashes_keys(handler: Any, keys: Any) -> Any:
    """An opcode handler that first checks the keys (``keys(stack)``) it will hash."""

    def load(self: _SafeUnpickler) -> None:
        check_hash_keys(keys(self.stack))
        handler(self)

    return load


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its memo is a dict
    """Pure-Python unpickler: allow-listed globals, no persistent ids, BUILD on records."""

    dispatch: ClassVar[dict[int, Any]] = _OpcodeTable(pickle._Unpickler.dispatch)
    allowed: ClassVar[dict[tuple[str, str], Any]] = {}

    def __init__(self, file: Any) -> None:
        super().__init__(file)

    def find_class(self, module: str, name: str) -> Any:
        # Protocol < 3 pickles spell some names the Python 2 way (__builtin__.set).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        obj = self.allowed.get((module, name))
        if obj is None:
            raise self.refuse(module, name)
        return obj

    def refuse(self, module: str, name: str) -> Exception:
        return pickle.UnpicklingError(f"refused global {printable(module)}.{printable(name)}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"refused persistent id {short_repr(pid)}")

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, (_DTypeRecord, _ArrayRecord)):
            inst.build(state)
        elif isinstance(inst, _AttrDict) and isinstance(state, dict):
            inst.update(state)
        else:
            raise pickle.UnpicklingError(f"refused to set the state of a {type(inst).__name__}")

    def load_bytearray8(self) -> None:
        """``BYTEARRAY8`` from the bytes present: pickle's own preallocates (and zeroes)
        the length the file declares, 4 GiB for a 16-byte file."""
        (n,) = struct.unpack("<Q", self.read(8))
        try:
            data = self.read(n)
        except _Truncated as err:
            raise _Truncated(f"BYTEARRAY8 declares {n} bytes; {err}") from None
        if len(data) != n:
            raise pickle.UnpicklingError(
                f"BYTEARRAY8 declares {n} bytes, the pickle holds {len(data)}"
            )
        self.append(bytearray(data))

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    # memory and CPU bounds that tensor budgets do not see (subclasses copy this table)
    containers = 0
    max_containers = MIN_CONTAINER_CAP
    for _op in (
        pickle.EMPTY_LIST, pickle.EMPTY_DICT, pickle.EMPTY_SET, pickle.MARK, pickle.LIST,
        pickle.DICT, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3,
        pickle.FROZENSET, pickle.MEMOIZE, pickle.PUT, pickle.BINPUT, pickle.LONG_BINPUT,
    ):  # fmt: skip
        dispatch[_op[0]] = _makes_container(dispatch[_op[0]])
    for _op, _keys in (
        (pickle.SETITEM, lambda stack: stack[-2:-1]),
        (pickle.SETITEMS, lambda stack: stack[0::2]),  # the items since the mark
        (pickle.DICT, lambda stack: stack[0::2]),
        (pickle.ADDITEMS, lambda stack: stack),
        (pickle.FROZENSET, lambda stack: stack),
    ):
        dispatch[_op[0]] = _hashes_keys(dispatch[_op[0]], _keys)
    del _op, _keys


class _BlobUnpickler(_SafeUnpickler):
    """One pickle of a legacy ``torch.save`` blob: storage types and storage ids only."""

    allowed: ClassVar[dict[tuple[str, str], Any]] = {
        ("torch", name): _Marker(name, dtype) for name, dtype in _STORAGE_DTYPES.items()
    }

    def __init__(self, file: Any, storages: dict[str, tuple[torch.dtype, int]]) -> None:
        super().__init__(file)
        self.storages = storages

    def refuse(self, module: str, name: str) -> Exception:
        return pickle.UnpicklingError(
            f"refused global {printable(module)}.{printable(name)} in a tensor storage blob"
        )

    def persistent_load(self, pid: Any) -> Any:
        ok = isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
        if ok:
            _, kind, key, _location, numel = pid[:5]
            ok = (
                isinstance(kind, _Marker)
                and kind.dtype is not None
                and isinstance(key, str)
                and isinstance(numel, int)
                and numel >= 0
                and (len(pid) == 5 or pid[5] is None)
                and key not in self.storages
            )
        if not ok:
            raise pickle.UnpicklingError("refused persistent id in a tensor storage blob")
        self.storages[key] = (kind.dtype, numel)
        return key


def _storage_from_blob(blob: Any) -> _Storage:
    """``torch.storage._load_from_bytes``: a legacy ``torch.save`` of one storage, parsed here.

    Layout: pickles of the magic number, the protocol version, the system info, the
    storage (a persistent id with dtype and element count) and the list of storage keys;
    then per key an int64 element count and the raw little-endian data.
    """
    blob = _as_bytes(blob)
    f = io.BytesIO(blob)
    storages: dict[str, tuple[torch.dtype, int]] = {}

    def load() -> Any:
        return _BlobUnpickler(f, storages).load()

    if load() != LEGACY_MAGIC or load() != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("a tensor storage blob that is not a legacy torch.save")
    info = load()
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise pickle.UnpicklingError("a tensor storage blob from a big-endian machine")
    key = load()
    keys = load()
    if not isinstance(key, str) or keys != [key] or len(storages) != 1:
        raise pickle.UnpicklingError("a tensor storage blob that does not hold one storage")
    dtype, numel = storages[key]
    count = int.from_bytes(f.read(8), "little", signed=True)
    start, nbytes = f.tell(), numel * _itemsize(dtype)
    if count != numel or start + nbytes != len(blob):
        raise pickle.UnpicklingError(
            f"a tensor storage blob declares {numel} elements but holds "
            f"{max(len(blob) - start, 0)} bytes of data"
        )
    return _Storage(dtype, memoryview(blob)[start:])


# ----------------------------------------------------------- network pickle
def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, latin-1 only."""
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise pickle.UnpicklingError("refused _codecs.encode")
    if encoding.replace("-", "").lower() not in ("latin1", "latin"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding[:20]!r}")
    budget = _BUDGET.get()
    if budget is None:
        return text.encode("latin1")
    # One copy per distinct text (at most the file's size): a repeated call on a
    # memoised text returns the same bytes instead of a new copy.
    known = budget.encoded.get(id(text))
    if known is None or known[0] is not text:
        known = budget.encoded[id(text)] = (text, text.encode("latin1"))
    return known[1]


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` as protocol-2 pickles spell empty bytes (never ``bytes(n)``: n zeros)."""
    if args:
        raise pickle.UnpicklingError("refused bytes() with arguments")
    return b""


def _reconstruct_persistent(meta: Any) -> _PersistentRecord:
    """Our replacement for NVIDIA's persistence hook: keep the state, never run the source."""
    if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError("malformed persistent object (no class_name)")
    state = meta.get("state")
    if state is None:
        state = {}
    name = printable(meta["class_name"], 200)
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"persistent object {name}: state is not a dict")
    src = meta.get("module_src")
    mentions = frozenset(m for m in _SOURCE_MARKERS if isinstance(src, str) and m in src)
    return _PersistentRecord(name, state, mentions)


def _network_globals() -> dict[tuple[str, str], Any]:
    """The complete allow-list of network pickles: (module, name) -> our object."""
    allowed: dict[tuple[str, str], Any] = {
        PERSISTENCE_HOOK: _reconstruct_persistent,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v1,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.storage", "_load_from_bytes"): _storage_from_blob,
        ("torch.nn.parameter", "Parameter"): _PARAMETER,
        ("torch", "Tensor"): _TENSOR,
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "bytes"): _empty_bytes,
        ("dnnlib.util", "EasyDict"): _AttrDict,
        ("dnnlib", "EasyDict"): _AttrDict,
        ("numpy", "dtype"): _np_dtype,
        ("numpy", "ndarray"): _NDARRAY,
    }
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = _np_reconstruct
        allowed[(f"{mod}.multiarray", "scalar")] = _np_scalar
        allowed[(f"{mod}.numeric", "_frombuffer")] = _np_frombuffer
    return allowed


class _WholeReads:
    """The network pickle's bytes, read from the file as the unpickler asks for them (a
    file that is no pickle is refused at its first byte, never read whole into memory),
    whole or not at all: a read or a line cut short by the end of the file's ``size``
    bytes raises :class:`_Truncated` (pickle's own reader returns what is there, and the
    pickle then fails later with an unrelated message)."""

    def __init__(self, file: Any, size: int) -> None:
        self.file, self.size = file, size

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.file.tell()
        if n is None or n < 0:
            n = left
        data = self.file.read(n) if n <= left else b""
        if len(data) < n:
            raise _Truncated(f"it ends at byte {self.size}, inside the pickle")
        return data

    def readline(self) -> bytes:
        line = self.file.readline(max(self.size - self.file.tell(), 0))
        if not line.endswith(b"\n"):
            raise _Truncated(f"it ends at byte {self.file.tell()}, inside the pickle")
        return line


class RestrictedUnpickler(_SafeUnpickler):
    """The network pickle's unpickler; refusals name the file and the global."""

    allowed: ClassVar[dict[tuple[str, str], Any]] = _network_globals()

    dispatch: ClassVar[dict[int, Any]] = _OpcodeTable(_SafeUnpickler.dispatch)

    def __init__(self, file: Any, source: str, budget: _Budget | None = None) -> None:
        super().__init__(file)
        self.source = source
        self.budget = budget
        if budget is not None:
            self.max_containers = container_cap(budget.limit - BUDGET_SLACK)  # file size

    def _counted(self, value: Any) -> Any:
        """A call's result; containers (copies of memoised ones) count their entries."""
        if self.budget is not None and isinstance(value, (dict, set, frozenset)):
            self.budget.count(len(value))
        return value

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        _check_call_keys(func, args)
        self.stack[-1] = self._counted(func(*args))

    def _instantiate(self, klass: Any, args: Any) -> None:  # OBJ and INST
        _check_call_keys(klass, args)
        super()._instantiate(klass, args)
        self._counted(self.stack[-1])

    def load_newobj(self) -> None:  # frozenset.__new__(frozenset, l) hashes l
        _check_call_keys(self.stack[-2], self.stack[-1])
        super().load_newobj()
        self._counted(self.stack[-1])

    def load_newobj_ex(self) -> None:
        _check_call_keys(self.stack[-3], self.stack[-2])
        super().load_newobj_ex()
        self._counted(self.stack[-1])

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, _AttrDict) and isinstance(state, dict):
            self._counted(state)
        super().load_build()

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build

    def refuse(self, module: str, name: str) -> Exception:
        dotted = f"{printable(module)}.{printable(name)}"
        if module.startswith("dnnlib.tflib"):
            return CheckpointError(
                f"{self.source}: a TensorFlow StyleGAN pickle ({dotted}), which "
                "is not supported; convert it to PyTorch first (in an environment you trust), "
                "e.g. with rosinality/stylegan2-pytorch convert_weight.py, and load the .pt"
            )
        return CheckpointError(
            f"{self.source}: refused global {dotted}: NVIDIA network pickles "
            "are read with an allow-list and this file needs something outside it (dgan_data "
            "never runs code from checkpoints)"
        )


# ----------------------------------------------------------- final pass
class _Materialiser:
    """Turns records into values, visiting each object once (bounded depth and count)."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}
        self.count = 0

    def convert(self, obj: Any, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_OBJECTS:
            raise pickle.UnpicklingError(f"more than {MAX_OBJECTS} objects")
        if obj is None or isinstance(obj, (str, bytes, bytearray, bool, int, float, complex)):
            return obj
        if id(obj) in self.memo:
            return self.memo[id(obj)]
        if depth >= MAX_DEPTH:
            raise pickle.UnpicklingError(f"data nested deeper than {MAX_DEPTH} levels")
        return self._convert_new(obj, depth + 1)

    def _convert_new(self, obj: Any, depth: int) -> Any:
        kind = type(obj)
        if kind in (dict, OrderedDict, _AttrDict):
            out = kind()
            self.memo[id(obj)] = out
            for k, v in obj.items():
                out[self._key(k)] = self.convert(v, depth)
            return out
        if kind is list:
            out_list: list[Any] = []
            self.memo[id(obj)] = out_list
            out_list.extend(self.convert(v, depth) for v in obj)
            return out_list
        if kind in (tuple, set, frozenset, torch.Size):
            items = [self.convert(v, depth) for v in obj]
            out = kind(items) if kind is not tuple else tuple(items)
        elif kind is _PersistentRecord:
            out = PersistentObject(obj.class_name, {}, obj.mentions)
            self.memo[id(obj)] = out
            for k, v in obj.state.items():
                out.state[self._key(k)] = self.convert(v, depth)
            return out
        elif kind is _Value:
            out = obj.value
        elif kind is _ArrayRecord:
            if obj.array is None:
                raise pickle.UnpicklingError("numpy array without data")
            out = obj.array
        elif kind is _DTypeRecord:
            out = obj.dtype
        elif kind in (torch.device, torch.dtype):
            out = obj
        else:
            raise pickle.UnpicklingError(f"unexpected {kind.__name__} object in the data")
        self.memo[id(obj)] = out
        return out

    @staticmethod
    def _key(key: Any) -> Any:
        """A dict key: a scalar or a short tuple of scalars."""
        scalars = (str, int, float, bool, bytes, type(None))
        if isinstance(key, scalars):
            return key
        if isinstance(key, tuple) and len(key) <= 16 and all(isinstance(k, scalars) for k in key):
            return key
        raise pickle.UnpicklingError(f"dict key of type {type(key).__name__}")


def read_nvidia_pickle(path: str | Path) -> Any:
    """Unpickle an NVIDIA network pickle as plain data (``PersistentObject`` for networks)."""
    path = Path(path)
    check_file(path)
    budget = _Budget(path.stat().st_size + BUDGET_SLACK)
    token = _BUDGET.set(budget)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            budget.limit = size + BUDGET_SLACK
            raw = RestrictedUnpickler(_WholeReads(f, size), str(path), budget).load()
        log.debug("%s: %d bytes of tensors and arrays (budget %d)", path, budget.used, budget.limit)
        return _Materialiser().convert(raw)
    except CheckpointError:
        raise
    except PickleTooLarge as err:
        raise CheckpointError(
            f"{path}: refused to load: {err} (a damaged or hostile network pickle)"
        ) from None
    except _UnknownOpcode as err:
        raise CheckpointError(f"{path}: not a pickle ({err})") from None
    except (_Truncated, EOFError) as err:
        where = str(err) if isinstance(err, _Truncated) else "it ends before the pickle does"
        raise CheckpointError(
            f"{path}: cannot read as an NVIDIA network pickle: the file is truncated ({where})"
        ) from None
    except MemoryError:
        raise CheckpointError(
            f"{path}: cannot read as an NVIDIA network pickle: out of memory"
        ) from None
    except Exception as err:  # UnpicklingError, EOFError, ValueError, TypeError...
        msg = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: cannot read as an NVIDIA network pickle: {msg}") from None
    finally:
        _BUDGET.reset(token)


# ------------------------------------------------- torch pickles: a look first
#: Callables torch's ``weights_only`` loader allows that allocate what their arguments
#: ask for before anything is checked: ``bytearray(n)`` (n zeroed bytes), tensor and
#: storage constructors (``torch.FloatTensor(*sizes)``) and ``_rebuild_qtensor``
#: (an empty quantized tensor of the declared size, then its storage is set).
_SIZED_CALL = re.compile(r"builtins\.bytearray|torch(\.cuda)?\.\w*(Tensor|Storage)")
_QTENSOR = "torch._utils._rebuild_qtensor"


class _Inert(_Record):
    """What an object of a scanned pickle stands for: nothing is built or called."""

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def add(self, value: Any) -> None:
        pass


class _Global(_Inert):
    """A global named in a scanned pickle, by its dotted name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _StrictReader:
    """File reads that never return less than asked (a pickle's declared length past the
    end of the file is an error here, not a short read, nor a preallocated buffer)."""

    def __init__(self, buf: Any) -> None:
        self.buf = buf

    def read(self, n: int = -1) -> bytes:
        data = self.buf.read(n)
        if n is not None and n >= 0 and len(data) != n:
            raise pickle.UnpicklingError(
                f"an opcode declares {n} bytes, the file holds {len(data)} more"
            )
        return data

    def readline(self) -> bytes:
        return self.buf.readline()

    def tell(self) -> int:
        return self.buf.tell()


def _elements(value: Any) -> int | None:
    """The element count a size argument asks for (an int or a tuple of ints)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return math.prod(value)
    return None


class TorchPickleScan(_SafeUnpickler):
    """Reads a ``torch.save`` pickle with inert objects only, before torch does.

    Nothing is called or built: every global is a name, every call result an inert
    object. What is totalled: the calls that would allocate what their arguments ask
    for, and the bytes of the storages named by persistent ids. Either above ``limit``
    (the file's size) raises :class:`PickleTooLarge`. Storage types outside
    ``_STORAGE_DTYPES`` (complex, quantized...) count at their true element size and are
    refused once the pickle is read: torch would allocate them at 16 bytes an element.
    """

    dispatch: ClassVar[dict[int, Any]] = _OpcodeTable(_SafeUnpickler.dispatch)

    def __init__(self, file: Any, limit: int) -> None:
        pickle._Unpickler.__init__(self, file, encoding="utf-8")
        self.limit = limit
        self.max_containers = container_cap(limit)
        self.storages: dict[Any, int] = {}
        self.refused_type: str | None = None

    def load(self) -> Any:
        """The inert pickle; a storage type outside the table is refused once it is read
        (so a size check that fails on the way is what is reported)."""
        value = super().load()
        if self.refused_type is not None:
            raise pickle.UnpicklingError(
                f"refused tensor storage type {self.refused_type} (a generator checkpoint "
                "holds float, integer and bool storages only)"
            )
        return value

    def _storage_itemsize(self, kind: Any) -> int:
        """Bytes per element of a storage type; a type outside the table is noted."""
        name = kind.name if isinstance(kind, _Global) else short_repr(kind)
        module, _, short = name.rpartition(".")
        if module in ("torch", "torch.cuda"):
            if short in _STORAGE_DTYPES:
                return _itemsize(_STORAGE_DTYPES[short])
            if short == "UntypedStorage":
                return 1
        if self.refused_type is None:
            self.refused_type = printable(name, 100)
        return _REFUSED_STORAGE_ITEMSIZE.get(short, _MAX_ITEMSIZE)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        return _Global(f"{module[:200]}.{name[:200]}")

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage"):
            kind, key, numel = pid[1], pid[2], pid[4]
            itemsize = self._storage_itemsize(kind)
            if isinstance(numel, int) and not isinstance(numel, bool) and numel > 0:
                nbytes = numel * itemsize
                self.storages[key if isinstance(key, (str, int)) else id(key)] = nbytes
                total = sum(self.storages.values())
                if total > self.limit:
                    raise PickleTooLarge(
                        f"its tensor storages declare {total} bytes, more than the "
                        f"{self.limit} bytes of the file"
                    )
        return _Inert()

    def _check_call(self, func: Any, args: Any) -> Any:
        """The inert result of ``func(*args)``, after a look at what it would allocate."""
        name = func.name if isinstance(func, _Global) else ""
        args = args if isinstance(args, tuple) else ()
        if name == "torch.Size" and len(args) == 1 and _elements(args[0]) is not None:
            return tuple(args[0])  # sizes stay readable for the calls they go to
        asked = None
        if _SIZED_CALL.fullmatch(name):
            counts = [_elements(a) for a in args]
            if counts and all(c is not None for c in counts):
                asked = math.prod(counts)  # type: ignore[arg-type]
        elif name == _QTENSOR and len(args) > 2:
            asked = _elements(args[2])
        if asked is not None and asked > self.limit:
            raise PickleTooLarge(
                f"it calls {name}() for {asked} elements, more than the {self.limit} "
                "bytes of the file could hold"
            )
        return _Inert()

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._check_call(self.stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._check_call(self.stack[-1], args)

    def load_newobj_ex(self) -> None:
        self.stack.pop()  # kwargs
        args = self.stack.pop()
        self.stack[-1] = self._check_call(self.stack[-1], args)

    def _instantiate(self, klass: Any, args: Any) -> None:
        self.append(self._check_call(klass, tuple(args)))

    def load_build(self) -> None:
        self.stack.pop()  # the state of an inert object: dropped

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build


def scan_torch_file(path: Path, zip_archive: bool) -> None:
    """Look at the pickles of a ``torch.save`` file before torch reads it.

    Raises :class:`PickleTooLarge` when they ask for more memory than the file holds,
    another ``pickle.UnpicklingError`` (or ``EOFError``...) when they are damaged.
    Zip archives (``zip_archive``, as the caller found): every ``data.pkl`` record (the
    caller has refused compressed records and records larger than the file). Legacy
    files: the magic number, protocol, system info and main pickles, read from a memory
    map; a file whose first pickle is not the magic number is a plain pickle
    (``pickle.dump``), which torch cannot read either: :class:`PlainPickle`.
    """
    size = path.stat().st_size
    if zip_archive:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.rsplit("/", 1)[-1] == "data.pkl":
                    data = zf.read(info)
                    TorchPickleScan(_StrictReader(io.BytesIO(data)), size).load()
        return
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        reader = _StrictReader(m)
        if TorchPickleScan(reader, size).load() != LEGACY_MAGIC:
            raise PlainPickle("a plain pickle (pickle.dump), not a torch.save file")
        for _ in range(3):  # protocol version, system info, the data
            TorchPickleScan(reader, size).load()
