"""Rendering ``dlcli shapes``, ``gradcheck`` and ``time`` for people (rich tables)."""

from dlcli.console import print_table, print_warnings
from dlcli.errors import human_bytes


def print_shapes(console, report: dict) -> None:
    from rich.table import Table

    title = (f"{report['task']} model, loss {report['loss']}" if report["loss"] else
             "model (no loss given)")
    table = Table(title=title)
    for col, justify in (("#", "right"), ("layer", "left"), ("type", "left"),
                         ("output shape (h, w, c)", "left"), ("size", "right"),
                         ("params", "right"), ("mult-adds", "right")):
        table.add_column(col, justify=justify)
    for i, row in enumerate(report["layers"], 1):
        kind = row["type"] + (f" ({row['activation']})" if row["activation"]
                              and row["type"] != "activation" else "")
        if row["type"] == "activation":
            kind = f"activation ({row['activation']})"
        table.add_row(str(i), row["name"], kind, str(tuple(row["output_shape"])),
                      f"{row['size']:,}", f"{row['params']:,}", f"{row['mult_adds']:,}")
    table.add_section()
    table.add_row("", "total", "", "", "", f"{report['total_params']:,}",
                  f"{report['total_mult_adds']:,}")
    print_table(console, table)
    mem = report["memory_bytes"]
    console.print(
        f"memory for one training step (batch {report['batch_size']}, {report['dtype']}): "
        f"{human_bytes(mem['total'])}\n  params {human_bytes(mem['parameters'])}, grads "
        f"{human_bytes(mem['gradients'])}, optimizer {human_bytes(mem['optimizer_state'])}, "
        f"activations {human_bytes(mem['activations'])}"
        + (f", layer workspaces {human_bytes(mem['workspaces'])}" if mem.get("workspaces") else ""),
        markup=False)
    rank = report.get("per_rank")
    if rank:
        mem = rank["memory_bytes"]
        console.print(
            f"per rank with {rank['ranks']} rank(s) x {rank['shards_per_rank']} shard(s) of "
            f"{rank['rows_per_shard']} rows ({rank['shards']} shards, reduce "
            f"{rank['reduce']}): {human_bytes(mem['total'])}\n  activations "
            f"{human_bytes(mem['activations'])}, reduction buffers "
            f"{human_bytes(mem['reduction'])}", markup=False)
    print_warnings(console, report.get("warnings", []))


def print_gradcheck(console, result: dict) -> None:
    from rich.table import Table

    if not result.get("applicable", True):
        console.print(f"not applicable: {result['reason']}", markup=False, soft_wrap=True)
        return
    table = Table(title=f"gradient check: {result['samples']} samples, loss {result['loss']}, "
                        f"tolerance {result['tolerance']:g}")
    table.add_column("parameter", no_wrap=True)
    table.add_column("shape", overflow="fold", min_width=10)
    for col in ("checked", "max |error|", "rel. error", "ok"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in result["params"]:
        table.add_row(row["param"], str(tuple(row["shape"])), str(row["checked"]),
                      f"{row['max_abs_error']:.2e}", f"{row['relative_error']:.2e}",
                      "yes" if row["passed"] else "NO")
    print_table(console, table)
    console.print("passed" if result["passed"] else "FAILED: backpropagation disagrees with "
                  "finite differences", markup=False)


def print_timing(console, result: dict) -> None:
    """The ``dlcli time`` table."""
    from rich.table import Table

    table = Table(title=f"{result['config']}: {result['batches']} training steps of batch "
                        f"{result['batch_size']} ({result['dtype']}), after "
                        f"{result['warmup']} warm-up steps")
    table.add_column("op", no_wrap=True)
    table.add_column("type")
    for col in ("fwd ms", "bwd ms", "total ms", "share", "GFLOP/s"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in result["rows"]:
        name = row["name"] if row["kind"] != "activation" or "of" not in row \
            else f"  {row['name']}"
        gflops = row.get("gflops")
        kind = row["type"] + (" (in loss)" if row.get("fused_into_loss") else "")
        if row.get("runs_after"):
            kind += f" (after {row['runs_after']})"
        if row.get("fused_with"):
            kind += f" (fused with {row['fused_with']})"
        table.add_row(name, kind,
                      f"{row['forward_ms']:.3f}", f"{row['backward_ms']:.3f}" if
                      row["backward_ms"] else "", f"{row['total_ms']:.3f}",
                      f"{row['share']:.1%}", f"{gflops:.1f}" if gflops else "")
    table.add_row("step", "", f"{result['forward_ms']:.3f}", f"{result['backward_ms']:.3f}",
                  f"{result['step_ms']:.3f}", "100.0%",
                  f"{result['gflops']:.1f}" if result["gflops"] else "", style="bold")
    print_table(console, table)
    blas = result["blas"]
    threads = f", {blas['threads']} threads" if blas.get("threads") else ""
    kernel = f" ({blas['kernel']})" if blas.get("kernel") else ""
    console.print(
        f"{result['samples_per_s']:.0f} samples/s; {result['gflops']:.2f} GFLOP/s over the "
        f"whole step ({result['gflop_per_step']:.4f} GFLOP per step, estimated as "
        f"{result['flop_estimate']}); BLAS {blas['library']}{kernel}{threads}",
        markup=False, soft_wrap=True)
