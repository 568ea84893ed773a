"""Runs to export: every shipped config trained briefly, and fake runs of random weights.

``train_shipped(config, root)`` trains a shipped config for one epoch (synthetic sources cut
to 200 samples) into ``root``; ``raw_inputs(run)`` gives every sample of its data as the raw
float64 inputs ``dlcli predict`` reads (internal layout) and ``write_inputs`` writes them to
an ``.npz`` in the layout the run's config declares. ``fake_run`` writes a run directory
(config.yaml, a committed checkpoint) for any layer stack, with random weights and a random
normalizer, without training.
"""

import json
import pathlib

import numpy as np
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]


def shipped_configs() -> list[pathlib.Path]:
    return sorted((REPO / "configs").rglob("*.yaml"))


def train_shipped(config_path: pathlib.Path, run_dir: pathlib.Path, extra=()) -> pathlib.Path:
    from dlcli.config import load_config
    from dlcli.train.session import train

    raw = yaml.safe_load(config_path.read_text())
    overrides = ["training.epochs=1", "training.early_stopping=null", *extra]
    if str(raw["data"]["source"]).startswith("synthetic:") and "n_samples" in (
            raw["data"].get("params") or {}):
        overrides.append("data.params.n_samples=200")
    train(load_config(str(config_path), overrides), run_dir=run_dir)
    return run_dir


def raw_inputs(run) -> np.ndarray:
    """All samples of the run's data (train, validation and test), raw, internal layout."""
    from dlcli.data.prepare import prepare

    spec = {**run.config["data"], "normalize": "none"}
    splits = prepare(spec, run.config.base_dir, run.config["seed"],
                     targets=run.task != "reconstruction", dtype=None,
                     classes=run.class_names if run.task == "classification" else None)
    return np.concatenate([splits.x_train, splits.x_val, splits.x_test]).astype(np.float64)


def to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def write_inputs(run, x: np.ndarray, path: pathlib.Path) -> pathlib.Path:
    """``x`` (internal layout) as the ``x`` of an .npz in the layout the run reads."""
    layout = run.config["data"].get("layout", "auto")
    if x.ndim == 4:
        x = x if layout == "NCHW" else x[:, 0] if layout == "NHW" else to_nhwc(x)
    np.savez(path, x=x)
    return path


def fake_run(run_dir: pathlib.Path, layers: list[dict], input_shape, *, task="regression",
             loss="mse", seed=0, class_names=None, last=False) -> pathlib.Path:
    """A run directory of ``layers`` with random weights and biases and a random
    standard normalizer (per channel for images), as if trained; ``last``: a
    ``checkpoints/last.npz`` too, with other random weights than ``best.npz``."""
    from dlcli.config import resolve
    from dlcli.data.prepare import Normalizer
    from dlcli.train import checkpoint as ckpt
    from dlcli.train.session import prepare

    rng = np.random.default_rng(seed)
    config = {"name": "stack", "seed": seed, "task": task,
              "data": {"source": "synthetic:images", "layout": "NHWC"},
              "model": {"input_shape": list(input_shape), "layers": layers, "loss": loss},
              "training": {"batch_size": 16}}
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    model = prepare(resolve(config, path=run_dir / "config.yaml"), data=False).model
    model.build(rng)

    def draw_weights():
        for _, param, _ in model.parameters():
            param[...] = rng.normal(0, 1 / np.sqrt(max(param[0].size, 1)), param.shape)

    draw_weights()
    image = len(input_shape) == 3
    stat = (input_shape[2], 1, 1) if image else tuple(input_shape)
    normalizer = Normalizer("standard", rng.normal(0, 2, stat), rng.uniform(0.5, 3, stat))
    (run_dir / "checkpoints").mkdir()
    ckpt.save(run_dir / "checkpoints" / "best.npz", model.state_dict(),
              normalizer_state=normalizer.state())
    if last:
        draw_weights()
        ckpt.save(run_dir / "checkpoints" / "last.npz", model.state_dict(),
                  normalizer_state=normalizer.state())
    if class_names:
        (run_dir / "classes.json").write_text(json.dumps(class_names))
    return run_dir
