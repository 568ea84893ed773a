"""``python -m benchmarks.export_agreement [--stacks N]``: how closely ONNX Runtime and the
safetensors weights in PyTorch (when torch imports) follow ``dlcli predict``.

Every config under ``configs/`` is trained for one epoch (synthetic sets cut to 200 samples,
as in tests/use/) and exported; then the random stacks of the tests (seeds 0..N-1). Prints,
per run, the samples, the largest scaled difference ``|Δ| / (1 + |predict|)`` and the largest
absolute one, and whether every sample got the same class. Figures, not assertions: the
tests assert ``|Δ| <= 1e-5 + 1e-5·|predict|``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def _differences(ours, theirs) -> tuple[float, float, bool]:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    diff = np.abs(ours - theirs)
    same = True
    if theirs.ndim == 2 and theirs.shape[1] > 1:
        same = bool((ours.argmax(1) == theirs.argmax(1)).all())
    return float((diff / (1 + np.abs(theirs))).max()), float(diff.max()), same


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=16)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import onnxruntime as ort

    from dlcli.use.evaluate import load_run, predict_file
    from dlcli.use.export import export_run
    from tests.helpers.export_runs import (fake_run, raw_inputs, shipped_configs, to_nhwc,
                                           train_shipped, write_inputs)
    from tests.helpers.random_stacks import random_stack

    root = pathlib.Path(tempfile.mkdtemp(prefix="dlcli-export-agreement-"))
    print(f"onnxruntime {ort.__version__}; runs in {root}")
    print("| run | task | samples | scaled max | absolute max | same class |")
    print("|---|---|---|---|---|---|")
    worst = 0.0

    def report(name, run, x):
        nonlocal worst
        session = ort.InferenceSession(str(run.run_dir / "export" / "model.onnx"))
        ours = session.run(["output"], {"input": to_nhwc(x).astype(np.float32)})[0]
        theirs, _ = predict_file(run, write_inputs(run, x, root / "inputs.npz"))
        scaled, absolute, same = _differences(ours, theirs)
        worst = max(worst, scaled)
        print(f"| {name} | {run.task} | {len(x)} | {scaled:.2g} | {absolute:.2g} | {same} |",
              flush=True)

    for config in shipped_configs():
        run_dir = train_shipped(config, root / config.stem)
        export_run(run_dir, fmt="onnx")
        run = load_run(run_dir)
        report(config.stem, run, raw_inputs(run))
    for seed in range(args.stacks):
        rng = np.random.default_rng(seed)
        layers, shape, task, loss = random_stack(rng)
        run_dir = fake_run(root / f"stack{seed}", layers, shape, task=task, loss=loss, seed=seed)
        export_run(run_dir, fmt="onnx")
        report(f"random stack {seed}", load_run(run_dir),
               rng.normal(0, 3, (37, shape[2], shape[0], shape[1])))
    print(f"largest scaled difference: {worst:.2g}")


if __name__ == "__main__":
    main()
