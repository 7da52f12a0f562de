"""The whole cloud on one machine: CA, Mosquitto, moto servers, rules engine and handlers.

This is the one place where the local stack's processes and clients are wired together.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from cloud.local.broker import (
    OBSERVER_IDENTITY,
    RULES_ENGINE_IDENTITY,
    Broker,
    broker_port,
    registry_things,
    write_acl,
)
from cloud.local.function_processes import FunctionProcesses, WorkerSetup
from cloud.local.functions import LocalFunctions
from cloud.local.lake import DuckDbLake, lake_dir
from cloud.local.landings import LandingJournal, journal_path
from cloud.local.processes import (
    ChildProcess,
    DynaliteServer,
    MotoServer,
    dynalite_available,
    free_port,
)
from cloud.local.resources import create_from_template
from cloud.local.rules_engine import RulesEngine
from cloud.local.scheduler import LocalScheduler, scale_from_env
from cloud.local.stackinfo import StackInfo
from cloud.local.statelock import StateLock
from cloud.local.supervisor import Supervisor
from cloud.local.template import FunctionSpec, LocalTemplate

log = logging.getLogger(__name__)
EventSink = Callable[[str, dict[str, Any]], None]
# Messages the rules engine handles at once (a thing's messages always in order), any worker
# taking any topic (cloud/local/topic_queue.py). Each waits for its Lambda action, a few moto
# round trips: with 4, 700 machines at agent defaults queued for seconds while moto had spare
# time. More than botocore's 10 pooled connections per client would open a connection a call.
# (32 workers with a 0.5 ms GIL slice were tried for the live profile at 1,000 machines; one
# run on a loaded machine made the alert path slower, so the change was not kept:
# docs/performance.md.)
RULES_WORKERS = 8
# Worker processes for the functions the topic rules invoke (cloud/local/function_processes.py):
# 50-60 MB resident each, 35-45 MB of it their own (the rest shared with the fork server). One
# per rules worker: each topic rule's one action runs on its rules worker, so no invocation
# waits for a function worker. A fleet batch holds one for about 50 ms, mostly waiting on moto
# and DynamoDB, not on a core. With 4, a machine's own worker was busy for about 30 % of its
# batches, and 6-12 alerts in 200 went to a worker that had to read the machine's states first;
# with 8, 17 % and 1-6 (docs/performance.md, "Runs of 27 November, 22:15-23:10 UTC").
FUNCTION_PROCESSES = RULES_WORKERS
BROKER_RESUBSCRIBE_S = 30.0

# The AWS APIs the template's resources live in, each served by the moto server or DynamoDB's.
SERVICES = ("s3", "dynamodb", "iot", "sns", "sqs")
# Tables whose code writes transactions (the runs' counter and items, cloud/api/runs_dynamodb.py):
# dynalite has none, so with it these stay on the moto server of the other AWS APIs.
TRANSACTIONAL_TABLES = ("RunsTable",)


class LocalStack:
    """Starts and stops the local stack; use as a context manager so everything always stops."""

    def __init__(
        self,
        state_dir: Path,
        on_event: EventSink | None = None,
        template: LocalTemplate | None = None,
        function_env: Mapping[str, str] | None = None,
        schedule_scale: float | None = None,
        prepare_workers: Callable[[], None] | None = None,
    ) -> None:
        """`function_env` is added to every function's environment (tests: a crafted rules
        file); `schedule_scale` multiplies schedule periods (default: CHANTIER_LOCAL_SCHEDULE_SCALE
        or 1, see cloud/local/scheduler.py); `prepare_workers`, a picklable function, runs in
        each function worker process before its handlers are built (benchmarks' probes)."""
        self.state_dir = state_dir.resolve()
        self.on_event = on_event
        self.template = template or LocalTemplate()
        self.function_env = dict(function_env or {})
        self.schedule_scale = schedule_scale
        self.prepare_workers = prepare_workers
        self.functions: LocalFunctions | None = None
        self.scheduler: LocalScheduler | None = None
        self.api: Any = None  # cloud.local.api_server.ApiServer once started
        self.moto: MotoServer | None = None  # every AWS API but DynamoDB
        # DynamoDB's own server: dynalite when installed (make install), else moto
        self.dynamodb: DynaliteServer | MotoServer | None = None
        self.broker: Broker | None = None
        self.bridge: Any = None
        self.engine: RulesEngine | None = None
        self.info: StackInfo | None = None
        self.ca: Any = None
        self.landings: LandingJournal | None = None
        self.supervisor: Supervisor | None = None
        self.restored_things: list[str] = []  # registered again from their bundles at start
        self.lock = StateLock(self.state_dir)

    # ---------- lifecycle ----------
    def start(self) -> StackInfo:
        from provisioning.ca import CertificateAuthority

        # Metrics go to CloudWatch through EMF lines in AWS; locally they would only flood stdout.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        self.lock.acquire()  # before anything: a refused stack must not touch the other's files
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.ca = CertificateAuthority.create_or_load(self.state_dir / "ca")
            broker_dir = self.state_dir / "broker"
            server = self.ca.issue_server_certificate(
                "broker", ["127.0.0.1", "localhost"], broker_dir
            )
            engine_cert = self.ca.issue_client_certificate(
                RULES_ENGINE_IDENTITY, self.state_dir / "rules-engine"
            )
            # A read-only identity for tools and tests that watch the traffic, so they never
            # need (and never take over) the rules engine's own session.
            self.ca.issue_client_certificate(OBSERVER_IDENTITY, self.state_dir / "observer")

            self.moto, self.dynamodb = self._start_aws_servers()

            port, moved = broker_port(broker_dir)
            if moved:
                log.warning(moved)
            info = StackInfo(
                state_dir=str(self.state_dir),
                aws_endpoint=self.moto.endpoint,
                dynamodb_endpoint=self.dynamodb.endpoint,
                broker_host="127.0.0.1",
                broker_port=port,
                ca_file=str(self.ca.cert_path),
                raw_bucket=self.template.physical_name("RawBucket"),
                alerts_table=self.template.physical_name("AlertsTable"),
                readings_table=self.template.physical_name("ReadingsTable"),
                runs_table=self.template.physical_name("RunsTable"),
                rule_name=self.template.physical_name("TelemetryRule"),
                failures_queue=self.template.physical_name("FailuresQueue"),
                api_token=secrets.token_urlsafe(24),
                pid=os.getpid(),
                table_endpoints=self._table_endpoints(),
            )
            clients = {name: boto3.client(name, **info.boto3_kwargs(name)) for name in SERVICES}
            # raw/ and errors/ from the mirror
            create_from_template(self.template, clients, self._table_clients(info, None))
            self._restore_registry(clients["iot"], (info.broker_host, info.broker_port))

            self.broker = Broker(broker_dir, info.broker_port)
            self.broker.start(
                ca=self.ca.cert_path,
                cert=server.cert_path,
                key=server.key_path,
                crl=self.ca.crl_path,
                policy_document=self.template.iot_policy_document("chantier-device"),
                things=registry_things(clients["iot"]),
            )
            info = replace(
                info,
                broker_pid=self.broker.process.pid,
                moto_pid=self.moto.pid,
                dynamodb_pid=self.dynamodb.pid,
            )

            specs = {
                arn: replace(spec, environment={**spec.environment, **self.function_env})
                for arn, spec in self.template.functions().items()
            }
            lake = DuckDbLake(lake_dir(self.state_dir), info.raw_bucket)
            function_log = self.state_dir / "logs" / "functions.log"
            functions = self.functions = LocalFunctions(
                specs,
                info.boto3_kwargs,
                function_log,
                local_parts={"cloud.handlers.rollups": {"engine": lake}},
                processes=self._function_processes(specs, info, function_log),
            )
            self.landings = LandingJournal(journal_path(self.state_dir))
            self.engine = RulesEngine(
                self.template.topic_rules(),
                clients["s3"],
                functions.invoke_async,
                on_event=self._engine_event,
                action_threads=2 * RULES_WORKERS,
            )
            from cloud.local.mqtt_bridge import MqttBridge

            self.bridge = MqttBridge(
                host=info.broker_host,
                port=info.broker_port,
                client_id=RULES_ENGINE_IDENTITY,
                cert=engine_cert.cert_path,
                key=engine_cert.key_path,
                ca=self.ca.cert_path,
                handler=self.engine.handle,
                workers=RULES_WORKERS,
            )
            self.bridge.start(self.engine.subscriptions())
            self.supervisor = Supervisor(on_restart=self._child_restarted)
            self.supervisor.watch(self.broker.process, self._restart_broker)
            self.supervisor.watch(self.moto, lambda: self._restart_aws_server(self.moto))
            self.supervisor.watch(self.dynamodb, lambda: self._restart_aws_server(self.dynamodb))
            self.supervisor.start()
            scale = self.schedule_scale
            # Asynchronous, as EventBridge invokes: a failed run is retried as the function's
            # InvokeConfig says, then kept in the failures queue, as in AWS.
            self.scheduler = LocalScheduler(
                self.template.schedules(),
                functions.invoke_async,
                scale=scale_from_env(os.environ) if scale is None else scale,
            )
            self.scheduler.start()
            from cloud.local.api_server import start_api

            self.api = start_api(
                self.template,
                info.boto3_kwargs,
                info.api_token,
                self.state_dir / "logs" / "api.log",
                extra_env=self.function_env,
            )
            info = replace(info, api_url=self.api.url)
            info.save()
            self.info = info
            return info
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop in reverse order; safe to call more than once and after a failed start.

        Devices are shut out first and the rules engine finishes what the broker holds for
        it: a message the broker acknowledged to a device is never dropped by a clean stop.
        """
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
        if self.broker is not None and self.bridge is not None:
            self._close_the_door()
        if self.api is not None:
            try:
                self.api.stop()
            finally:
                self.api = None
        if self.scheduler is not None:
            try:
                self.scheduler.stop()
            finally:
                self.scheduler = None
        if self.functions is not None:
            self.functions.close()  # failures waiting for a retry are kept now
        if self.bridge is not None:
            try:
                self.bridge.stop()
            finally:
                self.bridge = None
        if self.engine is not None:
            self.engine.close()
        if self.functions is not None:
            self.functions.stop_processes()
        if self.landings is not None:
            self.landings.close()
            self.landings = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        for moto in (self.moto, self.dynamodb):
            if moto is not None:
                moto.stop()
        self.moto = self.dynamodb = None
        if self.info is not None:
            self.info.path.unlink(missing_ok=True)
            self.info = None
        self.lock.release()

    def _function_processes(
        self, specs: Mapping[str, FunctionSpec], info: StackInfo, log_path: Path
    ) -> FunctionProcesses:
        """Worker processes for the functions the topic rules invoke (the fleet's hot path);
        scheduled functions run in this process, with the local parts only it holds."""
        # A rule may name a function the template lacks: its action fails as in AWS.
        invoked = {
            action["Lambda"]["FunctionArn"]
            for rule in self.template.topic_rules()
            for action in rule.actions
            if "Lambda" in action and action["Lambda"]["FunctionArn"] in specs
        }
        setup = WorkerSetup(
            {arn: specs[arn] for arn in invoked},
            info.boto3_kwargs,
            log_path,
            dict(os.environ),
            self.prepare_workers,
        )
        return FunctionProcesses(setup, FUNCTION_PROCESSES, affinity=_event_thing)

    def _start_aws_servers(self) -> tuple[MotoServer, DynaliteServer | MotoServer]:
        """The moto server of every AWS API but DynamoDB (keeping raw objects and queued
        messages as files), and DynamoDB's own: started together, each waited for."""
        logs = self.state_dir / "logs"
        aws_port = free_port()
        dynamodb_port = free_port()
        while dynamodb_port == aws_port:
            dynamodb_port = free_port()
        dynamodb: DynaliteServer | MotoServer
        if dynalite_available():
            dynamodb = DynaliteServer(
                "DynamoDB server (dynalite)", dynamodb_port, logs / "dynalite.log"
            )
        else:
            log.warning(
                "dynalite is not installed (run `make install`): DynamoDB is served by moto, "
                "which takes about twice the CPU per request"
            )
            dynamodb = MotoServer(
                "moto server (DynamoDB)", dynamodb_port, logs / "moto-dynamodb.log"
            )
        aws = MotoServer(
            "moto server",
            aws_port,
            logs / "moto.log",
            mirror=lake_dir(self.state_dir),
            queues=self.state_dir / "queues",
        )
        servers: tuple[ChildProcess, ...] = (aws, dynamodb)
        try:
            for server in servers:
                server.spawn()
            aws.wait_ready(aws.ready)
            dynamodb.wait_ready(dynamodb.ready)
        except BaseException:
            for server in servers:
                server.stop()
            raise
        return aws, dynamodb

    def _table_endpoints(self) -> dict[str, str]:
        """Tables served elsewhere than the DynamoDB server: with dynalite, those that need
        transactions, on the other moto server."""
        if not isinstance(self.dynamodb, DynaliteServer) or self.moto is None:
            return {}
        names = (self.template.physical_name(logical) for logical in TRANSACTIONAL_TABLES)
        return {name: self.moto.endpoint for name in names}

    def _table_clients(
        self, info: StackInfo, server: DynaliteServer | MotoServer | None
    ) -> dict[str, Any]:
        """For create_from_template: each table served elsewhere, with its client when its
        server is `server` (None: every server)."""
        return {
            name: boto3.client("dynamodb", **info.boto3_kwargs("dynamodb", name))
            if server is None or server.endpoint == endpoint
            else None
            for name, endpoint in info.table_endpoints.items()
        }

    def _restart_aws_server(self, server: DynaliteServer | MotoServer | None) -> None:
        # moto and dynalite keep everything in memory: the restarted server gets the template's
        # resources again, as a new stack would (raw objects and kept messages from their
        # files, the registry from the bundles); what lived only in its memory (DynamoDB
        # items) is gone.
        assert server is not None and self.info is not None
        server.start(server.ready)
        served = {
            name: self.client(name)
            for name in SERVICES
            if self.info.endpoint(name) == server.endpoint
        }
        create_from_template(self.template, served, self._table_clients(self.info, server))
        log.warning("%s restarted: the template's resources are there again", server.name)
        if "iot" in served:
            self._restore_registry(served["iot"], (self.info.broker_host, self.info.broker_port))
            self.refresh_broker()

    def _restore_registry(self, iot: Any, broker: tuple[str, int]) -> None:
        from cloud.local.provisioning import restore_registry

        report = restore_registry(
            self.state_dir,
            self.ca,
            iot,
            broker,
            self.template.iot_policy_document("chantier-device"),
        )
        self.restored_things = report.restored
        for thing, why in report.skipped:
            log.warning("%s stays out of the registry: %s", thing, why)

    def _close_the_door(self) -> None:
        # Devices now get "not authorized" and keep their batches for the next stack.
        assert self.broker is not None
        try:
            self.broker.refresh([])
        except OSError as exc:
            log.warning("could not shut devices out before stopping: %s", exc)
            return
        if not self.bridge.quiet():
            log.warning("the rules engine was still busy when the stack stopped")

    def _restart_broker(self) -> None:
        # A restarted Mosquitto knows the rules engine's session only as of its last save (or
        # not at all): until the engine has subscribed again, a device's publish could find no
        # subscriber. Devices are shut out (they keep their batches) until then.
        assert self.broker is not None
        write_acl(self.broker.files, [])
        self.bridge.expect_new_session()
        self.broker.restart()
        deadline = time.monotonic() + BROKER_RESUBSCRIBE_S
        while not self.bridge.wait_subscribed(0.1):
            if self.broker.process.exited() is not None:
                return  # died again: the supervisor starts it over
            if time.monotonic() > deadline:
                log.error("the rules engine did not subscribe again; devices stay shut out")
                return
        self.refresh_broker()

    def _child_restarted(self, name: str, pid: int) -> None:
        if self.info is None:
            return
        if name == "mosquitto":
            self.info = replace(self.info, broker_pid=pid)
        elif self.moto is not None and name == self.moto.name:
            self.info = replace(self.info, moto_pid=pid)
        elif self.dynamodb is not None and name == self.dynamodb.name:
            self.info = replace(self.info, dynamodb_pid=pid)
        else:
            return
        self.info.save()

    def _engine_event(self, kind: str, details: dict[str, Any]) -> None:
        if kind == "s3" and self.landings is not None:
            self.landings.record(
                details["key"], details["received_ms"], details["stored_ms"], details["message"]
            )
        if self.on_event is not None:
            self.on_event(kind, details)
        landed = details.get("result") if kind == "lambda" else None
        if not isinstance(landed, dict) or not landed.get("rawKey"):
            return
        # The ingest function writes the raw batch itself (docs/architecture.md, step 5).
        if self.landings is not None:
            self.landings.record(
                landed["rawKey"], landed["receivedMs"], landed["storedMs"], landed["batch"]
            )
        if self.on_event is not None:
            self.on_event(
                "landed", {"key": landed["rawKey"], "bytes": landed["bytes"], "raw": landed["raw"]}
            )

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def warm(self) -> None:
        """Prepare a long-running stack process for steady latency.

        Builds every function handler now rather than at its first event, then moves
        everything allocated so far out of the garbage collector's sight: boto3 and Powertools
        leave about 200,000 long-lived objects, and a full collection walking them paused the
        pipeline for 20-40 ms (the tail of the alert latency benchmark). Not for test processes
        that start many stacks: frozen objects are never freed.
        """
        assert self.functions is not None, "stack not started"
        self.functions.warm()
        gc.collect()
        gc.freeze()

    # ---------- helpers for tools running inside the stack's process ----------
    def client(self, service: str) -> Any:
        assert self.info is not None, "stack not started"
        return boto3.client(service, **self.info.boto3_kwargs(service))

    def resource(self, service: str) -> Any:
        assert self.info is not None, "stack not started"
        return boto3.resource(service, **self.info.boto3_kwargs(service))

    def refresh_broker(self) -> None:
        """Re-render the ACL from the registry and reload Mosquitto (after provisioning)."""
        assert self.broker is not None, "stack not started"
        self.broker.refresh(registry_things(self.client("iot")))

    def drain(self, timeout_s: float = 5.0) -> bool:
        return bool(self.bridge.drain(timeout_s)) if self.bridge is not None else True


def _event_thing(event: Any) -> str | None:
    """The machine a topic rule's event speaks for (the topic's thing), when it names one."""
    thing = event.get("thing") if isinstance(event, dict) else None
    return thing if isinstance(thing, str) else None
