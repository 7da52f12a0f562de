"""The one wiring point of a cloud function: clients, stores, the alert engine and services.

A Lambda process builds one `CloudParts` from its environment; each handler takes the parts it
needs, and each part is built once, on first use, so a function pays only for its own clients.
The local stack builds the same parts with `boto3_kwargs` pointing each service's clients at
the moto server that serves it.

Environment variables: ``RAW_BUCKET``, ``READINGS_TABLE``, ``ALERTS_TABLE``, ``RUNS_TABLE``
(each required by the parts that use it); ``CURATED_BUCKET`` (rollups, default the raw
bucket); ``ATHENA_WORKGROUP``, ``ANALYTICS_DATABASE`` (the rollups' query engine in AWS);
``ALERTS_TOPIC_ARN`` (SNS notifications, off when unset); ``MIN_NOTIFY_SEVERITY``
(default ``warning``); ``ALERT_RULES_FILE`` (default: the packaged rules file);
``ALERT_SEEN_REFRESH_MS`` (how often last-seen is rewritten, default the engine's; tests shorten
it to see offline alerts within seconds); ``IDENTITY_CACHE_TTL_S`` (how long the ingest function
keeps a thing's registry entry and a run's machines, default 3600); ``DASHBOARD_URL_TEMPLATE``
(a run's dashboard link, with a ``{runId}`` placeholder); ``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from cloud.alerts.engine import AlertEngine
    from cloud.api.app import Services
    from cloud.api.runs import RunService
    from cloud.ingest.identity import RunMembers, ThingDirectory
    from cloud.ingest.service import IngestService

Handler = Callable[[Any, Any], dict[str, Any]]


class Boto3Kwargs(Protocol):
    """A service's boto3 client and resource keyword arguments, by service name ("s3",
    "dynamodb") and, for DynamoDB, table: where the local stack points them
    (docs/architecture.md). None in AWS: boto3's defaults."""

    def __call__(self, service: str, table: str = "") -> Mapping[str, str]: ...


class QueryEngine(Protocol):
    """Runs one SQL query and returns its rows as dictionaries (Athena, or DuckDB locally)."""

    def rows(self, sql: str) -> list[dict[str, Any]]: ...


OWN_PACKAGES = ("cloud", "chantier")


def new_logger(service: str, handler: Any = None) -> Logger:
    """A Powertools logger writing the project's one log schema (see docs/runbook.md): level,
    message, timestamp in RFC 3339 UTC with milliseconds, service, location, and context."""
    return Logger(service=service, logger_handler=handler, use_rfc3339=True, utc=True)


