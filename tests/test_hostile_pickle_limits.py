"""Pickles that cost far more CPU or memory than their size, in both readers (NVIDIA
``.pkl`` networks and the look at ``torch.save`` files before torch reads them).

- Dict keys and set elements that Python hashes alike: ints are hashed modulo a fixed
  prime, unsalted, so ``k * (2**61 - 1)`` all hash to 0 and filling a dict with them is
  quadratic (32,000 keys, 447 kB: 13 s; a few MB: hours). They are refused before they
  are hashed, in every opcode and call that hashes (SETITEM(S), DICT, ADDITEMS,
  FROZENSET, ``set(l)``, ``OrderedDict(pairs)``, ``EasyDict(pairs)``, whether called by
  REDUCE, OBJ, INST or NEWOBJ).
- One-byte opcodes that make a container, mark or memo entry of 50-220 bytes: 5 MB of
  EMPTY_SET took 1.15 GB. Their number is capped (``container_cap``: at least
  ``MIN_CONTAINER_CAP``, more for larger files); the tests lower the floor to 1,000.
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from test_hostile_generators import assert_refused

from dgan_data.generators import unpickle

MODULUS = sys.hash_info.modulus  # 2**61 - 1 on 64-bit builds
COLLIDING = [k * MODULUS for k in range(1, 4)]  # hash(k * MODULUS) == 0 for every k


def zip_pt(path: Path, data_pkl: bytes) -> Path:
    """A ``torch.save`` zip archive whose pickle is ``data_pkl``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    return path


def test_the_colliding_keys_of_these_tests_do_collide():
    assert {hash(k) for k in COLLIDING} == {0}


@pytest.mark.parametrize(
    "data, protocol",
    [
        ({k: 0 for k in COLLIDING}, 4),  # EMPTY_DICT + SETITEMS
        ({COLLIDING[0]: 0}, 4),  # SETITEM (one key)
        ({k: 0 for k in COLLIDING}, 0),  # MARK ... DICT
        (set(COLLIDING), 4),  # EMPTY_SET + ADDITEMS
        (set(COLLIDING), 2),  # REDUCE builtins.set(list)
        (frozenset(COLLIDING), 4),  # MARK ... FROZENSET
        ({(1, COLLIDING[0]): 0}, 4),  # inside a tuple key: tuples hash their items
    ],
    ids=["setitems", "setitem", "dict-p0", "additems", "set-call", "frozenset", "tuple"],
)
def test_colliding_int_keys_are_refused_in_network_pickles(tmp_path, data, protocol):
    """Such files were read to the end (the error came only after all the hashing)."""
    path = tmp_path / "flood.pkl"
    path.write_bytes(pickle.dumps({"G_ema": data, "x": 1}, protocol=protocol))
    assert_refused(
        path, "a dict key or set element is an int of 6", "can be chosen to share one hash"
    )


def test_colliding_keys_in_an_ordered_dict_call_are_assert_refused(tmp_path):
    """``OrderedDict(pairs)`` hashes the pairs' first items."""
    pairs = pickle.dumps([(k, 0) for k in COLLIDING], protocol=2)
    call = b"\x80\x02ccollections\nOrderedDict\n" + pairs[2:-1] + b"\x85R."
    assert pickle.loads(call) == OrderedDict((k, 0) for k in COLLIDING)  # a real pickle
    path = tmp_path / "od.pkl"
    path.write_bytes(call)
    assert_refused(path, "a dict key or set element is an int of 6")


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _colliding_list(pairs: bool = False) -> bytes:
    """A pickled list of the colliding ints (or of (int, None) pairs)."""
    return pickle.dumps([(k, None) for k in COLLIDING] if pairs else COLLIDING, 2)[2:-1]


KEYED_CALLS = {  # every opcode that calls an allow-listed type, with keys to hash
    "obj-frozenset": pickle.MARK
    + _global("builtins", "frozenset")
    + _colliding_list()
    + pickle.OBJ,
    "inst-frozenset": pickle.MARK + _colliding_list() + b"ibuiltins\nfrozenset\n",
    "newobj-frozenset": _global("builtins", "frozenset")
    + _colliding_list()
    + pickle.TUPLE1
    + pickle.NEWOBJ,
    "newobj-ex-frozenset": _global("builtins", "frozenset")
    + _colliding_list()
    + pickle.TUPLE1
    + pickle.EMPTY_DICT
    + pickle.NEWOBJ_EX,
    "obj-set": pickle.MARK + _global("builtins", "set") + _colliding_list() + pickle.OBJ,
    "reduce-easydict": _global("dnnlib.util", "EasyDict")
    + _colliding_list(True)
    + pickle.TUPLE1
    + pickle.REDUCE,
    "obj-ordereddict": pickle.MARK
    + _global("collections", "OrderedDict")
    + _colliding_list(True)
    + pickle.OBJ,
}


