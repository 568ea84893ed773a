"""``python -m benchmarks.export_agreement [--stacks N] [--exact]``: how closely ONNX Runtime
and the safetensors weights in PyTorch (when torch imports) follow ``dlcli predict``.

Every config under ``configs/`` is trained for one epoch (synthetic sets cut to 200 samples,
as in tests/use/) and exported; then the random stacks of the tests (seeds 0..N-1). Prints,
per run, the samples, the largest scaled difference ``|Δ| / (1 + |predict|)`` and the largest
absolute one, and whether every sample got the same class. Figures, not assertions: the
tests assert ``|Δ| <= 1e-5 + 1e-5·|predict|``.

``--exact`` adds, per shipped config, how far each of the two float32 computations is from
the float64 evaluation of the same weights on the same inputs (dlcli's engine with
``dtype: float64``): the absolute error of ``dlcli predict`` and of ONNX Runtime. Where the
two are about as large as their difference, the difference is float32's own rounding in
the network (the order in which each library accumulates its sums), not the export.
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
    parser.add_argument("--exact", action="store_true",
                        help="also the error of each against a float64 evaluation")
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
    extra = " dlcli vs float64 | onnx vs float64 |" if args.exact else ""
    print("| run | task | samples | scaled max | absolute max | same class |" + extra)
    print("|---|---|---|---|---|---|" + ("---|---|" if args.exact else ""))
    worst = 0.0

    def report(name, run, x, exact=False):
        nonlocal worst
        session = ort.InferenceSession(str(run.run_dir / "export" / "model.onnx"))
        ours = session.run(["output"], {"input": to_nhwc(x).astype(np.float32)})[0]
        theirs, _ = predict_file(run, write_inputs(run, x, root / "inputs.npz"))
        scaled, absolute, same = _differences(ours, theirs)
        worst = max(worst, scaled)
        line = f"| {name} | {run.task} | {len(x)} | {scaled:.2g} | {absolute:.2g} | {same} |"
        if exact:
            reference = _float64_outputs(run, x)
            line += (f" {np.abs(np.asarray(theirs, np.float64) - reference).max():.2g} |"
                     f" {np.abs(ours.astype(np.float64) - reference).max():.2g} |")
        elif args.exact:
            line += " | |"
        print(line, flush=True)

    for config in shipped_configs():
        run_dir = train_shipped(config, root / config.stem)
        export_run(run_dir, fmt="onnx")
        run = load_run(run_dir)
        report(config.stem, run, raw_inputs(run), exact=args.exact)
    for seed in range(args.stacks):
        rng = np.random.default_rng(seed)
        layers, shape, task, loss = random_stack(rng)
        run_dir = fake_run(root / f"stack{seed}", layers, shape, task=task, loss=loss, seed=seed)
        export_run(run_dir, fmt="onnx")
        report(f"random stack {seed}", load_run(run_dir),
               rng.normal(0, 3, (37, shape[2], shape[0], shape[1])))
    print(f"largest scaled difference: {worst:.2g}")


def _float64_outputs(run, x) -> np.ndarray:
    """``dlcli predict``'s outputs with the run's weights, normalizer and inputs, all in
    float64 (the model rebuilt with ``dtype: float64``)."""
    from dlcli.config import loader, resolve
    from dlcli.train import checkpoint as ckpt
    from dlcli.train.build import prepare
    from dlcli.train.metrics import predict

    raw = loader.load_file(run.run_dir / "config.yaml")
    model = prepare(resolve({**raw, "dtype": "float64"}, path=run.run_dir / "config.yaml"),
                    data=False).model
    model.build(np.random.default_rng(0))
    model.load_state_dict({k: np.asarray(v, np.float64)
                           for k, v in ckpt.load(run.checkpoint)["model"].items()})
    out = predict(model, run.loss, run.normalizer.transform(x, None, np.float64), 64)
    if run.task == "reconstruction":
        out = run.normalizer.invert(out)
    return out.transpose(0, 2, 3, 1) if out.ndim == 4 else out


if __name__ == "__main__":
    main()
