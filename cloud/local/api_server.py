"""The HTTP API on 127.0.0.1: requests become API Gateway HTTP API (v2) events for the handler.

It stands in for API Gateway and its JWT authorizer: a request without the stack's token is
refused with 401 before the handler runs, and an accepted one carries the local identity's
claims (user from $USER, member of admins) exactly where the authorizer would put them.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cloud.local.dashboard_files import is_static, static_file
from cloud.local.functions import LocalContext

if TYPE_CHECKING:
    from cloud.bootstrap import Boto3Kwargs

log = logging.getLogger(__name__)
Handler = Callable[[Any, Any], dict[str, Any]]
MAX_BODY_BYTES = 1024 * 1024  # above IoT's 128 KB message limit, below what could hurt us


@dataclass(frozen=True)
class LocalIdentity:
    """Who the local token stands for."""

    username: str
    admin: bool = True

    def claims(self) -> dict[str, str]:
        claims = {"username": self.username, "cognito:username": self.username, "sub": "local"}
        if self.admin:
            claims["cognito:groups"] = "[admins]"  # the string form API Gateway passes on
        return claims


def local_identity() -> LocalIdentity:
    return LocalIdentity(username=os.environ.get("USER") or "local")


def to_event(
    method: str, target: str, headers: dict[str, str], body: bytes, claims: dict[str, str]
) -> dict[str, Any]:
    """The API Gateway HTTP API payload format 2.0 event of one request."""
    parts = urlsplit(target)
    query: dict[str, str] = {}
    if parts.query:
        from urllib.parse import parse_qsl

        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            # API Gateway joins repeated parameters with commas.
            query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    text: str | None
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    return {
        "version": "2.0",
        "routeKey": "ANY /api/{proxy+}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "authorizer": {"jwt": {"claims": claims, "scopes": None}},
            "domainName": headers.get("Host", "127.0.0.1"),
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "ANY /api/{proxy+}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, json.dumps({"message": message}).encode())

    def _authorized(self) -> bool:
        # Compared in constant time: the token is the only thing between callers and the API.
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.token}"
        return hmac.compare_digest(given.encode(), expected.encode())

    def _handle(self) -> None:
        length_text = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(length_text)
        except ValueError:
            self._error(400, f"Content-Length {length_text!r} is not a number")
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, f"body of {length} bytes: expected at most {MAX_BODY_BYTES}")
            return
        body = self.rfile.read(length) if length else b""
        if is_static(self.command, self.path):
            # The page itself holds no data and no token, so it is served without one.
            self._reply(*static_file(self.path))
            return
        if not self._authorized():
            self._error(401, "missing or wrong token: expected Authorization: Bearer <token>")
            return
        event = to_event(
            self.command, self.path, dict(self.headers.items()), body, self.server.claims
        )
        try:
            # One event at a time, as one Lambda container runs: Powertools' resolver keeps the
            # request under way in the app and in class attributes shared by every instance, so
            # two at once answered with each other's route (a 500 one request in thousands).
            with self.server.one_at_a_time:
                result = self.server.handler(
                    event, LocalContext(function_name="chantier-local-api")
                )
        except Exception:
            log.exception("API handler failed")
            self._error(500, "internal error: see the stack's logs")
            return
        payload = result.get("body") or ""
        raw = (
            base64.b64decode(payload)
            if result.get("isBase64Encoded")
            else str(payload).encode("utf-8")
        )
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        headers.setdefault("Content-Type", "application/json")
        self._reply(int(result.get("statusCode", 200)), raw, headers)

    def _not_allowed(self) -> None:
        # The stdlib would answer an HTML 501 page; the API answers JSON, always. A HEAD reply
        # carries no body, whatever its length header says.
        body = json.dumps(
            {"message": f"method {self.command} is not allowed: the API uses GET and POST"}
        ).encode()
        self.send_response(405)
        self.send_header("Content-Type", "application/json")
        self.send_header("Allow", "GET, POST")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the stdlib raises itself (bad request line, unsupported method) as JSON."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if code == 501:  # a method the stdlib has no handler for
                self._not_allowed()
            else:
                self._error(code, message or "the request could not be read")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815 - stdlib naming
    do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed  # noqa: N815


def _not_ready(event: Any, context: Any) -> dict[str, Any]:
    return {"statusCode": 503, "body": json.dumps({"message": "the API is starting"})}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # 50 clients may connect at the same instant (the run limit test); the default backlog of
    # 5 would make the kernel drop some connection attempts.
    request_queue_size = 128

    def __init__(self, token: str, claims: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.handler: Handler = _not_ready
        self.one_at_a_time = threading.Lock()
        self.token = token
        self.claims = claims


class ApiServer:
    """Serves the API handler on a free port of 127.0.0.1 until stopped."""

    def __init__(self, token: str, identity: LocalIdentity | None = None) -> None:
        self._server = _Server(token, (identity or local_identity()).claims())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, handler: Handler) -> None:
        """Serve `handler` in a background thread until stop()."""
        self._server.handler = handler
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="api-server"
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, so only once started
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout_s)


def _spec_environment(template: Any, handler_path: str) -> dict[str, str]:
    for spec in template.functions().values():
        if spec.handler == handler_path:
            return dict(spec.environment)
    raise LookupError(f"the template has no function with handler {handler_path}")


def start_api(
    template: Any,
    boto3_kwargs: Boto3Kwargs,
    token: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> ApiServer:
    """Build the API handler from the template's function and serve it.

    Overdue runs are closed by the template's RunsExpiryFunction, which the stack's local
    scheduler runs like EventBridge would.
    """
    from cloud.handlers import api
    from cloud.local.logfiles import file_logger
    from cloud.local.metrics import local_metrics

    logger = file_logger("chantier-api", log_path)
    server = ApiServer(token)
    try:
        env = {**_spec_environment(template, "cloud.handlers.api.handler"), **(extra_env or {})}
        # Locally a run's dashboard link is its page on the local dashboard (same server).
        env["DASHBOARD_URL_TEMPLATE"] = server.url + "/#/runs/{runId}"
        metrics = local_metrics(env.get("POWERTOOLS_METRICS_NAMESPACE"))
        server.start(api.build(env, boto3_kwargs, logger=logger, metrics=metrics))
    except BaseException:
        server.stop()
        raise
    return server
