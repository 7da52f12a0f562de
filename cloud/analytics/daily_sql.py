"""The daily rollup as one SQL query over the raw batches (Athena in AWS, DuckDB locally).

The query reads the `raw_batches` table (cloud/template.yaml: partitions site, thing and date
as the raw keys lay them out; `readings` an array of structs) and answers one row per machine
and sensor with the day's figures. It is written in the SQL both engines read alike (UNNEST,
window functions, LEAST, %), and names every site and thing it reads, since Athena projects
those partitions from the values a query gives (the `injected` projection type).

Running hours: an engine reading counts as running when its temperature is at least
WARM_DELTA_C above the machine's ambient temperature in the same 5-minute slot (the mean of its
`ambient*` sensors), or at least WARM_ABSOLUTE_C when there is no ambient reading in that slot.
Each running reading stands for the time to the next engine reading, capped at MAX_GAP_MS, so
a machine that went silent is not billed for the silence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta

from chantier.names import NAME_PATTERN

WARM_DELTA_C = 15.0  # an idling diesel sits 20-40 °C above the outside air within minutes
WARM_ABSOLUTE_C = 40.0  # no ambient sensor: above this an engine bay is not just sun-warmed
SLOT_MS = 5 * 60_000
MAX_GAP_MS = 5 * 60_000
ENGINE = "engine"
FIELDS = ("temperature", "humidity", "pressure")
_NAME = re.compile(NAME_PATTERN)


class QueryInputError(ValueError):
    """A name or date that cannot be put in the query."""


def _literal(value: str) -> str:
    # Only names (lowercase letters, digits, dashes) and ISO dates reach the query text.
    if not _NAME.fullmatch(value) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise QueryInputError(f"{value!r}: expected a name or a YYYY-MM-DD date")
    return f"'{value}'"


def _leg(
    table: str, site: str, things: Sequence[str], days: Sequence[str], start: int, end: int
) -> str:
    names = ", ".join(_literal(t) for t in sorted(things))
    dates = ", ".join(_literal(d) for d in days)
    # The partitions are chosen in a subquery, before the readings are unnested: both engines
    # then read only those partitions' files.
    return (
        "SELECT b.site, b.thing, b.equipment, b.boot, b.seq, r.sensorid AS sensor, r.ts AS ts, "
        "r.temperature AS temperature, r.humidity AS humidity, r.pressure AS pressure "
        f"FROM (SELECT * FROM {table} WHERE site = {_literal(site)} AND thing IN ({names}) "
        f'AND "date" IN ({dates})) b CROSS JOIN UNNEST(b.readings) AS t (r) '
        f"WHERE r.ts >= {start} AND r.ts < {end}"
    )


def daily_query(
    day: str,
    start_ms: int,
    end_ms: int,
    machines: Mapping[str, Iterable[str]],
    table: str = "raw_batches",
) -> str:
    """The query for `day` ([start, end) in epoch ms) over `machines` ({site: things}).

    A batch lands under the date of its sentAt: readings taken before midnight and sent
    after it are in the next day's partition, which is read too.
    """
    following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    legs = [
        _leg(table, site, list(things), (day, following), start_ms, end_ms)
        for site, things in sorted(machines.items())
        if things
    ]
    if not legs:
        raise QueryInputError("no machine to roll up: expected at least one site and thing")
    stats = ",\n    ".join(
        f"COUNT({f}) AS {f}_count, MIN({f}) AS {f}_min, AVG({f}) AS {f}_avg, MAX({f}) AS {f}_max"
        for f in FIELDS
    )
    columns = ", ".join(f"s.{f}_{stat}" for f in FIELDS for stat in ("count", "min", "avg", "max"))
    readings = "\n    UNION ALL\n    ".join(legs)
    return f"""WITH readings AS (
    {readings}
),
ambient AS (
    SELECT site, thing, ts - ts % {SLOT_MS} AS slot, AVG(temperature) AS ambient_c
    FROM readings WHERE sensor LIKE 'ambient%' AND temperature IS NOT NULL
    GROUP BY site, thing, ts - ts % {SLOT_MS}
),
engine AS (
    SELECT e.site, e.thing, e.ts, e.temperature, a.ambient_c,
        LEAD(e.ts) OVER (PARTITION BY e.site, e.thing ORDER BY e.ts) AS next_ts
    FROM readings e LEFT JOIN ambient a
        ON a.site = e.site AND a.thing = e.thing AND a.slot = e.ts - e.ts % {SLOT_MS}
    WHERE e.sensor = '{ENGINE}' AND e.temperature IS NOT NULL
),
running AS (
    SELECT site, thing, SUM(CASE WHEN next_ts IS NOT NULL AND (
            (ambient_c IS NULL AND temperature >= {WARM_ABSOLUTE_C})
            OR temperature - ambient_c >= {WARM_DELTA_C})
        THEN LEAST(next_ts - ts, {MAX_GAP_MS}) ELSE 0 END) AS running_ms
    FROM engine GROUP BY site, thing
),
machines AS (
    SELECT site, thing, MAX(equipment) AS equipment, COUNT(*) AS readings,
        COUNT(DISTINCT boot || '-' || CAST(seq AS VARCHAR)) AS batches
    FROM readings GROUP BY site, thing
),
sensors AS (
    SELECT site, thing, sensor,
    {stats}
    FROM readings GROUP BY site, thing, sensor
)
SELECT m.site, m.thing, m.equipment, m.readings, m.batches,
    COALESCE(r.running_ms, 0) AS running_ms, s.sensor, {columns}
FROM machines m
JOIN sensors s ON s.site = m.site AND s.thing = m.thing
LEFT JOIN running r ON r.site = m.site AND r.thing = m.thing
ORDER BY m.site, m.thing, s.sensor"""
