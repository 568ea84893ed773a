"""``dlcli time``: where the time of one training step goes, per layer and per phase.

The step timed is the trainer's own (``Trainer.train_step``, which ``Trainer.fit`` runs):
gather a batch with ``np.take`` into reused buffers, forward to the
logits, loss, backward, the non-finite gradient check, clipping (when configured), the
optimizer step, then the batch metrics; the step marks the clock after each phase. Each of
the model's ops (a layer, or the activation attached to one) and each fused step of its
plan is instrumented by wrapping its ``forward``/``backward`` on the instance with a
timer; the layers themselves contain no timing code, and the model's own
``forward``/``backward`` run unchanged. A fused step's time not spent in an op it calls
(a convolution and pooling run as one step) is the row of its first op that is not an
activation: a pooling fused with its convolution is timed in the convolution's row.

Figures are means over ``batches`` steps after ``warmup`` untimed ones (the first steps
allocate buffers and optimizer state). Throughput in GFLOP/s counts the work the step does
(:func:`layer_flops`): 2·mult_adds FLOPs per sample for a layer's forward pass, as much
again for its weight gradient, and as much again for its input gradient only where that is
computed (never for the first layer: nobody needs the gradient of the data). Layers
without multiply-adds (activations, pooling, the loss) count nothing, so this is the rate
of the matrix work, measured against the whole step.
"""

from __future__ import annotations

import math
import time

import numpy as np

FLOP_ESTIMATE = ("2·mult_adds FLOPs per sample for each of forward, weight gradient and "
                 "input gradient, the last only where computed (not the first layer's)")


def layer_flops(layer, input_shape, batch: int) -> int:
    """FLOPs one training step of ``batch`` samples spends in ``layer``'s multiply-adds:
    the forward pass, the weight gradient when the layer has parameters, and the input
    gradient when the layer computes it (``need_input_grad``; the model turns it off for
    its first layer)."""
    work = 2 * int(layer.mult_adds(input_shape)) * batch
    passes = 1 + bool(layer.params) + bool(layer.need_input_grad)
    return work * passes


def step_flops(model, batch: int) -> int:
    """FLOPs of the multiply-adds of one training step of a built ``model``."""
    return sum(layer_flops(layer, in_shape, batch) for layer, in_shape, _ in model.shapes())


def _timed(fn, slot: list, index: int):
    """``fn`` wrapped to add its wall time (seconds) to ``slot[index]``."""
    clock = time.perf_counter

    def wrapper(*args, **kwargs):
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            slot[index] += clock() - start

    return wrapper


def _ops(model):
    """(op, owning layer, kind) for every op of the model, in forward order."""
    for op in model.ops:
        owner = model.layer_of(op)
        yield op, owner, "activation" if op.type_name == "activation" else "layer"