class HandlerConfigError(ValueError):
    """A function's environment variable is missing or malformed."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class CloudParts:
    """Everything a cloud function is made of, built from its environment once and on demand.

    boto3 and the adapters are imported only when a part is first asked for: a cold start
    pays for the clients its function uses, and importing a handler needs no AWS settings.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        boto3_kwargs: Boto3Kwargs | None = None,
        logger: Logger | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.env = env
        self._boto3_kwargs = boto3_kwargs
        self._logger = logger
        self._metrics = metrics
        self._clients: dict[tuple[str, str], Any] = {}
        self._resources: dict[str, Any] = {}  # DynamoDB resources by endpoint
        self._tables: dict[str, Any] = {}

    def setting(self, name: str) -> str:
        """A required environment variable, or an error that names it."""
        value = self.env.get(name, "")
        if not value:
            raise HandlerConfigError(f"environment variable {name}: expected a value, found none")
        return value

    def _milliseconds(self, name: str, default: int) -> int:
        raw = self.env.get(name, "")
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HandlerConfigError(
                f"environment variable {name}={raw!r}: expected a whole number of milliseconds"
            ) from None
        if value < 0:
            raise HandlerConfigError(f"environment variable {name}={raw!r}: expected 0 or more")
        return value

    @cached_property
    def logger(self) -> Logger:
        if self._logger is not None:
            return self._logger  # the local stack's, writing to its own file
        logger = new_logger(self.env.get("POWERTOOLS_SERVICE_NAME", "chantier"))
        # Our modules log through `logging.getLogger(__name__)`; in Lambda their lines go
        # through the same handler, so they carry the same keys and the request id too.
        for name in OWN_PACKAGES:
            package = logging.getLogger(name)
            package.handlers = [logger.registered_handler]
            package.propagate = False
            package.setLevel(logger.log_level)
        return logger

    @cached_property
    def metrics(self) -> Metrics:
        return self._metrics or Metrics(
            namespace=self.env.get("POWERTOOLS_METRICS_NAMESPACE", "Chantier")
        )

    def entry_point(self, handler: Handler) -> Handler:
        """`handler` as Lambda calls it: every log line of the invocation carries the request
        id and cold start (Powertools' Lambda context), metrics are flushed after each event."""
        logged: Handler = self.logger.inject_lambda_context(clear_state=True)(
            self.metrics.log_metrics(handler)
        )
        return logged

    # AWS clients and tables, shared by every part of the process.

    def _kwargs(self, service: str, table: str = "") -> dict[str, str]:
        if self._boto3_kwargs is None:
            return {}
        return dict(self._boto3_kwargs(service, table) if table else self._boto3_kwargs(service))

    def client(self, service: str, table: str = "") -> Any:
        """The service's client; for DynamoDB, `table` names the table it is for."""
        kwargs = self._kwargs(service, table)
        key = (service, kwargs.get("endpoint_url", ""))
        client = self._clients.get(key)
        if client is None:
            import boto3

            client = self._clients[key] = boto3.client(service, **kwargs)
        return client

    def table(self, variable: str) -> Any:
        """The DynamoDB table named by an environment variable."""
        table = self._tables.get(variable)
        if table is None:
            name = self.setting(variable)
            kwargs = self._kwargs("dynamodb", name)
            endpoint = kwargs.get("endpoint_url", "")
            resource = self._resources.get(endpoint)
            if resource is None:
                import boto3

                resource = self._resources[endpoint] = boto3.resource("dynamodb", **kwargs)
            table = self._tables[variable] = resource.Table(name)
        return table

    @property
    def emulated(self) -> bool:
        """Clients point at an emulator (the local stack) rather than at AWS."""
        return bool(self._kwargs("dynamodb").get("endpoint_url"))

    @cached_property
    def athena(self) -> QueryEngine:
        """Athena in the analytics workgroup and database (ATHENA_WORKGROUP, ANALYTICS_DATABASE)."""
        from cloud.analytics.athena import AthenaQueryEngine

        return AthenaQueryEngine(
            self.client("athena"),
            self.setting("ATHENA_WORKGROUP"),
            self.setting("ANALYTICS_DATABASE"),
        )

    # Stores and services.

    @cached_property
    def alert_engine(self) -> AlertEngine:
        """The engine on the alerts table, with an SNS notifier when a topic is configured."""
        from chantier.alerts.rules import load_rules
        from cloud.alerts.dynamodb_store import DynamoAlertStore
        from cloud.alerts.engine import SEEN_REFRESH_MS, AlertEngine
        from cloud.alerts.notifier import SnsNotifier

        store = DynamoAlertStore(self.table("ALERTS_TABLE"))
        notifier = None
        topic_arn = self.env.get("ALERTS_TOPIC_ARN", "")
        if topic_arn:
            notifier = SnsNotifier(
                self.client("sns"),
                topic_arn,
                min_severity=self.env.get("MIN_NOTIFY_SEVERITY") or "warning",
            )
        return AlertEngine(
            load_rules(self.env.get("ALERT_RULES_FILE") or None),
            store,
            notifier=notifier,
            seen_refresh_ms=self._milliseconds("ALERT_SEEN_REFRESH_MS", SEEN_REFRESH_MS),
        )

    @cached_property
    def things(self) -> ThingDirectory:
        """The thing registry, each thing's entry kept IDENTITY_CACHE_TTL_S in the process.

        A warm function reads a thing's entry once an hour at most: one DescribeThing then
        costs $1.25 per million and some 15 ms, and a change of equipment in the registry
        applies within the hour.
        """
        from cloud.ingest.identity import CachedThings
        from cloud.ingest.thing_registry import IotThingDirectory

        return CachedThings(IotThingDirectory(self.client("iot")), self._ttl_s())

    @cached_property
    def run_members(self) -> RunMembers:
        """The machines of each run (runs table), kept IDENTITY_CACHE_TTL_S in the process."""
        from cloud.api.runs_dynamodb import DynamoRunMembers
        from cloud.ingest.identity import CachedRuns

        return CachedRuns(DynamoRunMembers(self.table("RUNS_TABLE")), self._ttl_s())

    def _ttl_s(self) -> float:
        raw = self.env.get("IDENTITY_CACHE_TTL_S", "")
        try:
            value = float(raw) if raw else 3600.0
        except ValueError:
            value = -1.0
        if not value >= 0:
            raise HandlerConfigError(
                f"environment variable IDENTITY_CACHE_TTL_S={raw!r}: expected seconds, 0 or more"
            )
        return value

    @cached_property
    def ingest(self) -> IngestService:
        """Ingestion of telemetry and health, whichever way a message arrives (rule or API)."""
        from cloud.dashboard.health_store import HealthStore
        from cloud.ingest.error_archive import ErrorArchive
        from cloud.ingest.raw_archive import S3RawArchive
        from cloud.ingest.readings_store import ReadingsStore
        from cloud.ingest.service import IngestService

        bucket = self.setting("RAW_BUCKET")
        return IngestService(
            readings=ReadingsStore(self.table("READINGS_TABLE")),
            errors=ErrorArchive(self.client("s3"), bucket),
            raw=S3RawArchive(self.client("s3"), bucket),
            alerts=self.alert_engine,
            logger=self.logger,
            metrics=self.metrics,
            health=HealthStore(self.table("ALERTS_TABLE")),
            things=self.things,
            runs=self.run_members,
        )

    def dashboard_url(self, run_id: str) -> str:
        """Link of a run's dashboard, from DASHBOARD_URL_TEMPLATE (empty when unset)."""
        template = self.env.get("DASHBOARD_URL_TEMPLATE", "")
        return template.replace("{runId}", run_id) if template else ""

    @cached_property
    def runs(self) -> RunService:
        from cloud.api.runs import RunService
        from cloud.api.runs_dynamodb import DynamoRunRepository

        repository = DynamoRunRepository(
            self.client("dynamodb", self.setting("RUNS_TABLE")),
            self.table("RUNS_TABLE"),
            emulated=self.emulated,
        )
        return RunService(repository, now_ms, self.dashboard_url)

    @cached_property
    def api_services(self) -> Services:
        """Every collaborator of the HTTP API's routes."""
        from cloud.api.app import Services
        from cloud.api.readings_dynamodb import DynamoReadingsQuery
        from cloud.api.sensors import SensorDataService
        from cloud.dashboard.dynamodb import DynamoDashboardReader
        from cloud.dashboard.service import DashboardService

        readings_table = self.table("READINGS_TABLE")
        engine = self.alert_engine
        sensors = SensorDataService(
            self.runs,
            self.things,
            self.ingest,
            DynamoReadingsQuery(readings_table),
            now_ms,
        )
        dashboard = DashboardService(
            DynamoDashboardReader(self.table("ALERTS_TABLE"), readings_table),
            engine.store,
            engine.rules,
            engine=engine,
        )
        return Services(
            runs=self.runs,
            sensors=sensors,
            logger=self.logger,
            metrics=self.metrics,
            dashboard=dashboard,
        )


class LazyHandler:
    """Lambda entry point that wires its handler from the environment on the first event.

    Wiring at import time would make every cold start pay for clients a failed import never
    needs, and would stop tests from importing the module without AWS settings.
    """

    def __init__(self, build: Callable[[Mapping[str, str]], Handler]) -> None:
        self._build = build
        self._handler: Handler | None = None

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        if self._handler is None:
            self._handler = self._build(os.environ)
        return self._handler(event, context)
