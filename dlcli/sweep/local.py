"""The local executor: each trial a process of its own on this machine, ``parallel`` at once.

A trial's process runs in a session of its own, so a Ctrl-C on the terminal reaches the
driver alone, which passes exactly one signal on to each trial (a second SIGINT would stop a
trial without its checkpoint); a trial whose driver dies stops itself (``child.py``).
"""

import os
import subprocess
import time

from dlcli.sweep import attempt


def auto_parallel(threads_per_trial: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // threads_per_trial)


class LocalExecutor:
    """Starts trials as processes and reports them as they end (``poll``)."""

    def __init__(self, metric: str, threads: int, parallel: int):
        self.sweep_dir, self.metric, self.threads = None, metric, threads
        self.parallel = parallel
        self.running: dict[int, tuple] = {}
        self.ready: list[tuple[int, dict]] = []

    def describe(self) -> str:
        return f"local, {self.parallel} at once, {self.threads} thread(s) each"

    def attach(self, sweep_dir) -> None:
        self.sweep_dir = sweep_dir

    def free(self) -> int:
        return self.parallel - len(self.running)

    def pid_of(self, number: int) -> int | None:
        entry = self.running.get(number)
        return entry[0].pid if entry else None

    def start(self, number: int, previous: dict | None = None) -> str:
        kind, argv = attempt.plan(self.sweep_dir, number, previous=previous)
        if kind == "done":
            self.ready.append((number, {**attempt.outcome(self.sweep_dir, number, self.metric,
                                                          None), "kind": kind}))
            return kind
        cmd, env = attempt.command(self.sweep_dir, argv, self.threads)
        log = attempt.open_log(self.sweep_dir, number, kind, argv)
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            log.close()
            raise
        self.running[number] = (proc, log, kind)
        return kind

    def poll(self, timeout: float) -> list[tuple[int, dict]]:
        deadline = time.monotonic() + timeout
        while True:
            for number, (proc, log, kind) in list(self.running.items()):
                code = proc.poll()
                if code is not None:
                    log.close()
                    del self.running[number]
                    self.ready.append((number, {**attempt.outcome(
                        self.sweep_dir, number, self.metric, code), "kind": kind,
                        "host": os.uname().nodename}))
            if self.ready or time.monotonic() >= deadline:
                done, self.ready = self.ready, []
                return done
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        for proc, _, _ in self.running.values():
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        pass
