"""Data parallelism on one machine: ``python -m benchmarks.parallel [--quick] [--repeats R]``
(also the last section of ``python -m benchmarks``).

For the LeNet and MLP workloads, one epoch each of:

* ``dlcli 1x2``: dlcli in one process, BLAS on 2 threads (the plain run); ``dlcli 1x1``
  the same on 1 thread;
* ``dlcli 1x2 shards 2``: the same with ``training.parallel.shards: 2`` (the single-process
  reference of the next line: the same arithmetic, the batch in two halves);
* ``dlcli mpi 2x1``: ``mpiexec -n 2``, each rank one shard with BLAS on 1 thread;
* ``pytorch 1x2``: PyTorch with ``torch.set_num_threads(2)``.

Each runs in a worker process of its own (the MPI one under ``mpiexec``; the parent talks
to rank 0, which tells rank 1), asked for epochs in turn after a pause
(``benchmarks.SETTLE_S``), the order rotating per repeat. The network cost per step is
estimated from the gradient's size: with 2 ranks each step sends and receives one
gradient (recursive doubling), at 1 GbE (125 MB/s) or 10 GbE (1.25 GB/s) plus 50 µs of
latency. Figures only; nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

from benchmarks import settle

REPO = pathlib.Path(__file__).resolve().parents[1]
NAMES = ("mlp_sgd", "lenet_adam")
LINK_BYTES_PER_S = {"1 GbE": 125e6, "10 GbE": 1.25e9}
LATENCY_S = 50e-6


def mpiexec() -> str | None:
    import shutil
    beside = pathlib.Path(sys.prefix) / "bin" / "mpiexec"
    return str(beside) if beside.is_file() else shutil.which("mpiexec")


# ---- the workers ---------------------------------------------------------------------------
def child(name: str, shards: int, threads: int, quick: bool) -> None:
    """A dlcli worker with ``shards`` (0: a plain Trainer), under MPI or not."""
    import numpy as np
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads, user_api="blas")
    from benchmarks import workloads
    from benchmarks.child import reply
    from dlcli.parallel.comm import open_world

    world = open_world()
    w = workloads.make(name, quick)
    runner = workloads.DlcliRunner(w)
    if shards:
        import dlcli.nn.optim  # noqa: F401
        from dlcli.parallel.trainer import ShardedTrainer
        from dlcli.registry import OPTIMIZERS
        opt = dict(w["optimizer"])
        runner.optimizer = OPTIMIZERS.get(opt.pop("type"))(**opt)
        runner.trainer = ShardedTrainer(
            w["model"], w["loss"], runner.optimizer, task=w["task"], batch_size=w["batch"],
            epochs=0, rng=np.random.default_rng(w["seed"]), n_classes=10, world=world,
            shards=shards, seed=0)
    runner.trainer.epochs = 1
    with np.errstate(all="ignore"):  # warm-up: one epoch on the first batches
        n = 3 * w["batch"]
        runner.trainer.fit(w["x"][:n], w["y"][:n])
    runner.trainer.epoch, runner.trainer.epochs = 0, 0
    params = w["model"].param_count()
    if world.rank == 0:
        reply({"ready": True, "params": params, "itemsize": w["x"].itemsize,
               "steps_per_epoch": w["steps_per_epoch"], "samples": len(w["x"])})
    while True:
        command = next_command(world)
        if command == "epoch":
            if world.size > 1:
                world.comm.Barrier()
            seconds = runner.epoch()
            if world.rank == 0:
                reply({"epoch_s": seconds})
        else:
            import resource
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rss = world.comm.gather(rss) if world.size > 1 else [rss]
            if world.rank == 0:
                reply({"peak_rss_mb": rss})
            return


def next_command(world) -> str:
    """Rank 0 reads the parent's next command and sends it to the other ranks, which wait
    for it sleeping: a rank blocked in a collective busy-polls (MPICH does), and would take
    a core from the other workers between their epochs."""
    import time
    if world.rank == 0:
        command = sys.stdin.readline().strip()
        for rank in range(1, world.size):
            world.comm.send(command, dest=rank, tag=7)
        return command
    while not world.comm.Iprobe(source=0, tag=7):
        time.sleep(0.005)
    return world.comm.recv(source=0, tag=7)


class Worker:
    def __init__(self, args):
        env = dict(os.environ, OMP_NUM_THREADS="1") if args[0].endswith("mpiexec") else None
        self.proc = subprocess.Popen(args, cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.hello = self.read()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with status {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        out = self.ask("quit")
        self.proc.wait()
        return out


def run(name: str, repeats: int, quick: bool, with_torch: bool) -> dict:
    me = [sys.executable, "-m", "benchmarks.parallel", "--child", name]
    q = ["--quick"] if quick else []
    variants = {"dlcli 1x2": me + ["0", "2"] + q, "dlcli 1x1": me + ["0", "1"] + q,
                "dlcli 1x2 shards 2": me + ["2", "2"] + q}
    launcher = mpiexec()
    if launcher:
        variants["dlcli mpi 2x1"] = [launcher, "-iface", "lo", "-n", "2", *me, "2", "1", *q]
    if with_torch:
        variants["pytorch 1x2"] = [sys.executable, "-m", "benchmarks.child", name, "torch",
                                   "2", "--limit-blas", *q]
    workers = {k: Worker(v) for k, v in variants.items()}
    times = {k: [] for k in workers}
    keys = list(workers)
    for r in range(repeats):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            settle()
            times[key].append(workers[key].ask("epoch")["epoch_s"])
    rss = {k: w.close().get("peak_rss_mb") for k, w in workers.items()}
    hello = workers["dlcli 1x2"].hello
    grad_bytes = hello["params"] * 4
    steps = hello["steps_per_epoch"]
    network = {link: steps * (LATENCY_S + grad_bytes / rate)
               for link, rate in LINK_BYTES_PER_S.items()}
    return {"name": name, "steps_per_epoch": steps, "gradient_bytes": grad_bytes,
            "epoch_s": times, "median_s": {k: statistics.median(v) for k, v in times.items()},
            "peak_rss_mb": rss, "network_epoch_s": network}


def table(results) -> str:
    lines = []
    for res in results:
        med = res["median_s"]
        base = med["dlcli 1x2"]
        lines.append(f"{res['name']}: gradient {res['gradient_bytes'] / 2**20:.2f} MiB, "
                     f"{res['steps_per_epoch']} steps/epoch; estimated network per epoch with "
                     + ", ".join(f"{k} {v:.2f} s" for k, v in res["network_epoch_s"].items()))
        lines.append("  variant             | epoch s (median) | vs dlcli 1x2 | vs pytorch")
        for key, value in med.items():
            torch = med.get("pytorch 1x2")
            lines.append(f"  {key:<19} | {value:16.3f} | {value / base:12.2f} | "
                         + (f"{value / torch:.2f}" if torch else "-"))
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1], int(argv[2]), int(argv[3]), "--quick" in argv)
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parallel")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    results = section(args.repeats or (1 if args.quick else 3), args.quick, not args.no_torch)
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(results, indent=1))
    return 0


def section(repeats: int, quick: bool, with_torch: bool) -> list:
    """Run and print the data-parallel comparison (what ``python -m benchmarks`` calls)."""
    import importlib.util
    missing = [m for m in ("mpi4py", "threadpoolctl") if importlib.util.find_spec(m) is None]
    if missing or mpiexec() is None:
        print(f"data parallel: skipped (needs {', '.join(missing) or 'mpiexec'}: "
              "pip install '.[mpi,bench]')")
        return []
    with_torch = with_torch and importlib.util.find_spec("torch") is not None
    results = []
    for name in NAMES:
        print(f"data parallel, {name} ...", flush=True)
        results.append(run(name, repeats, quick, with_torch))
    print(table(results))
    return results


if __name__ == "__main__":
    sys.exit(main())
