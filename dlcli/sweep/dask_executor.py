"""The Dask executor: each trial a task on a Dask.distributed cluster (``dlcli[dask]``).

``executor: {type: dask, address: tcp://HOST:PORT}`` submits to a running ``dask
scheduler``; without an address a ``LocalCluster`` is started with one single-threaded
worker process per trial slot. A task runs :func:`dlcli.sweep.attempt.run_blocking` on its
worker: the trial in a process of its own, writing into the sweep directory (on a
filesystem every worker shares). When a worker dies, the scheduler gives the task to
another worker (up to ``distributed.scheduler.allowed-failures`` times, 3 by default);
the trial process on the dead worker stops itself at a checkpoint, and the new attempt
resumes from it. Before any trial runs, every worker is asked for its dlcli version; a
worker without dlcli, or with another version, is refused.
"""

import os
import pathlib
import uuid

from dlcli import __version__
from dlcli.errors import DataError
from dlcli.sweep import attempt


def _probe():
    """A function cloudpickle sends by value (it is local): it runs on workers that may
    have no dlcli at all."""
    def probe():
        try:
            import dlcli
        except Exception as exc:  # noqa: BLE001 - any failure means: no usable dlcli
            return f"no dlcli ({type(exc).__name__}: {exc})"
        return f"dlcli {getattr(dlcli, '__version__', '?')}"
    return probe


class DaskExecutor:
    def __init__(self, metric: str, threads: int, parallel: int | None, address: str | None):
        from distributed import Client, LocalCluster
        self.sweep_dir = None  # attach() sets it once the workers are known to be fit
        self.metric, self.threads = metric, threads
        self.cluster = None
        self.address = address
        try:
            if address:
                self.client = Client(address, timeout="20s")
            else:
                from dlcli.sweep.local import auto_parallel
                workers = parallel or auto_parallel(threads)
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None)
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as exc:
            raise DataError(f"cannot reach the Dask scheduler: {exc}",
                            where=address or "LocalCluster") from None
        try:
            self._check_workers()
        except BaseException:
            self.close()
            raise
        slots = sum(self.client.nthreads().values())
        self.parallel = parallel or max(1, slots)
        self.running: dict[int, object] = {}
        self.ready: list = []
        self.tag = uuid.uuid4().hex[:8]

    def describe(self) -> str:
        where = self.address or "a LocalCluster"
        return (f"dask at {where}, {len(self.client.nthreads())} worker(s), {self.parallel} "
                f"at once, {self.threads} thread(s) each")

    def _check_workers(self) -> None:
        try:
            self.client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            raise DataError("the Dask cluster has no workers (start some with: dask worker "
                            "ADDRESS)", where=self.address or "LocalCluster") from None
        found = self.client.run(_probe())
        expected = f"dlcli {__version__}"
        for worker, what in sorted(found.items()):
            if what != expected:
                raise DataError(f"Dask worker {worker} has {what}, this driver {expected}; "
                                f"install the same dlcli on every worker (pip install "
                                f"'dlcli[dask]=={__version__}')", where=self.address or
                                "LocalCluster")

    def attach(self, sweep_dir) -> None:
        self.sweep_dir = str(pathlib.Path(sweep_dir).resolve())

    def free(self) -> int:
        return self.parallel - len(self.running)

    def pid_of(self, number: int) -> None:
        return None  # the trial runs on a worker; its run lock holds its pid

    def start(self, number: int, previous: dict | None = None) -> str:
        future = self.client.submit(attempt.run_blocking, self.sweep_dir, number, self.metric,
                                    self.threads, pure=False,
                                    key=f"dlcli-trial-{number:04d}-{self.tag}-{uuid.uuid4().hex[:6]}")
        self.running[number] = future
        return "submitted"

    def poll(self, timeout: float) -> list[tuple[int, dict]]:
        from distributed import wait
        if not self.running:
            return []
        try:
            wait(list(self.running.values()), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        done = []
        for number, future in list(self.running.items()):
            if not future.done():
                continue
            del self.running[number]
            if future.status == "finished":
                done.append((number, future.result()))
            else:
                exc = future.exception()
                done.append((number, {"status": "crashed", "exit_code": None, "metric": None,
                                      "error": f"{type(exc).__name__}: {exc}"}))
        return done

    def signal(self, signum: int) -> None:
        # Trials on other machines see the stop file (child.py) and stop at a checkpoint.
        stop = pathlib.Path(self.sweep_dir) / attempt.STOP_FILE
        stop.write_text(f"{signum}\n")
        os.utime(stop)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