@pytest.mark.parametrize("name", list(KEYED_CALLS))
def test_colliding_keys_are_refused_whichever_opcode_makes_the_call(tmp_path, name):
    """Only REDUCE of set, frozenset and OrderedDict was checked: the same types made by
    OBJ, INST or NEWOBJ, and EasyDict(pairs), hashed 30,000 such keys (10 s per 360 kB)."""
    data = b"\x80\x04" + KEYED_CALLS[name] + b"."
    with pytest.raises(pickle.UnpicklingError, match="int of 6"):
        unpickle.RestrictedUnpickler(io.BytesIO(data), "x.pkl").load()
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(data)
    assert_refused(path, "a dict key or set element is an int of 6")


def test_calls_with_ordinary_keys_still_build_their_containers():
    small = pickle.dumps([1, 2, 2], 2)[2:-1]
    pairs = pickle.dumps([("a", 1), ("b", 2)], 2)[2:-1]
    calls = {
        pickle.MARK + _global("builtins", "frozenset") + small + pickle.OBJ: frozenset({1, 2}),
        _global("builtins", "frozenset") + small + pickle.TUPLE1 + pickle.NEWOBJ: frozenset({1, 2}),
        _global("dnnlib.util", "EasyDict") + pairs + pickle.TUPLE1 + pickle.REDUCE: {
            "a": 1,
            "b": 2,
        },
    }
    for body, expected in calls.items():
        data = b"\x80\x04" + body + b"."
        assert unpickle.RestrictedUnpickler(io.BytesIO(data), "x.pkl").load() == expected


def test_colliding_keys_in_a_torch_file_are_refused_before_torch_reads_it(tmp_path):
    path = tmp_path / "flood.pt"
    torch.save({"g_ema": {k: torch.zeros(1) for k in COLLIDING}}, path)
    assert_refused(path, "a dict key or set element is an int of 6")


@pytest.mark.parametrize("suffix", [".pkl", ".pt"])
def test_long_or_nested_tuple_keys_are_assert_refused(tmp_path, suffix):
    """A tuple's hash is not cached: a long one costs its length at every use."""
    for key in (tuple(range(unpickle.MAX_KEY_TUPLE + 1)), ((1, 2), 3)):
        path = tmp_path / f"tuple{len(key)}{suffix}"
        data = {"G_ema" if suffix == ".pkl" else "g_ema": {key: 0}}
        if suffix == ".pkl":
            path.write_bytes(pickle.dumps(data, protocol=4))
        else:
            torch.save(data, path)
        assert_refused(path, "tuple of", f"at most {unpickle.MAX_KEY_TUPLE} scalars")


def test_ordinary_keys_still_pass_the_key_check(tmp_path):
    """Small ints, strings and short tuples of scalars (optimiser states, names): the
    file fails later, for having no network, not for its keys."""
    keys = {0: 1, -(MODULUS - 1): 2, MODULUS - 1: 3, "w": 4, (1, "a", 2.5): 5}
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"D": keys, "s": set(range(5))}, protocol=4))
    msg = assert_refused(path)
    assert "G_ema" in msg and "bits" not in msg and "tuple" not in msg


@pytest.mark.parametrize(
    "opcode",
    [pickle.EMPTY_SET, pickle.EMPTY_DICT, pickle.EMPTY_LIST, pickle.MARK],
    ids=["empty-set", "empty-dict", "empty-list", "mark"],
)
@pytest.mark.parametrize("suffix", [".pkl", ".pt"])
def test_one_byte_containers_are_capped(tmp_path, monkeypatch, opcode, suffix):
    """5 MB of EMPTY_SET took 1.15 GB before any check (236 times the file)."""
    monkeypatch.setattr(unpickle, "MIN_CONTAINER_CAP", 1000)
    data = b"\x80\x04" + opcode * 1001 + b"N."
    path = tmp_path / f"amplify{suffix}"
    if suffix == ".pkl":
        path.write_bytes(data)
    else:
        zip_pt(path, data)
    assert_refused(path, "more than 1000 containers, marks and memo entries")


def test_memo_entries_count_too(tmp_path, monkeypatch):
    """MEMOIZE is one byte and adds a memo entry (an int key and a dict slot)."""
    monkeypatch.setattr(unpickle, "MIN_CONTAINER_CAP", 1000)
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x04N" + pickle.MEMOIZE * 1001 + b".")
    assert_refused(path, "more than 1000 containers")


def test_the_cap_grows_with_the_file():
    """Large real snapshots make ~10^5 containers; the cap never falls below the floor."""
    assert unpickle.container_cap(10) == unpickle.MIN_CONTAINER_CAP
    assert unpickle.container_cap(64 * 10**8) == 10**8
