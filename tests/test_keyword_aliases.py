"""A keyword named as other libraries name it gets this package's name: spelling alone
cannot link ``num_samples`` to ``samples_per_epoch`` or ``map_location`` to
``device``, so the close-name hint said nothing for them."""

from __future__ import annotations

import pytest

import dgan_data
from dgan_data.conventions import KEYWORD_ALIASES, keyword_hint
from dgan_data.generators import CheckpointError


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: dgan_data.DatasetGANStream("toyface-14", num_samples=20), "'samples_per_epoch'"),
        (lambda: dgan_data.DatasetGANStream("toyface-14", psi=0.7), "'truncation_psi'"),
        (lambda: dgan_data.DatasetGANStream("toyface-14", random_state=1), "'seed'"),
        (lambda: dgan_data.preview("toyface-14", n=4), "'num'"),
        (lambda: dgan_data.export_dataset("toyface-14", 4, "x", psi=0.7), "'truncation_psi'"),
        (lambda: dgan_data.sample_annotation_folder(generator=None, num=1, out_dir="x"), "'G'"),
    ],
    ids=["stream-num_samples", "stream-psi", "stream-random_state", "preview-n", "export-psi",
         "sample-generator"],
)  # fmt: skip
def test_aliases_name_the_package_keyword(call, expected):
    with pytest.raises(TypeError, match="unexpected keyword argument") as err:
        call()
    assert str(err.value).endswith(f"Did you mean {expected}?")


def test_loader_option_map_location_points_to_device():
    with pytest.raises(CheckpointError, match=r"map_location .*Did you mean 'device'\?"):
        dgan_data.load_generator("toyface-14", map_location="cpu")


def test_alias_hint_rules():
    # only names the function has: a stream has no 'num', so length names one choice
    assert keyword_hint("length", ["samples_per_epoch", "seed"]) == (
        " Did you mean 'samples_per_epoch'?"
    )
    assert keyword_hint("length", ["num", "seed"]) == " Did you mean 'num'?"
    assert keyword_hint("psi", ["seed"]) == ""
    assert keyword_hint("NetG", ["generator"]) == " Did you mean 'generator'?"  # any case
    # a close spelling wins over the table
    assert keyword_hint("truncation_ps", ["truncation_psi", "seed"]) == (
        " Did you mean 'truncation_psi'?"
    )
    assert keyword_hint("zzz", ["seed"]) == ""


def test_every_alias_names_a_keyword_of_the_public_api():
    import inspect

    keywords: set[str] = set()
    for name in dgan_data.__all__:
        obj = getattr(dgan_data, name)
        func = obj.__init__ if isinstance(obj, type) else obj
        if callable(func):
            try:
                keywords |= set(inspect.signature(func).parameters)
            except (TypeError, ValueError):
                continue
    keywords |= {"device"}
    stale = {k: v for k, v in KEYWORD_ALIASES.items() if not set(v) <= keywords}
    assert not stale, stale
    assert all(k == k.lower() for k in KEYWORD_ALIASES)
