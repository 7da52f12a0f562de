"""Where a simulation's agents run: as threads of this process, or shared among worker processes.

Every agent is two threads that wake at least once a second. Past about 500 agents in one
interpreter on two cores, the threads waiting for its GIL wake each other faster than they work
(futex storms, most of the CPU in the kernel), sampling falls behind, and the MQTT client's
callbacks, which need the GIL too, stall every connection of the process. Worker processes
each run a share of the fleet with a GIL of their own.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

COUNTERS = ("readings", "batches_published", "batches_acked", "batches_refused")
READY_S = 60.0  # a worker imports the agent code and answers
REPORT_EVERY_S = 1.0
BatchId = tuple[str, str, int]  # (thing, boot, seq)


class WorkerError(RuntimeError):
    """A worker process did not start, answer or stop within its bound."""


@dataclass
class Results:
    """What the agents did: per-agent stats at the end, and the batches the broker acknowledged."""

    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    acked: dict[BatchId, int] = field(default_factory=dict)  # batch -> its readings
    # Agents still stopping when counted: their acknowledgements may still be arriving, so
    # their readings can show as neither acknowledged nor queued.
    still_running: int = 0

    def merge(self, other: Results) -> None:
        self.stats.update(other.stats)
        self.acked.update(other.acked)
        self.still_running += other.still_running


class ThreadRunner:
    """Agents as threads of this process, started one after the other."""

    def __init__(self) -> None:
        self._agents: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._acked: dict[BatchId, int] = {}
        self._lock = threading.Lock()

    @property
    def started(self) -> int:
        return len(self._threads)

    def start(self, configs: Sequence[Any], starts: Sequence[float], stop: threading.Event) -> None:
        """Start agent i at monotonic time starts[i]; returns early when `stop` is set."""
        from device.bootstrap import build_agent

        for config, at in zip(configs, starts, strict=True):
            if stop.wait(max(0.0, at - time.monotonic())):
                return
            agent = build_agent(config, on_event=self._on_event(config.thing))
            self._agents.append(agent)
            thread = threading.Thread(
                target=agent.run, args=(self._stop,), name=f"agent-{config.thing}"
            )
            self._threads.append(thread)
            thread.start()

    def _on_event(self, thing: str) -> Any:
        def on_event(kind: str, details: dict[str, Any]) -> None:
            if kind == "acked":
                batch = (thing, str(details["boot"]), int(details["seq"]))
                with self._lock:
                    self._acked[batch] = int(details.get("readings", 0))

        return on_event

    def counters(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTERS, 0)
        for agent in self._agents:
            stats = agent.stats()
            for name in COUNTERS:
                totals[name] += int(stats.get(name, 0))
        return totals

    def stop(self, timeout_s: float) -> None:
        """Tell every agent to stop and wait for all, within one bound: they stop side by side."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def results(self) -> Results:
        still = sum(1 for thread in self._threads if thread.is_alive())
        with self._lock:
            acked = dict(self._acked)
        stats = {agent.config.thing: agent.stats() for agent in self._agents}
        return Results(stats, acked, still)


class ProcessRunner:
    """Agents shared among `processes` worker processes, each running a ThreadRunner.

    `niceness` lowers the workers' CPU priority (os.nice): simulated machines stand for
    hardware of their own, so a benchmark of the cloud side can keep them from taking its CPU.
    """

    def __init__(self, processes: int, niceness: int = 0) -> None:
        if processes < 1:
            raise ValueError(f"processes {processes!r}: expected 1 or more")
        if niceness < 0:
            raise ValueError(f"niceness {niceness!r}: expected 0 or more (lower priority only)")
        self._count = processes
        self._niceness = niceness
        self._workers: list[_Worker] = []

    @property
    def started(self) -> int:
        return sum(w.started for w in self._workers)

    def start(self, configs: Sequence[Any], starts: Sequence[float], stop: threading.Event) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads forked
        level = logging.getLogger().getEffectiveLevel()
        for index in range(min(self._count, len(configs))):
            share = slice(index, None, self._count)
            self._workers.append(
                _Worker(
                    context, index, list(configs[share]), list(starts[share]), level, self._niceness
                )
            )
        for worker in self._workers:
            worker.wait_ready(READY_S)
        offset = time.monotonic() - (min(starts) if starts else 0.0)  # time spent spawning
        for worker in self._workers:
            worker.send(("go", offset))
        for worker in self._workers:
            while not worker.all_started.wait(0.2):
                if stop.is_set():
                    return
                worker.check_alive()

    def counters(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTERS, 0)
        for worker in self._workers:
            for name in COUNTERS:
                totals[name] += worker.counters.get(name, 0)
        return totals

    def stop(self, timeout_s: float) -> None:
        for worker in self._workers:
            worker.send(("stop", timeout_s))
        deadline = time.monotonic() + timeout_s + READY_S
        for worker in self._workers:
            worker.finish(max(0.0, deadline - time.monotonic()))

    def results(self) -> Results:
        out = Results()
        for worker in self._workers:
            if worker.results is not None:
                out.merge(worker.results)
            else:  # ended without reporting: none of its agents is counted
                out.still_running += worker.started
        return out


