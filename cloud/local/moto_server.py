"""The local stack's moto server: moto's own server, minus the costs that grow with a fleet.

Run as `python -m cloud.local.moto_server -H 127.0.0.1 -p PORT`. Against the stock
`python -m moto.server`, measured with 100 simulated machines (docs/performance.md):
- moto finds the backend of every request by listing its package folder and matching a few
  hundred URL patterns, under one lock that serialises all requests: the answer depends on the
  host alone, so it is remembered;
- every request wrote an access-log line to moto.log: only errors are logged;
- a DynamoDB Query on a table's own key sorted every item of the table to keep one partition
  (O(n log n) per call: 180 ms at 10,000 items); here it reads that partition only, as DynamoDB
  does. Index queries keep moto's behaviour;
- moto keeps every stored item and object as Python objects, millions of them for a fleet's
  readings, and each full garbage collection walked them all: pauses of up to a second that
  every request waited for. What has lived FREEZE_EVERY_S is moved out of the collector's sight
  (stored data is freed by reference counting when overwritten or deleted);
- moto's serializer walked the output shape for every attribute value of every item a DynamoDB
  request answers, half of the DynamoDB server's time in moto under a fleet: item answers are
  written straight from the stored items instead (cloud/local/moto_answers.py);
- each request also went through moto's dispatcher and its Flask application (routing, CORS,
  debug checks), listed the handler class's methods with `inspect`, and got a thread of its
  own: DynamoDB calls go straight to moto's DynamoDB handler, the method lists are kept, and
  request threads are kept for the next connection. The DynamoDB server's CPU per request of
  the alert path went from 4.1 to 3.1-3.3 ms (tests/benchmarks/bench_moto_server.py).
Given `--mirror` and `--queues`, it also keeps the objects under `raw/` and `errors/` and the
SQS messages as files, and puts them back when a restarted stack creates its bucket and queues.
Everything else is moto's code unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chantier.signals import stop_on_signals
from cloud.local.moto_answers import direct_dynamodb_answers
from cloud.local.moto_patches import patched


def _replace_file(target: Path, data: bytes) -> None:
    """Write `target` whole or not at all. The partial file's name starts with a dot and does
    not end like the target's, so what restores the folder never takes a write cut short."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{threading.get_ident()}")
    partial.write_bytes(data)
    os.replace(partial, target)


@contextlib.contextmanager
def partition_queries() -> Iterator[bool]:
    """While active, base-table Queries read their partition only; yields False when this
    moto release does not have the shape the change relies on (then nothing is changed)."""
    from moto.dynamodb.models.table import Table

    original_query = getattr(Table, "query", None)
    original_all_items = getattr(Table, "all_items", None)
    if original_query is None or original_all_items is None or not _has_index_name(original_query):
        yield False
        return
    scope = threading.local()

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        scope.hash_key = hash_key
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            scope.hash_key = None

    def all_items(self: Any) -> Any:
        hash_key = getattr(scope, "hash_key", None)
        if hash_key is None:
            return original_all_items(self)
        # The same order as moto's full listing restricted to one partition: by range key.
        partition = self.items.get(hash_key)
        if partition is None:
            return []
        if not self.range_key_attr:
            return [partition]
        return sorted(partition.values(), key=lambda item: item.range_key)

    with patched(Table, query=query, all_items=all_items):
        yield True


# What devices sent (raw batches) and what was refused or failed (kept for inspection).
MIRRORED_PREFIXES = ("raw/", "errors/")


