"""``dlcli shapes configs/lenet.yaml`` reproduces the table of the notes' figure 3.5."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LENET = REPO_ROOT / "configs" / "lenet.yaml"

# Figure 3.5: (layer, activation shape (height, width, channels), activation size, parameters).
FIGURE_3_5 = [
    ("input", (32, 32, 3), 3072, 0),
    ("conv1", (28, 28, 8), 6272, 608),      # (5*5*3 + 1) * 8
    ("pool1", (14, 14, 8), 1568, 0),
    ("conv2", (10, 10, 16), 1600, 3216),    # (5*5*8 + 1) * 16
    ("pool2", (5, 5, 16), 400, 0),
    ("fc3", (120,), 120, 48120),            # 400*120 + 120
    ("fc4", (84,), 84, 10164),              # 120*84 + 84
    ("softmax", (10,), 10, 850),            # 84*10 + 10
]
TOTAL = 62958


def run_shapes(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    result = subprocess.run([sys.executable, "-m", "dlcli", "shapes", str(LENET), *args],
                            cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_total_of_the_figure_adds_up():
    assert sum(params for *_, params in FIGURE_3_5) == TOTAL


def test_json_report_matches_figure_3_5():
    report = json.loads(run_shapes("--json").stdout)
    rows = [(r["name"], tuple(r["output_shape"]), r["size"], r["params"]) for r in report["layers"]]
    assert rows == FIGURE_3_5
    assert report["total_params"] == TOTAL
    assert report["task"] == "classification"


def _table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of the rich table (lines with │ separators)."""
    rows = []
    for line in text.splitlines():
        if "│" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        rows.append(cells)
    return rows


def test_human_table_matches_figure_3_5():
    text = run_shapes().stdout
    rows = _table_rows(text)
    body = [r for r in rows if r[0].isdigit()]
    assert len(body) == len(FIGURE_3_5), text
    for cells, (name, shape, size, params) in zip(body, FIGURE_3_5):
        number, layer, _kind, out_shape, size_cell, params_cell, _mult_adds = cells
        assert layer == name, text
        assert out_shape == str(shape), text
        assert int(size_cell.replace(",", "")) == size, text
        assert int(params_cell.replace(",", "")) == params, text
    total = [r for r in rows if len(r) > 1 and r[1] == "total"]
    assert len(total) == 1 and int(total[0][5].replace(",", "")) == TOTAL, text
    # The shapes are shown in the notes' (height, width, channels) order.
    assert re.search(r"output shape \(h, w, c\)", text)


@pytest.mark.parametrize("kind", ["conv1", "conv2"])
def test_conv_layers_apply_relu(kind):
    report = json.loads(run_shapes("--json").stdout)
    row = next(r for r in report["layers"] if r["name"] == kind)
    assert row["type"] == "conv2d" and row["activation"] == "relu"
