"""A dask cluster started as an operator starts one: ``dask scheduler`` and ``dask worker`` processes.

`OperatorCluster` runs ``dask scheduler --host 127.0.0.1 --port 0 --no-dashboard
--scheduler-file F`` and ``dask worker ADDRESS --nthreads 1`` processes (each in its own session,
so its nanny's worker process can be found and stopped with it), waits a bounded time for
the workers to register, and stops everything by PID: SIGTERM, a bounded wait, then SIGKILL
for what is left, nanny children included. `leftovers` lists the PIDs still alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from procutil import proc_state

REGISTER_TIMEOUT = 90.0  # seconds for the scheduler and the workers to come up (a loaded 2-core box)
STOP_TIMEOUT = 20.0


def dask_command(*args: str) -> list[str]:
    """``dask ARGS``: the ``dask`` script beside this interpreter, else ``python -m dask``."""
    script = Path(sys.executable).with_name("dask")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "dask", *args]


def worker_env() -> dict[str, str]:
    """The environment of the cluster's processes: osiiso importable, strict failure and queueing rules.

    ``allowed-failures 0``: a worker that dies mid-task fails that task (osiiso's retries decide);
    ``worker-saturation 1.0``: a worker holds only the tasks it runs, so queued tasks wait at the
    scheduler, in priority order.
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "0"
    env["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] = "1.0"
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return env


class OperatorCluster:
    """A scheduler and ``workers`` single-threaded workers, on loopback, stopped by PID."""

    def __init__(self, tmp: Path, workers: int = 2) -> None:
        self.tmp = tmp
        self.n_workers = workers
        self.procs: list[subprocess.Popen[bytes]] = []
        # every process of the cluster ever seen (nanny children included), as psutil handles:
        # they know their start time, so a PID the system has since given to another process is not ours
        self.seen: dict[tuple[int, float], psutil.Process] = {}
        self.address = ""

    def _spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = open(self.tmp / log, "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            proc = subprocess.Popen(dask_command(*args), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=worker_env(), start_new_session=True)
        finally:
            out.close()
        self.procs.append(proc)
        self._see(proc.pid)
        return proc

    def _see(self, pid: int) -> None:
        try:
            self._add(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass

    def _add(self, process: psutil.Process) -> None:
        try:
            self.seen.setdefault((process.pid, process.create_time()), process)
        except psutil.NoSuchProcess:
            pass

    def start(self) -> OperatorCluster:
        scheduler_file = self.tmp / "scheduler.json"
        scheduler = self._spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                "--dashboard-address", "127.0.0.1:0",
                                "--scheduler-file", str(scheduler_file), log="scheduler.log")
        deadline = time.monotonic() + REGISTER_TIMEOUT
        while not self.address:
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start: {self.log('scheduler.log')}")
            try:
                self.address = json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        for i in range(self.n_workers):
            self._spawn("worker", self.address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                        "--dashboard-address", "127.0.0.1:0", "--name", f"w{i}", log=f"worker{i}.log")
        self.wait_for_workers(self.n_workers, deadline - time.monotonic())
        return self

    def wait_for_workers(self, n: int, timeout: float = REGISTER_TIMEOUT) -> None:
        """Wait (bounded) until ``n`` workers are registered with the scheduler."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=max(1.0, timeout))
        self._note_children()

    def worker_pids(self) -> dict[str, int]:
        """The PID of each registered worker process, by worker address."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            pids: dict[str, int] = client.run(os.getpid)
        for pid in pids.values():
            self._see(pid)
        return pids

    def _note_children(self) -> None:
        for proc in self.procs:
            try:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    self._add(child)
            except psutil.NoSuchProcess:
                pass

    def log(self, name: str) -> str:
        try:
            return (self.tmp / name).read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM every process (workers first), wait a bounded time, SIGKILL what is left."""
        self._note_children()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 5  # the workers a nanny stopped exit just after it
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10  # a nanny's child is reaped by init, a moment after its nanny
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)

    def leftovers(self) -> list[int]:
        """The PIDs of this cluster's processes still alive (zombies count as gone)."""
        return sorted(pid for (pid, _), process in self.seen.items()
                      if process.is_running() and proc_state(pid) not in ("", "Z"))
