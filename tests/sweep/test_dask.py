"""The Dask executor on a scheduler and two workers started here on 127.0.0.1: one worker
killed mid-trial loses nothing (the trial resumes on the other from its checkpoint) and the
sweep ends with the local executor's results; unfit workers are refused before any trial."""

import json
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("distributed")

from tests.helpers.sweep import (KILL_BASE, KILL_SPEC, REPO_ROOT, assert_same_as_reference,  # noqa: E402
                                 dlcli, latest, running_trial_with_checkpoint, start_dlcli,
                                 wait_for, write_sweep)

pytestmark = pytest.mark.slow


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on the loopback, stopped at the end."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.file = tmp_path / "scheduler.json"
        self.procs = []
        self.scheduler = self._start("distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                     "--port", "0", "--no-dashboard", "--scheduler-file",
                                     self.file)
        wait_for(lambda: self.file.is_file() and self.file.read_text().strip(), 60,
                 "the scheduler")
        self.address = json.loads(self.file.read_text())["address"]

    def _start(self, module, *args, pythonpath=str(REPO_ROOT)):
        env = dict(os.environ, PYTHONPATH=pythonpath)
        log = open(self.tmp / f"{module.rsplit('.', 1)[-1]}-{len(self.procs)}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append(proc)
        return proc

    def worker(self, name, pythonpath=str(REPO_ROOT)):
        return self._start("distributed.cli.dask_worker", self.address, "--nthreads", 1,
                           "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", "--name",
                           name, pythonpath=pythonpath)

    def wait_for_workers(self, count):
        from distributed import Client
        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(count, timeout=60)

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def cluster(tmp_path):
    made = Cluster(tmp_path)
    yield made
    made.stop()


def parent_of(pid):
    import psutil  # a dependency of distributed
    try:
        return psutil.Process(pid).ppid()
    except psutil.NoSuchProcess:
        return None


def test_a_worker_killed_mid_trial_loses_nothing(tmp_path, cluster, reference_sweep):
    workers = [cluster.worker("a"), cluster.worker("b")]
    cluster.wait_for_workers(2)
    spec = {**KILL_SPEC, "executor": {"type": "dask", "address": cluster.address,
                                      "parallel": 2}}
    path = write_sweep(tmp_path, spec, KILL_BASE)
    sweep = tmp_path / "out"
    driver = start_dlcli("sweep", path, "--dir", sweep, cwd=tmp_path)

    def trial_on_a_worker():
        found = running_trial_with_checkpoint(sweep)
        if found:
            for worker in workers:
                if parent_of(found[1]) == worker.pid:
                    return found[0], worker, found[1]
        return None
    run, worker, trial_pid = wait_for(trial_on_a_worker,
                                      what="a checkpointed trial on a worker")
    # The trial held still while its worker dies, so that it dies mid-trial.
    os.kill(trial_pid, signal.SIGSTOP)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    os.kill(trial_pid, signal.SIGCONT)
    out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, out
    assert "dask at tcp://127.0.0.1:" in out and "sweep done: 3 finished of 3" in out
    log = (sweep / "logs" / f"{run.name}.log").read_text()
    assert "== " in log and " resume: dlcli train --resume " in log, log
    assert all(row["status"] == "finished" for row in latest(sweep).values())
    assert_same_as_reference(sweep, reference_sweep)


def test_workers_without_this_dlcli_are_refused_before_any_trial(tmp_path, cluster):
    spec = {**KILL_SPEC, "trials": 1, "executor": {"type": "dask", "address": cluster.address}}
    path = write_sweep(tmp_path, spec, KILL_BASE)
    for name, body in (("other", "__version__ = '0.0.1'\n"),
                       ("none", "raise ImportError('not installed here')\n")):
        fake = tmp_path / name / "dlcli"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text(body)
        worker = cluster.worker(name, pythonpath=str(fake.parent))
        cluster.wait_for_workers(1)
        proc = dlcli("sweep", path, "--dir", tmp_path / f"sweep-{name}", cwd=tmp_path,
                     check=2)
        expected = "has dlcli 0.0.1" if name == "other" else "has no dlcli (ImportError"
        assert expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / f"sweep-{name}").exists()
        worker.kill()
        worker.wait()
        from distributed import Client
        with Client(cluster.address, timeout="30s") as client:
            wait_for(lambda: not client.nthreads(), 60, "the worker to leave")
