"""``MODEL.md``: the model card written beside every export.

It holds what someone receiving the file needs to use it and to trust it: the files and
their input/output contract, the architecture table of ``dlcli shapes``, the data and its
splits, the metrics of ``dlcli eval`` on the test split, the full config, the dlcli version
and the command that reproduces the run. The first line marks the card as dlcli's for one
run and checkpoint: a later export of the same run into the same folder updates it (adding
its file); any other MODEL.md is the user's and is replaced only with ``--force``.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

MARK = "<!-- dlcli model card: {run} {checkpoint} -->"
FILES_BEGIN, FILES_END = "<!-- files -->", "<!-- /files -->"


def marker(run) -> str:
    return MARK.format(run=run.run_dir.resolve(), checkpoint=run.checkpoint.name)


def is_ours(path: pathlib.Path, run) -> bool:
    """Whether ``path`` is the card dlcli wrote for this run and checkpoint."""
    try:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        return False
    return first == marker(run)


def listed_files(path: pathlib.Path) -> list[str]:
    """The file lines of an existing card of ours (kept when another export is added)."""
    text = path.read_text(encoding="utf-8")
    if FILES_BEGIN not in text:
        return []
    block = text.split(FILES_BEGIN, 1)[1].split(FILES_END, 1)[0]
    return [line for line in block.strip().splitlines() if line.startswith("- ")]


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def architecture(run) -> str:
    """The rows of ``dlcli shapes`` for the run's config, as a Markdown table."""
    from dlcli.inspect.shapes import shapes_report
    report = shapes_report(run.config)
    rows = []
    for i, row in enumerate(report["layers"], 1):
        kind = row["type"]
        if row.get("activation") and row["type"] != "activation":
            kind += f" ({row['activation']})"
        elif row["type"] == "activation":
            kind = f"activation ({row['activation']})"
        rows.append([i, row["name"], kind, tuple(row["output_shape"]), f"{row['size']:,}",
                     f"{row['params']:,}", f"{row['mult_adds']:,}"])
    rows.append(["", "**total**", "", "", "", f"{report['total_params']:,}",
                 f"{report['total_mult_adds']:,}"])
    return _table(["#", "layer", "type", "output shape (h, w, c)", "size", "params",
                   "mult-adds"], rows)


def data_section(run) -> tuple[str, dict | None]:
    """The data, its split sizes, and the test metrics (None with the reason when the data
    cannot be read any more)."""
    from dlcli.data.prepare import prepare as prepare_data
    from dlcli.errors import DlcliError
    from dlcli.use.evaluate import evaluate_run

    spec = run.config["data"]
    lines = [f"- source: `{spec['source']}`" + (f", params {json.dumps(spec['params'])}"
                                                if spec.get("params") else ""),
             f"- normalization: {run.normalizer.kind}, fitted on the training split "
             "(its statistics are inside the exported file)",
             f"- task: {run.task}"]
    if run.class_names:
        lines.append(f"- classes ({len(run.class_names)}): "
                     + ", ".join(f"`{n}`" for n in run.class_names))
    try:
        splits = prepare_data({**spec, "normalize": "none"}, run.config.base_dir,
                              run.config["seed"], targets=run.task != "reconstruction",
                              classes=run.class_names if run.task == "classification" else None,
                              dtype=None)
        lines.append(f"- splits (seed {run.config['seed']}, test {spec['test_split']}, "
                     f"validation {spec['validation_split']}): train {len(splits.x_train)}, "
                     f"validation {len(splits.x_val)}, test {len(splits.x_test)} samples")
        metrics = evaluate_run(run, "test")
    except DlcliError as exc:
        lines.append(f"- the data could not be read at export time: {exc}")
        metrics = None
    return "\n".join(lines), metrics


