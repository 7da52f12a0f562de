"""Worker processes for the functions the topic rules invoke, one invocation per process at a time.

Lambda runs each concurrent invocation in an execution environment of its own. In the stack's
own process, every fleet batch's handler (3-4 ms of botocore CPU per AWS call) held the same
interpreter lock as an alert's handler, and an alert that arrived behind one or two batches
waited for them at every hand-over (docs/performance.md). Here each invocation has a process,
and so an interpreter lock, to itself.

Workers fork from a server that imported the handlers' libraries once, so a new worker starts
in milliseconds, not in the second a fresh interpreter needs. A worker builds its handlers at
its first event (a cold start) unless warmed. A worker that dies, or outlives the function's
timeout, is replaced; that invocation fails as in Lambda, and the caller's retries apply.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud.local.template import FunctionSpec

if TYPE_CHECKING:
    from cloud.bootstrap import Boto3Kwargs

# Imported once by the fork server: every worker starts with them in memory.
PRELOAD = ["boto3", "botocore.session", "aws_lambda_powertools", "cloud.handlers.ingest"]
START_TIMEOUT_S = 30.0  # a worker's fork and, when warmed, its handlers' build
STOP_TIMEOUT_S = 5.0
_WARM = "warm"


class FunctionTimeoutError(TimeoutError):
    """An invocation ran longer than its function's timeout; its worker was stopped."""


class WorkerExitedError(RuntimeError):
    """A function's worker process exited in the middle of an invocation."""


class RemoteFunctionError(RuntimeError):
    """A handler raised an error that could not be sent back as itself; keeps its type name."""


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to build the handlers it serves; sent to it once, at its start.

    `prepare` runs in the worker before anything is built (benchmarks install their probes on
    boto3's default session there); it must be picklable, e.g. a module-level function.
    """

    specs: Mapping[str, FunctionSpec]
    boto3_kwargs: Boto3Kwargs
    log_path: Path
    environ: Mapping[str, str]
    prepare: Callable[[], None] | None = None


class _Worker:
    """One worker process and the stack's end of its pipe."""

    def __init__(self, context: Any, setup: WorkerSetup, index: int) -> None:
        ours, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(theirs, setup), name=f"function-worker-{index}", daemon=True
        )
        self.process.start()
        theirs.close()
        self.conn: Connection = ours

    def call(self, request: tuple[str, Any, str], timeout_s: float) -> Any:
        """Send one request and wait for its answer; raises what the handler raised."""
        self.send(request)
        return self.answer(request, timeout_s)

    def send(self, request: tuple[str, Any, str]) -> None:
        try:
            self.conn.send_bytes(pickle.dumps(request))
        except OSError:
            raise self._exited(request) from None

    def answer(self, request: tuple[str, Any, str], timeout_s: float) -> Any:
        """The answer to `request`, sent before; raises what the handler raised."""
        if not self.conn.poll(timeout_s):
            self.kill()
            raise FunctionTimeoutError(
                f"{request[0]}: task timed out after {timeout_s:.2f} seconds "
                f"(request {request[2]}); its worker process was stopped"
            )
        try:
            status, value, type_name = pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            raise self._exited(request) from None
        if status == "error":
            raise _named(value, type_name)
        return value

    def _exited(self, request: tuple[str, Any, str]) -> WorkerExitedError:
        self.process.join(1.0)
        return WorkerExitedError(
            f"{request[0]}: worker process {self.process.pid} exited with code "
            f"{self.process.exitcode} during request {request[2]}"
        )

    def alive(self) -> bool:
        return self.process.is_alive() and not self.conn.closed

    def stop(self, timeout_s: float) -> None:
        """Ask the worker to exit, then kill it if it has not within `timeout_s`."""
        with contextlib.suppress(OSError):  # gone already
            self.conn.send_bytes(pickle.dumps(None))
        self.process.join(timeout_s)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_TIMEOUT_S)
        self.conn.close()


