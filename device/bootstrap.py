"""The agent's one wiring point: sensors, clock, edge rules and the MQTT transport from config."""

from __future__ import annotations

from collections.abc import Sequence

from device.agent import Agent
from device.clock import Clock, SystemClock, probe_for
from device.config import AgentConfig
from device.events import EventSink
from device.sensors.base import Sensor
from device.transport import Transport
from device.urgency import Urgency, default_urgency


def mqtt_transport(config: AgentConfig) -> Transport:
    """The MQTT5 + mTLS transport to the configured broker, client id = thing name."""
    from device.mqtt import MqttTransport  # the only import of the MQTT client library

    return MqttTransport(
        endpoint=config.endpoint,
        port=config.port,
        cert=config.cert,
        key=config.key,
        ca=config.ca,
        client_id=config.thing,
        min_backoff_ms=int(config.reconnect_min_s * 1000),
        max_backoff_ms=int(max(config.reconnect_min_s, config.reconnect_max_s) * 1000),
    )


def build_agent(
    config: AgentConfig,
    *,
    on_event: EventSink | None = None,
    sensors: Sequence[Sensor] | None = None,
    transport: Transport | None = None,
    clock: Clock | None = None,
    urgency: Urgency | None = None,
) -> Agent:
    """An agent for `config`; any part given replaces the one the configuration describes."""
    if sensors is None:
        from device.sensors.factory import build_sensors

        sensors = build_sensors(config)
    return Agent(
        config,
        sensors=sensors,
        transport=transport if transport is not None else mqtt_transport(config),
        clock=clock or SystemClock(probe_for(config.clock_sync)),
        urgency=urgency or default_urgency(config.equipment, config.rules_file),
        on_event=on_event,
    )