@contextlib.contextmanager
def mirror_raw_objects(root: Path) -> Iterator[None]:
    """While active, the current version of every object under `raw/` or `errors/` of any
    bucket is also a file `<root>/<bucket>/<key>` (written before the put is answered, removed
    on delete): the local query engine reads those files (cloud/local/lake.py) as Athena reads
    the bucket. A bucket created over an existing mirror starts with the mirrored objects, so
    what had landed is still there after a restart, even one after a kill -9."""
    from moto.s3.models import FakeKey, S3Backend

    original_put = S3Backend.put_object
    original_delete = S3Backend.delete_object
    original_create = S3Backend.create_bucket
    base = root.resolve()

    def sync(backend: Any, bucket_name: str, key_name: str) -> None:
        if not key_name.startswith(MIRRORED_PREFIXES):
            return
        target = (base / bucket_name / key_name).resolve()
        if not target.is_relative_to(base / bucket_name):
            return  # a key with `..` in it: nothing the rules or the API ever write
        current = backend.get_bucket(bucket_name).keys.get(key_name)
        try:
            if isinstance(current, FakeKey):
                _replace_file(target, current.value)
            else:
                target.unlink(missing_ok=True)
        except OSError as exc:
            # The S3 request still succeeds (analytics and a restart then miss this object),
            # as it would have without the mirror: said loudly, in moto.log.
            print(f"raw mirror: {target} not updated: {exc}", file=sys.stderr)

    def put_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        stored = original_put(self, bucket_name, key_name, *args, **kwargs)
        sync(self, bucket_name, key_name)
        return stored

    def delete_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        outcome = original_delete(self, bucket_name, key_name, *args, **kwargs)
        sync(self, bucket_name, key_name)
        return outcome

    def create_bucket(self: Any, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        bucket = original_create(self, bucket_name, *args, **kwargs)

        def put(key: str, value: bytes) -> None:
            original_put(self, bucket_name, key, value)  # the file is already there

        restored = restore_mirrored(base / bucket_name, put)
        if restored:
            print(f"raw mirror: {restored} objects restored into {bucket_name}", file=sys.stderr)
        return bucket

    with patched(
        S3Backend, put_object=put_object, delete_object=delete_object, create_bucket=create_bucket
    ):
        yield


def restore_mirrored(folder: Path, put: Callable[[str, bytes], Any]) -> int:
    """Put every mirrored file of one bucket's folder back as its object; returns how many."""
    count = 0
    for prefix in MIRRORED_PREFIXES:
        top = folder / prefix
        if not top.is_dir():
            continue
        for directory, _, names in os.walk(top):
            for name in sorted(names):
                if name.startswith("."):
                    continue  # a write cut short (the temporary file of os.replace)
                path = Path(directory) / name
                put(path.relative_to(folder).as_posix(), path.read_bytes())
                count += 1
    return count


@contextlib.contextmanager
def keep_queue_messages(root: Path) -> Iterator[None]:
    """While active, every message sent to an SQS queue is also a file
    `<root>/<queue>/<message id>.json` holding its body, removed when the message is deleted
    or the queue purged; a queue created over an existing folder starts with those messages
    again (under new ids). So the failure records the stack keeps (cloud/local/functions.py)
    survive a restart, even one after a kill -9, like the mirrored objects."""
    from moto.sqs.models import SQSBackend

    original_send = SQSBackend.send_message
    original_delete = SQSBackend.delete_message
    original_create = SQSBackend.create_queue
    original_purge = SQSBackend.purge_queue
    base = root.resolve()

    def folder(queue_name: str) -> Path:
        return base / queue_name

    def keep(queue_name: str, message_id: str, body: str) -> None:
        target = folder(queue_name) / f"{message_id}.json"
        try:
            _replace_file(target, body.encode("utf-8"))
        except OSError as exc:
            print(f"queue copy: {target} not written: {exc}", file=sys.stderr)

    def send_message(
        self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any
    ) -> Any:
        message = original_send(self, queue_name, message_body, *args, **kwargs)
        keep(queue_name, message.id, message_body)
        return message

    def delete_message(self: Any, queue_name: str, receipt_handle: str) -> None:
        queue = self.get_queue(queue_name)
        gone = [
            m.id for m in getattr(queue, "_messages", []) if m.had_receipt_handle(receipt_handle)
        ]
        original_delete(self, queue_name, receipt_handle)
        for message_id in gone:
            (folder(queue_name) / f"{message_id}.json").unlink(missing_ok=True)

    def purge_queue(self: Any, queue_name: str) -> None:
        original_purge(self, queue_name)
        for kept in folder(queue_name).glob("*.json"):
            kept.unlink(missing_ok=True)

    def create_queue(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        existed = name in self.queues
        queue = original_create(self, name, *args, **kwargs)
        if not existed and folder(name).is_dir():
            restored = 0
            for kept in sorted(folder(name).glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
                message = original_send(self, name, kept.read_text(encoding="utf-8"))
                os.replace(kept, kept.with_name(f"{message.id}.json"))
                restored += 1
            if restored:
                print(f"queue copy: {restored} messages restored into {name}", file=sys.stderr)
        return queue

    with patched(
        SQSBackend,
        send_message=send_message,
        delete_message=delete_message,
        create_queue=create_queue,
        purge_queue=purge_queue,
    ):
        yield


# Every second: each collection then walks one second of allocations. Every 10 s, one walk
# took 80-93 ms with 100 machines publishing, and every request waited for it.
FREEZE_EVERY_S = 1.0


def freeze_heap_every(period_s: float, stop: threading.Event) -> threading.Thread:
    """A thread that, every `period_s` until `stop`, collects what is new and freezes the rest."""

    def loop() -> None:
        while not stop.wait(period_s):
            # Only what was allocated since the last freeze is walked: a short pause.
            gc.collect()
            gc.freeze()

    thread = threading.Thread(target=loop, name="freeze-heap", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def remembered_action_names() -> Iterator[None]:
    """While active, moto lists a response class's methods once, not on every request."""
    from moto.core import responses

    listed: dict[type, list[str]] = {}
    original = responses.method_names_from_class

    def method_names(clazz: Any) -> list[str]:
        # Classes do not change while the server runs; one list per class is safe to share.
        names = listed.get(clazz)
        if names is None:
            names = listed[clazz] = original(clazz)
        return names

    with patched(responses, method_names_from_class=method_names):
        yield


def _has_index_name(query: Callable[..., Any]) -> bool:
    names = list(inspect.signature(query).parameters)
    # self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
    # scan_index_forward, projection_expressions, index_name, ...
    return len(names) > 8 and names[8] == "index_name"


def application() -> Any:
    """moto's request dispatcher, remembering which backend serves which host."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    class RememberingDispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called under moto's dispatch lock, so the dictionary needs no lock of its own.
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return RememberingDispatcher()


DYNAMODB_TARGET = "DynamoDB_20120810."


def dynamodb_straight(fallback: Any) -> Any:
    """A WSGI application: DynamoDB calls go to moto's DynamoDB handler directly, every other
    request to `fallback` (moto's dispatcher and its Flask application per service)."""
    from botocore.exceptions import ClientError
    from moto.core.request import Request
    from moto.dynamodb.responses import DynamoHandler
    from werkzeug.wrappers import Response

    class ServerRequest(Request):
        from_wsgi_server = True

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or environ.get("PATH_INFO") != "/"
            or not environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET)
        ):
            return fallback(environ, start_response)
        # What moto's Flask view does for this handler, without the routing, CORS and debug
        # layers around it: about a tenth of the DynamoDB server's time under a fleet.
        request = ServerRequest(environ)
        try:
            result = DynamoHandler.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, body = result if len(result) == 3 else (200, {}, result)
        return Response(response=body, status=status, headers=headers)(environ, start_response)

    return app


def request_handler() -> type:
    """moto's request handler without the access-log line of every request."""
    from moto.server import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    return QuietHandler


def pooled_server(host: str, port: int, app: Any, handler: type) -> Any:
    """werkzeug's server, its request threads kept for the next connection rather than ended."""
    import queue

    from werkzeug.serving import BaseWSGIServer

    class PooledWSGIServer(BaseWSGIServer):
        multithread = True

        def __init__(self) -> None:
            super().__init__(host, port, app, handler=handler)
            self._accepted: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
            self._lock = threading.Lock()
            self._idle = 0  # threads waiting for a connection, or started to
            self._waiting = 0  # connections accepted and not yet taken
            self.threads = 0

        def process_request(self, request: Any, client_address: Any) -> None:
            with self._lock:
                self._waiting += 1
                # As many threads as connections at once, as werkzeug's own server has: a
                # client slow to send its request holds one thread, never the others.
                if self._waiting > self._idle:
                    self._idle += 1
                    self.threads += 1
                    name = f"request-{self.threads}"
                    # Daemons, as werkzeug's: a client that never finishes its request must
                    # not keep a stopping server alive.
                    threading.Thread(target=self._serve, name=name, daemon=True).start()
            self._accepted.put((request, client_address))

        def _serve(self) -> None:
            while True:
                request, client_address = self._accepted.get()
                with self._lock:
                    self._waiting -= 1
                    self._idle -= 1
                try:
                    self.finish_request(request, client_address)
                except Exception:
                    self.handle_error(request, client_address)
                finally:
                    self.shutdown_request(request)
                    with self._lock:
                        self._idle += 1

    return PooledWSGIServer()


def _leave_server_loop(_signal_name: str) -> None:
    # werkzeug's serve loop has no stop call: an exception raised in the main thread ends it.
    sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("-p", "--port", type=int, required=True, help="TCP port")
    parser.add_argument(
        "--mirror", type=Path, help="folder where objects under raw/ are mirrored as files"
    )
    parser.add_argument(
        "--queues", type=Path, help="folder where SQS messages are kept until deleted"
    )
    args = parser.parse_args(argv)
    # moto builds some URLs (SQS queues, presigned S3) from this, as its own server does.
    os.environ.setdefault("MOTO_PORT", str(args.port))

    stop = stop_on_signals(on_signal=_leave_server_loop)
    freeze_heap_every(FREEZE_EVERY_S, stop)
    with contextlib.ExitStack() as patches:
        if args.mirror is not None:
            patches.enter_context(mirror_raw_objects(args.mirror))
        if args.queues is not None:
            patches.enter_context(keep_queue_messages(args.queues))
        patches.enter_context(remembered_action_names())
        active = patches.enter_context(partition_queries())
        if not active:
            print(
                "moto's DynamoDB table has changed shape: Queries scan whole tables",
                file=sys.stderr,
            )
        if not patches.enter_context(direct_dynamodb_answers()):
            print(
                "moto's DynamoDB answers have changed shape: its own serializer writes them",
                file=sys.stderr,
            )
        app = dynamodb_straight(application())
        pooled_server(args.host, args.port, app, request_handler()).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
