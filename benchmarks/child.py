"""A benchmark worker: one workload in one framework, in its own process.

    python -m benchmarks.child WORKLOAD dlcli|torch THREADS [--quick] [--limit-blas]

It builds the workload, runs a few warm-up steps and prints one JSON line; then for each
line on stdin it answers with one JSON line: ``epoch`` runs one epoch, ``floor`` measures
the GEMM floor (dlcli only), ``quit`` reports the peak RSS (``ru_maxrss`` of this process)
and exits. The parent keeps a dlcli and a PyTorch worker alive side by side and asks them
for epochs in turn, so each pair of epochs runs under the same machine conditions while
each process's peak memory stays its own.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def reply(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv) -> None:
    name, framework, threads = argv[0], argv[1], int(argv[2])
    quick = "--quick" in argv
    started = time.perf_counter()
    if "--limit-blas" in argv:
        import numpy  # noqa: F401 - load the BLAS first, or there is nothing to limit
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads, user_api="blas")  # stays in force for this process
    from benchmarks import workloads

    w = workloads.make(name, quick)
    if framework == "dlcli":
        runner = workloads.DlcliRunner(w)
    else:
        runner = workloads.TorchRunner(w, threads)
    runner.warmup()
    reply({"ready": True, "setup_s": time.perf_counter() - started, "samples": len(w["x"]),
           "batch": w["batch"], "steps_per_epoch": w["steps_per_epoch"], "source": w["source"]})
    for line in sys.stdin:
        command = line.strip()
        if command == "epoch":
            reply({"epoch_s": runner.epoch()})
        elif command == "floor":
            from benchmarks.gemm import step_floor
            reply(step_floor(w["model"], w["batch"]))
        elif command == "quit":
            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
            reply({"peak_rss_mb": kib / 1024})
            return
        else:
            reply({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    main(sys.argv[1:])