class _Worker:
    """The parent's side of one worker process: its pipe, its last report, its results."""

    def __init__(
        self,
        context: Any,
        index: int,
        configs: list[Any],
        starts: list[float],
        level: int,
        niceness: int = 0,
    ) -> None:
        self.index = index
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=worker_main,
            args=(child, configs, starts, level, niceness),
            name=f"agents-{index}",
            daemon=True,  # ended with this process if it dies without stopping them
        )
        self.process.start()
        child.close()
        self.started = 0
        self.counters: dict[str, int] = {}
        self.results: Results | None = None
        self.ready = threading.Event()
        self.all_started = threading.Event()
        self.done = threading.Event()
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"agents-{index}-pipe", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                kind, value = self._conn.recv()
                if kind == "ready":
                    self.ready.set()
                elif kind == "report":
                    self.started, self.counters = value
                elif kind == "all-started":
                    self.started = value
                    self.all_started.set()
                elif kind == "results":
                    self.results = value
                    break
        except (EOFError, OSError):
            pass
        finally:
            self.done.set()
            self.all_started.set()  # nobody waits for a worker that is gone

    def send(self, message: tuple[str, Any]) -> None:
        # A worker already gone cannot be told anything; finish() reports it.
        with self._send_lock, contextlib.suppress(BrokenPipeError, OSError):
            self._conn.send(message)

    def check_alive(self) -> None:
        if not self.process.is_alive() and not self.done.is_set():
            raise WorkerError(f"agent worker {self.index} exited with {self.process.exitcode}")

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.2):
            if self.done.is_set() or time.monotonic() > deadline:
                self.process.kill()
                raise WorkerError(
                    f"agent worker {self.index} did not start within {timeout_s:.0f} s "
                    f"(exit code {self.process.exitcode})"
                )

    def finish(self, timeout_s: float) -> None:
        self.done.wait(timeout_s)
        self.process.join(max(1.0, timeout_s / 10))
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._conn.close()


def worker_main(
    conn: Connection, configs: list[Any], starts: list[float], level: int, niceness: int = 0
) -> None:
    """A worker process: run its share of agents until the parent says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    if niceness:
        os.nice(niceness)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    stop_timeout = [15.0]
    go = threading.Event()
    offset = [0.0]

    def listen() -> None:
        try:
            while True:
                kind, value = conn.recv()
                if kind == "go":
                    offset[0] = value
                    go.set()
                elif kind == "stop":
                    stop_timeout[0] = value
                    break
        except (EOFError, OSError):
            pass  # the parent is gone: stop as if asked
        stop.set()
        go.set()

    from device.bootstrap import build_agent  # noqa: F401  (imported before "ready": start times hold)

    runner = ThreadRunner()
    threading.Thread(target=listen, name="parent-pipe", daemon=True).start()
    conn.send(("ready", os.getpid()))
    go.wait()
    runner.start(configs, [at + offset[0] for at in starts], stop)
    conn.send(("all-started", runner.started))
    # What the agents allocated at start lives as long as they do: out of the collector's way,
    # so full collections stay short (they paused every agent of the process for up to a
    # second).
    gc.collect()
    gc.freeze()
    while not stop.wait(REPORT_EVERY_S):
        conn.send(("report", (runner.started, runner.counters())))
    runner.stop(stop_timeout[0])
    conn.send(("results", runner.results()))
    conn.close()
