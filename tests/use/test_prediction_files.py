"""dlcli predict's CSV file: the text csv.writer writes, row for row (names quoted when
they need it, values to 6 significant digits), from batches as they come."""

import csv
import io
import types

import numpy as np

from dlcli.use.predictions import write_prediction_batches


def _reference(header, names, outputs) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    for i, row in enumerate(outputs):
        writer.writerow(([names[i]] if names is not None else [])
                        + [f"{v:.6g}" for v in row])
    return buffer.getvalue()


def test_csv_with_class_names_matches_csv_writer(tmp_path):
    run = types.SimpleNamespace(task="classification",
                                class_names=['plain', 'with, comma', 'say "hi"'])
    rng = np.random.default_rng(0)
    outputs = rng.random((7, 3)).astype(np.float32)
    outputs[0] = [1e-7, np.nan, 123456789.0]
    picks = np.array([0, 1, 2, 2, 1, 0, 1])
    path = tmp_path / "p.csv"
    # two batches, as dlcli predict writes them
    write_prediction_batches(path, 7, run.class_names,
                             [(outputs[:4], picks[:4]), (outputs[4:], picks[4:])], run)
    names = [run.class_names[i] for i in picks]
    header = ["predicted", "p_plain", "p_with, comma", 'p_say "hi"']
    with open(path, newline="") as f:
        text = f.read()
    assert text == _reference(header, names, outputs)
    assert '"with, comma",' in text and '"say ""hi""",' in text and "nan" in text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[2][0] == "with, comma" and float(rows[1][1]) == np.float32(1e-7)


def test_csv_of_values_without_names(tmp_path):
    run = types.SimpleNamespace(task="regression", class_names=None)
    outputs = np.array([[0.5, -2.25], [3.0, 1e10]], np.float64)
    path = tmp_path / "v.csv"
    write_prediction_batches(path, 2, None, [(outputs, None)], run)
    with open(path, newline="") as f:
        assert f.read() == _reference(["output_0", "output_1"], None, outputs)