class FunctionProcesses:
    """Invokes the functions of `setup.specs` in up to `size` worker processes, started as
    needed.

    An invocation goes to the idle worker that last served the same `affinity(event)` (for the
    ingest function, the machine: its registry entry and last-seen are warm there, as in a
    Lambda environment the machine reached before), else to the idle worker freed longest ago,
    else to a new one. It waits for a busy worker only when none is idle and the pool is full.
    """

    def __init__(
        self,
        setup: WorkerSetup,
        size: int,
        affinity: Callable[[Any], Hashable | None] = lambda event: None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size: expected 1 or more worker processes, got {size}")
        self.arns = frozenset(setup.specs)
        self._setup = setup
        self._size = size
        self._affinity = affinity
        self._idle: list[_Worker] = []  # in the order they were freed
        self._all: list[_Worker] = []
        self._last: dict[Hashable, _Worker] = {}  # affinity key -> the worker that served it
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a worker became idle or left
        self._closed = False
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)

    def invoke(self, arn: str, event: Any, request_id: str) -> Any:
        """Run one invocation in a worker; waits up to the function's timeout for a free one."""
        timeout_s = self._setup.specs[arn].timeout_s
        worker = self._take(timeout_s, self._affinity(event))
        try:
            return worker.call((arn, event, request_id), timeout_s)
        finally:
            self._give(worker)

    def warm(self) -> None:
        """Start every worker now and build its handlers, as provisioned concurrency would."""
        taken = [self._take(START_TIMEOUT_S, None) for _ in range(self._size)]
        request = (_WARM, None, "warm")
        try:
            for worker in taken:  # all at once: the workers build side by side
                worker.send(request)
            for worker in taken:
                worker.answer(request, START_TIMEOUT_S)
        finally:
            for worker in taken:
                self._give(worker)

    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        with self._lock:
            return [w.process.pid for w in self._all if w.alive() and w.process.pid is not None]

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop every worker: idle ones at once, busy ones as their invocation ends; any still
        running after `timeout_s` are killed."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()  # invocations waiting for a worker give up
        for worker in idle:
            worker.stop(max(0.0, deadline - time.monotonic()))
            self._forget(worker)
        with self._changed:
            self._changed.wait_for(lambda: not self._all, max(0.0, deadline - time.monotonic()))
            left = list(self._all)
        for worker in left:
            self._forget(worker)

    def _take(self, timeout_s: float, key: Hashable | None) -> _Worker:
        deadline = time.monotonic() + timeout_s
        while True:
            with self._changed:
                while (worker := self._claim(key)) is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise FunctionTimeoutError(
                            f"no function worker became free within {timeout_s:.0f} s "
                            f"(all {self._size} busy)"
                        )
                    self._changed.wait(remaining)
                if key is not None:
                    self._last[key] = worker
            if worker.alive():
                return worker
            self._forget(worker)

    def _claim(self, key: Hashable | None) -> _Worker | None:
        """An idle worker, the one that served `key` first, or a new one; under the lock."""
        if self._closed:
            raise RuntimeError("the function workers are closed")
        preferred = self._last.get(key) if key is not None else None
        if preferred is not None and preferred in self._idle:
            self._idle.remove(preferred)
            return preferred
        if self._idle:
            # The one freed longest ago: the one freed last has just served a machine whose
            # next batch may be on its way back to it (an alert, say, written on kept states).
            return self._idle.pop(0)
        if len(self._all) < self._size:
            # Forked under the lock: a few milliseconds, and only while the pool grows.
            worker = _Worker(self._context, self._setup, len(self._all))
            self._all.append(worker)
            return worker
        return None

    def _give(self, worker: _Worker) -> None:
        if worker.alive():
            with self._changed:
                if not self._closed:
                    self._idle.append(worker)
                    self._changed.notify()
                    return
            worker.stop(STOP_TIMEOUT_S)
        self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        worker.kill()
        with self._changed:
            if worker in self._all:
                self._all.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            for key in [key for key, served in self._last.items() if served is worker]:
                del self._last[key]
            self._changed.notify_all()


def _serve(conn: Connection, setup: WorkerSetup) -> None:
    """A worker's loop: one request at a time until told to stop or the stack's process is gone."""
    # Ctrl-C in a terminal reaches the whole process group; the stack's process stops its
    # workers itself, after the invocations under way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The fork server's environment is that of its start; the stack's is the one that counts.
    os.environ.clear()
    os.environ.update(setup.environ)
    if setup.prepare is not None:
        setup.prepare()
    from cloud.local.functions import LocalFunctions

    functions = LocalFunctions(setup.specs, setup.boto3_kwargs, setup.log_path)
    while True:
        try:
            request = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the stack's process is gone
        if request is None:
            return
        arn, event, request_id = request
        try:
            if arn == _WARM:
                functions.warm()
                gc.collect()
                gc.freeze()  # as LocalStack.warm does: a full collection would pause handlers
                reply: tuple[str, Any, str] = ("ok", None, "")
            else:
                reply = ("ok", functions.invoke(arn, event, request_id), "")
        except Exception as exc:  # the handler's error is the caller's, as Lambda reports it
            reply = ("error", exc, type(exc).__name__)
        try:
            conn.send_bytes(_pickled(reply))
        except OSError:
            return  # the stack's process is gone


def _pickled(reply: tuple[str, Any, str]) -> bytes:
    try:
        data = pickle.dumps(reply)
        if reply[0] == "error":
            pickle.loads(data)  # many exception classes pickle but cannot be rebuilt
        return data
    except Exception:  # an error or result that cannot cross: its type and text can
        status, value, type_name = reply
        if status == "ok":
            value = RemoteFunctionError(f"the handler's result cannot be pickled: {value!r:.200}")
            type_name = RemoteFunctionError.__name__
        else:
            value = RemoteFunctionError(f"{type_name}: {value}")
        return pickle.dumps(("error", value, type_name))


_NAMED: dict[tuple[type[BaseException], str], type[BaseException]] = {}


def _named(error: BaseException, type_name: str) -> BaseException:
    """`error` under the class name it had in the worker.

    botocore raises subclasses of ClientError it builds at run time (ResourceNotFoundException,
    ConditionalCheckFailedException…), which pickle as plain ClientError; the failures queue and
    the logs name the error as the handler saw it, so the name is restored here the same way.
    """
    base = type(error)
    if not type_name or base.__name__ == type_name:
        return error
    named = _NAMED.get((base, type_name))
    if named is None:
        named = _NAMED[(base, type_name)] = type(type_name, (base,), {})
    error.__class__ = named
    return error
