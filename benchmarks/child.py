"""A benchmark worker: one workload in one framework, in its own process.

    python -m benchmarks.child WORKLOAD dlcli|torch|torch_tuned THREADS [--quick] [--limit-blas]

It builds the workload, runs a few warm-up steps and prints one JSON line; then for each
line on stdin it answers with one JSON line:

* ``epoch``: one training epoch: ``seconds`` (also as ``epoch_s``) and ``cpu_s``, this
  process's CPU time over it (``time.process_time``, all threads);
* ``infer BATCH SAMPLES``: forward passes only (evaluation mode) over SAMPLES samples in
  batches of BATCH: ``seconds`` and ``cpu_s``;
* ``floor`` (dlcli only): the matrix products one training step runs, recorded from the
  engine's own calls and each timed alone (:mod:`benchmarks.gemm`);
* ``peak``: the rate of a large square sgemm on this process's BLAS threads;
* ``quit``: the peak RSS (``ru_maxrss`` of this process), then exit.

``torch_tuned`` is PyTorch as a competent user runs it (fused optimizer, ``channels_last``
for convolutions; :class:`benchmarks.workloads.TorchRunner`). The parent keeps the workers
alive side by side and asks them in turn, so each pair of timings runs under the same
machine conditions while each process's memory stays its own.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def reply(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def timed(fn, *args) -> dict:
    cpu = time.process_time()
    seconds = fn(*args)
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu}


def main(argv) -> None:
    name, framework, threads = argv[0], argv[1], int(argv[2])
    quick = "--quick" in argv
    started = time.perf_counter()
    if "--limit-blas" in argv:
        import numpy  # noqa: F401 - load the BLAS first, or there is nothing to limit
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads, user_api="blas")  # stays in force for this process
    from benchmarks import workloads
    from dlcli.inspect.timing import step_flops

    w = workloads.make(name, quick)
    if framework == "dlcli":
        runner = workloads.DlcliRunner(w)
    else:
        runner = workloads.TorchRunner(w, threads, tuned=framework == "torch_tuned")
    runner.warmup()
    reply({"ready": True, "setup_s": time.perf_counter() - started, "samples": len(w["x"]),
           "batch": w["batch"], "steps_per_epoch": w["steps_per_epoch"], "source": w["source"],
           "flop_per_sample": step_flops(w["model"], 1)})
    products = None
    for line in sys.stdin:
        command, *args = line.split()
        if command == "epoch":
            result = timed(runner.epoch)
            reply({**result, "epoch_s": result["seconds"]})  # epoch_s: benchmarks.ab's key
        elif command == "infer":
            reply(timed(runner.infer, int(args[0]), int(args[1])))
        elif command == "floor":
            from benchmarks.gemm import step_floor
            if products is None:
                products = runner.record_step()
            cpu, start = time.process_time(), time.perf_counter()
            floor = step_floor(products)
            # seconds: the step's products; the request's own wall and CPU time for the load
            reply({**floor, "wall_s": time.perf_counter() - start,
                   "cpu_s": time.process_time() - cpu})
        elif command == "peak":
            from benchmarks.gemm import peak_gflops
            reply(peak_gflops())
        elif command == "quit":
            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
            reply({"peak_rss_mb": kib / 1024})
            return
        else:
            reply({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    main(sys.argv[1:])
