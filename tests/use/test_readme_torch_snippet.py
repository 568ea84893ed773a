"""The README's PyTorch snippet, taken from README.md as it is, runs against a trained and
exported ``configs/cnn_digits.yaml`` run: it loads the safetensors file with
``strict=True`` and its module gives ``dlcli predict``'s probabilities (within 1e-5) and
classes (exactly) on every digit."""

import re

import numpy as np
import pytest
from click.testing import CliRunner

from tests.helpers.export_runs import REPO, train_shipped

SECTION = "## Taking a model out of dlcli"


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION) + len(SECTION):]
    section = section[:section.index("\n## ")]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return block


def test_the_snippet_is_short_and_loads_strictly():
    snippet = readme_snippet()
    assert len(snippet.splitlines()) <= 10
    assert "strict=True" in snippet and "runs/cnn_digits/export/model.safetensors" in snippet


def test_the_readme_snippet_gives_dlcli_predicts_outputs(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from dlcli.cli import cli

    snippet = readme_snippet()
    # the README's commands, from a checkout: train (one epoch here), export, then the snippet
    train_shipped(REPO / "configs" / "cnn_digits.yaml", tmp_path / "runs" / "cnn_digits")
    (tmp_path / "datasets").symlink_to(REPO / "datasets")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (["export", "runs/cnn_digits", "--format", "safetensors"],
                 ["predict", "runs/cnn_digits", "datasets/digits.npz", "-o", "p.npz"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    printed = []
    namespace = {"print": printed.append}  # the snippet's print, captured
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    predicted = np.load("p.npz")
    classes = predicted["predicted"].astype(int)  # the digits' class names are "0".."9"
    (shown,) = printed
    np.testing.assert_array_equal(shown.numpy(), classes)
    x, n, net = namespace["x"], namespace["n"], namespace["net"]
    with torch.no_grad():
        probabilities = net(((x - n["shift"]) / n["scale"]).float()).numpy()
    assert probabilities.shape == predicted["outputs"].shape == (1797, 10)
    np.testing.assert_allclose(probabilities, predicted["outputs"], rtol=0, atol=1e-5)
