"""Data: synthetic generators, bundled datasets, file readers, splits, normalization, one-hot.

Importing this package registers the synthetic generators in ``dlcli.registry.DATASETS``.
"""

import pathlib

from dlcli.data import synthetic  # noqa: F401  (registers DATASETS entries)
from dlcli.data.encoding import encode_labels, one_hot
from dlcli.data.prepare import Normalizer, Splits, detect_layout, load_inputs, prepare
from dlcli.data.readers import read_array_file, read_csv, read_idx, read_npz

# The bundled datasets (digits.npz, iris.csv) live in the repository's datasets/ folder.
BUNDLED_DIR = pathlib.Path(__file__).resolve().parents[2] / "datasets"

__all__ = [
    "BUNDLED_DIR",
    "Normalizer",
    "Splits",
    "detect_layout",
    "encode_labels",
    "load_inputs",
    "one_hot",
    "prepare",
    "read_array_file",
    "read_csv",
    "read_idx",
    "read_npz",
]
