"""What the agent's parts count since start: one board they each write their own fields of."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AgentCounters:
    """Counters since start; each field is written by one part only (no lock needed)."""

    # sampling
    readings: int = 0
    urgent: int = 0
    sensor_errors: int = 0
    readings_lost: int = 0
    missed_ticks: int = 0
    # time
    restamped: int = 0
    # batch planning
    batches_formed: int = 0
    early_batches: int = 0
    # sending
    batches_published: int = 0
    batches_acked: int = 0
    batches_refused: int = 0
    batches_failed: int = 0
    readings_acked: int = 0
    health_published: int = 0
    refusals: dict[int, int] = field(default_factory=dict)
