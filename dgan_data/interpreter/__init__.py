"""The interpreter: an ensemble of per-pixel MLPs on a generator's feature maps.

``model`` assembles the ensemble, trains it and saves it; ``inference`` runs it
(factorized inference, inherited by the model); ``resample`` holds the bilinear
mathematics inference shares with training; ``fit`` trains without materialising pixel
features; ``io`` reads and writes interpreter files. Takes generators by duck typing
and knows nothing of streams.
"""

from __future__ import annotations

from .io import FORMAT_NAME, FORMAT_VERSION, InterpreterFileError, read_interpreter_metadata
from .model import BN_EPS, Interpreter, Prediction, default_hidden
from .resample import feature_layout, sample_features_grid

__all__ = [
    "BN_EPS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Interpreter",
    "InterpreterFileError",
    "Prediction",
    "default_hidden",
    "feature_layout",
    "read_interpreter_metadata",
    "sample_features_grid",
]
