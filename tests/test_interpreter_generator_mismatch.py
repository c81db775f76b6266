"""An interpreter that does not fit its generator names both files."""

from __future__ import annotations

import pytest

from dgan_data import Labeler, load_generator, load_interpreter
from dgan_data.presets import resolve_preset_file


@pytest.fixture(scope="module")
def mismatched():
    """The narrow world's interpreter and the wide world's generator (same layout, other
    weights): the fingerprints differ."""
    generator = resolve_preset_file("toyface-14-wide", "generator")
    interpreter = resolve_preset_file("toyface-14", "interpreter")
    return generator, interpreter


def test_a_loaded_generator_records_its_file(mismatched):
    generator, _ = mismatched
    assert load_generator(generator).source == str(generator)


def test_the_message_names_the_interpreter_and_the_generator_file(mismatched):
    generator, interpreter = mismatched
    with pytest.raises(ValueError, match="does not match the generator") as err:
        Labeler.from_sources(generator=generator, interpreter=interpreter, device="cpu")
    message = str(err.value)
    assert str(interpreter) in message
    assert f"the generator {generator}:" in message
    assert "fingerprint" in message


def test_a_generator_built_in_memory_is_not_given_a_file(mismatched):
    generator, interpreter = mismatched
    G = load_generator(generator)
    G.source = None  # as built in memory
    with pytest.raises(ValueError, match="does not match the generator: generator fingerprint"):
        load_interpreter(interpreter).check_compatible(G)
