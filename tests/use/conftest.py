"""Every shipped config trained once per session (one epoch), shared by the export tests."""

import pytest

from tests.helpers.export_runs import shipped_configs, train_shipped


@pytest.fixture(scope="session", params=shipped_configs(), ids=lambda p: p.stem)
def shipped_run(request, tmp_path_factory):
    """The run directory of one shipped config, trained for one epoch."""
    return train_shipped(request.param, tmp_path_factory.mktemp(request.param.stem) / "run")