def blas_info() -> dict:
    """BLAS library, kernel and thread count (from threadpoolctl when installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"library": _numpy_blas_name(), "kernel": None, "threads": None}
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return {"library": f"{pool.get('internal_api')} {pool.get('version')}",
                    "kernel": pool.get("architecture"), "threads": pool.get("num_threads")}
    return {"library": _numpy_blas_name(), "kernel": None, "threads": None}


def _numpy_blas_name() -> str | None:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - informational only
        return None


def time_config(config, batches: int = 20, warmup: int = 2, seed: int | None = None) -> dict:
    """Time ``batches`` training steps of ``config``'s model on its training data.

    Returns a JSON-ready dict: ``rows`` (one per layer, activation and step phase, each
    with ``forward_ms``, ``backward_ms``, ``total_ms`` per batch and ``share`` of the
    step), ``step_ms``, ``samples_per_s``, ``gflops`` and the figures they come from.
    """
    from dlcli.train.session import initialize, prepare, targets
    from dlcli.train.trainer import Trainer, gather

    if batches < 1:
        raise ValueError("batches must be >= 1")
    seed = config["seed"] if seed is None else seed
    prep = prepare(config, seed)
    model, loss, task, splits = prep.model, prep.loss, prep.task, prep.splits
    optimizer, rng = initialize(config, model, seed)
    training = config["training"]
    dtype = model.dtype
    x = splits.x_train.astype(dtype, copy=False)
    y = targets(splits, task, dtype, prep.loss)[0]
    n = len(x)
    batch = n if training["batch_size"] == "full" else min(int(training["batch_size"]), n)
    clip_norm, clip_value = training["clip_norm"], training["clip_value"]
    trainer = Trainer(model, loss, optimizer, task=task, batch_size=batch, epochs=1, rng=rng,
                      clip_norm=clip_norm, clip_value=clip_value)

    # ---- instrument every op ------------------------------------------------------
    shapes = {layer.name: (in_shape, out_shape) for layer, in_shape, out_shape in model.shapes()}
    ops = list(_ops(model))
    fused = model.output_activation() if model.fused_output else None
    op_times = []
    for op, _, _ in ops:
        slot = [0.0, 0.0]
        op_times.append(slot)
        op.forward = _timed(op.forward, slot, 0)
        op.backward = _timed(op.backward, slot, 1)
    slots = {op: slot for (op, _, _), slot in zip(ops, op_times)}
    steps = [(step, [0.0, 0.0]) for step in model.plan(model.fused_output)
             if step not in slots]  # the fused steps (each op is a step of its own otherwise)
    for step, slot in steps:
        step.forward = _timed(step.forward, slot, 0)
        step.backward = _timed(step.backward, slot, 1)

    phases = ("data", "forward", "loss_forward", "loss_backward", "backward",
              "gradient_check", "clipping", "optimizer", "metrics")
    clock = time.perf_counter
    params = model.parameters()
    grads = [g for _, _, g in params]
    flat = model.flat_buffers()
    x_buf = np.empty((batch,) + x.shape[1:], dtype=x.dtype)
    y_buf = np.empty((batch,) + y.shape[1:], dtype=y.dtype)
    order = rng.permutation(n)
    per_epoch = math.ceil(n / batch)

    def run(steps: int) -> dict:
        totals = dict.fromkeys(phases + ("step",), 0.0)
        last = [0.0]

        def mark(phase):
            now = clock()
            totals[phase] += now - last[0]
            last[0] = now

        for s in range(steps):
            start = last[0] = clock()
            b = s % per_epoch
            index = order[b * batch:(b + 1) * batch]
            xb, yb = gather(x, y, index, x_buf, y_buf)
            mark("data")
            _, logits = trainer.train_step(xb, yb, params, grads, flat, 1, s + 1, mark)
            trainer.batch_metrics(logits, yb)
            mark("metrics")
            totals["step"] += last[0] - start
        return totals

    with np.errstate(all="ignore"):
        run(warmup)
        for slot in op_times + [slot for _, slot in steps]:
            slot[0] = slot[1] = 0.0
        totals = run(batches)
    for step, (fwd, bwd) in steps:  # what a fused step spent outside its ops' own calls
        inner = [slots[op] for op in step.ops]
        lead = next(op for op in step.ops if op.type_name != "activation")
        slots[lead][0] += max(fwd - sum(s[0] for s in inner), 0.0)
        slots[lead][1] += max(bwd - sum(s[1] for s in inner), 0.0)

    # ---- rows ------------------------------------------------------------------------
    ms = 1000.0 / batches
    step_ms = totals["step"] * ms
    rows = []

    def add(name, kind, type_name, forward, backward, **extra):
        total = forward + backward
        rows.append({"name": name, "kind": kind, "type": type_name,
                     "forward_ms": forward, "backward_ms": backward, "total_ms": total,
                     "share": total / step_ms if step_ms > 0 else 0.0, **extra})

    # What the engine's fused pairs did: a ReLU run after the max pooling it precedes, a max
    # pooling that read its convolution's output in the product layout.
    fusion_notes = model.fusion_notes()
    add("data", "data", "np.take", totals["data"] * ms, 0.0)
    total_mult_adds = flop_per_step = 0
    for (op, owner, kind), (fwd, bwd) in zip(ops, op_times):
        if kind == "layer":
            in_shape, out_shape = shapes[op.name]
            mult_adds = int(op.mult_adds(in_shape))
            total_mult_adds += mult_adds
            seconds = fwd + bwd
            step = layer_flops(op, in_shape, batch)
            flop_per_step += step
            flops = float(step) * batches
            extra = {k: v for k, v in fusion_notes.get(op, {}).items() if k == "fused_with"}
            add(op.name, "layer", op.type_name, fwd * ms, bwd * ms,
                output_shape=list(_display(out_shape)), mult_adds=mult_adds,
                gflops=flops / seconds / 1e9 if seconds > 0 and mult_adds else None, **extra)
        else:
            extra = {"of": owner.name} if op is not owner else {}
            if op is fused:
                extra["fused_into_loss"] = True
            if "runs_after" in fusion_notes.get(op, {}):
                extra["runs_after"] = fusion_notes[op]["runs_after"]
            add(op.name, "activation", op.activation_name, fwd * ms, bwd * ms, **extra)
    loss_name = loss.name + (f" (fused {fused.activation_name})" if fused is not None else "")
    add("loss", "loss", loss_name, totals["loss_forward"] * ms, totals["loss_backward"] * ms)
    add("gradient_check", "step", "non-finite check", totals["gradient_check"] * ms, 0.0)
    if clip_norm is not None or clip_value is not None:
        add("clipping", "step", "clip_gradients", totals["clipping"] * ms, 0.0)
    add("optimizer", "optimizer", optimizer.type_name, totals["optimizer"] * ms, 0.0)
    add("metrics", "step", "batch_metrics", totals["metrics"] * ms, 0.0)
    accounted = sum(r["total_ms"] for r in rows)
    add("other", "step", "loop overhead", max(step_ms - accounted, 0.0), 0.0)

    return {
        "config": config["name"],
        "task": task,
        "dtype": np.dtype(dtype).name,
        "batch_size": batch,
        "batches": batches,
        "warmup": warmup,
        "train_samples": n,
        "step_ms": step_ms,
        "forward_ms": sum(r["forward_ms"] for r in rows if r["kind"] in ("layer", "activation")),
        "backward_ms": sum(r["backward_ms"] for r in rows if r["kind"] in ("layer", "activation")),
        "samples_per_s": batch / (step_ms / 1000.0) if step_ms > 0 else None,
        "mult_adds_per_sample": total_mult_adds,
        "flop_per_step": flop_per_step,
        "gflop_per_step": flop_per_step / 1e9,
        "gflops": flop_per_step / (step_ms / 1000.0) / 1e9 if step_ms > 0 else None,
        "flop_estimate": FLOP_ESTIMATE,
        "blas": blas_info(),
        "rows": rows,
    }


def _display(shape):
    from dlcli.nn.layers.base import display_shape
    return display_shape(tuple(shape))
