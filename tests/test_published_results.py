"""The README's Results table reproduces: each row's config is trained as the README says
(``dlcli train CONFIG``, seed 0, then ``dlcli eval RUN --json``) and the figure the row
publishes is the one the run gives, at the precision printed there.

The rows that train in seconds run in every full test run (marked slow); the two
convolutional rows take minutes on a shared 2-core machine and run with
``DLCLI_RESULTS=full``. One fast test checks that every row of the table is covered here.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FULL = os.environ.get("DLCLI_RESULTS") == "full"


def pct(value) -> str:
    return f"{100 * value:.1f}%".replace(".0%", "%")


# config -> (eval options, [(what the row prints, function of the eval JSON giving it)])
ROWS = {
    "mlp_digits": ([], [("**98.3%**", lambda e: f"**{pct(e['accuracy'])}**")]),
    "cnn_digits": ([], [("**98.1%**", lambda e: f"**{pct(e['accuracy'])}**")]),
    "perceptron": (["--split", "train"],
                   [("**0 training errors** of 160",
                     lambda e: f"**{round((1 - e['accuracy']) * e['samples'])} training "
                               f"errors** of {e['samples']}")]),
    "xor_mlp": ([], [("**100%**", lambda e: f"**{pct(e['accuracy'])}**")]),
    "xor_logistic": ([], [("test accuracy 36%", lambda e: f"test accuracy {e['accuracy']:.0%}")]),
    "softmax_regression": ([], [("96.7%", lambda e: pct(e["accuracy"]))]),
    "linear_autoencoder": ([], [("**0.1214** vs PCA's **0.1213**",
                                 lambda e: f"**{e['mse']:.4f}** vs PCA's **{e['pca']['mse']:.4f}**")]),
    "autoencoder_digits": ([], [("0.0769 vs PCA's 0.1213",
                                 lambda e: f"{e['mse']:.4f} vs PCA's {e['pca']['mse']:.4f}")]),
    "conv_autoencoder": ([], [("0.0553 vs PCA's (k = 16) 0.0845",
                               lambda e: f"{e['mse']:.4f} vs PCA's (k = {e['pca']['k']}) "
                                         f"{e['pca']['mse']:.4f}")]),
}
SLOW_ROWS = {"cnn_digits", "conv_autoencoder"}
MOMENTUM = ("68.3% / 98.3% / 99.2% / 100%", ["sgd", "momentum", "rmsprop", "adam"])


def results_rows() -> dict:
    """README Results table: config stem -> the row's text."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Results\n(.*?)^## ", text, re.S | re.M).group(1)
    return {m.group(1): line for line in section.splitlines()
            if (m := re.match(r"\| `configs/(\w+)\.yaml` \|", line))}


def test_every_published_row_is_reproduced_here():
    rows = results_rows()
    assert set(rows) == set(ROWS) | {"momentum_vs_sgd"}
    for name, (_, figures) in ROWS.items():
        for printed, _ in figures:
            assert printed in rows[name], (name, printed)
    assert MOMENTUM[0] in rows["momentum_vs_sgd"]


def train_and_eval(tmp_path, config, *, sets=(), eval_args=()):
    run = tmp_path / pathlib.Path(config).stem
    command = [sys.executable, "-m", "dlcli", "--threads", "1", "train", str(REPO / config),
               "--run-dir", str(run), "-q"]
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run([sys.executable, "-m", "dlcli", "eval", str(run), "--json",
                           *eval_args], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ROWS))
def test_a_published_row_reproduces(tmp_path, name):
    if name in SLOW_ROWS and not FULL:
        pytest.skip("minutes of training: DLCLI_RESULTS=full runs it")
    eval_args, figures = ROWS[name]
    result = train_and_eval(tmp_path, f"configs/{name}.yaml", eval_args=eval_args)
    for printed, make in figures:
        assert make(result) == printed


@pytest.mark.slow
def test_the_momentum_row_reproduces(tmp_path):
    printed, optimizers = MOMENTUM
    accuracies = []
    for optimizer in optimizers:
        result = train_and_eval(tmp_path / optimizer, "configs/momentum_vs_sgd.yaml",
                                sets=[f"training.optimizer.type={optimizer}"])
        accuracies.append(pct(result["accuracy"]))
    assert " / ".join(accuracies) == printed
