"""The uninterrupted sweep that the kill and Dask tests compare their results with."""

import pytest

from tests.helpers.sweep import KILL_BASE, KILL_SPEC, dlcli, write_sweep


@pytest.fixture(scope="session")
def reference_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    path = write_sweep(tmp, KILL_SPEC, KILL_BASE)
    dlcli("sweep", path, "--dir", "ref", cwd=tmp, check=0)
    return tmp / "ref"