def metrics_section(metrics: dict | None) -> str:
    if metrics is None:
        return "Not measured: the run's data could not be read when this card was written."
    skip = {"samples", "split"}
    rows = [[key, _fmt(value)] for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in skip]
    text = (f"`dlcli eval` on the test split ({metrics['samples']} samples, checkpoint "
            f"`{pathlib.Path(metrics['checkpoint']).name}`):\n\n" + _table(["metric", "value"], rows))
    if "precision" in metrics and isinstance(metrics["precision"], list):
        names = metrics.get("class_names") or [str(i) for i in range(len(metrics["precision"]))]
        per = [[n, _fmt(p), _fmt(r)] for n, p, r in
               zip(names, metrics["precision"], metrics.get("recall", []))]
        text += "\n\nPer class:\n\n" + _table(["class", "precision", "recall"], per)
    if "pca" in metrics:
        text += (f"\n\nPCA with k = {metrics['pca']['k']} (the bottleneck's width) on the same "
                 f"split: mse {_fmt(metrics['pca']['mse'])}.")
    return text


def render(run, files: list[str], version: str, contract: str) -> str:
    """The whole card."""
    data, metrics = data_section(run)
    config_text = (run.run_dir / "config.yaml").read_text(encoding="utf-8")
    summary_path = run.run_dir / "summary.json"
    trained = ""
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
            trained = (f" It trained for {summary.get('epochs_done')} epoch(s) "
                       f"(status {summary.get('status')}; best {summary.get('monitor')} "
                       f"{_fmt(summary.get('best'))} at epoch {summary.get('best_epoch')}).")
        except (OSError, ValueError):
            trained = ""
    name = run.config["name"]
    parts = [
        marker(run),
        f"# {name}: model card",
        f"A {run.task} model trained by dlcli {version} in run `{run.run_dir.resolve()}`, "
        f"exported from its `{run.checkpoint.name}` checkpoint.{trained}",
        "## Files\n\n" + FILES_BEGIN + "\n" + "\n".join(files) + "\n" + FILES_END,
        "## Inputs and outputs\n\n" + contract,
        "## Architecture\n\n`dlcli shapes` of the run's config:\n\n" + architecture(run),
        "## Data\n\n" + data,
        "## Metrics\n\n" + metrics_section(metrics),
        "## Reproduce\n\n```bash\n"
        f"# with dlcli {version} installed\n"
        f"dlcli train {run.run_dir.resolve() / 'config.yaml'}   # same seed, data, splits\n"
        "```\n\nThe config (every default filled in; the data path is absolute):\n\n"
        "```yaml\n" + config_text.rstrip() + "\n```",
    ]
    return "\n\n".join(parts) + "\n"


def contract_text(run) -> str:
    """The input and output of the exported model, in words."""
    from dlcli.nn.layers.base import display_shape
    in_shape = tuple(display_shape(run.model.input_shape))
    out_shape = tuple(display_shape(run.model.output_shape))
    image = len(in_shape) == 3
    inputs = (f"`input`: float32 (batch, {', '.join(map(str, in_shape))}) — "
              + ("images as (batch, height, width, channels)" if image else "feature vectors")
              + ", raw values as in the training data: the normalization is applied by the model")
    if run.task == "classification":
        what = "class probabilities (softmax), in the order of the class names"
    elif run.task in ("binary", "multilabel"):
        what = "the output activation's values (a probability per label for a sigmoid)"
    elif run.task == "reconstruction":
        what = "the reconstruction, in the units of the inputs (the normalization undone)"
    else:
        what = "the predicted values"
    outputs = f"`output`: float32 (batch, {', '.join(map(str, out_shape))}) — {what}"
    names = f"\n- class names: {json.dumps(run.class_names)}" if run.class_names else ""
    norm = run.normalizer
    stats = (f"\n- normalization ({norm.kind}): x' = (x - shift) / scale, shift "
             f"{np.round(np.asarray(norm.shift).ravel(), 6).tolist()[:8]}, scale "
             f"{np.round(np.asarray(norm.scale).ravel(), 6).tolist()[:8]}"
             + (" ..." if np.asarray(norm.shift).size > 8 else "")) if norm.kind != "none" else ""
    return (f"The ONNX model does all of this itself:\n\n- {inputs}\n- {outputs}{names}{stats}\n\n"
            "The safetensors file holds the weights only, under the checkpoint's names and "
            "PyTorch's layouts; apply the normalization from its `__metadata__` and give images "
            "as (batch, channels, height, width).")
