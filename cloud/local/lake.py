"""The local stand-in for Athena: DuckDB over a folder that mirrors the raw bucket's objects.

The local stack's moto server writes every object stored under `raw/` in a bucket to
`<lake>/<bucket>/raw/...` as well (cloud/local/moto_server.py), the key layout unchanged; the
`raw_batches` view reads those files with their Hive-style partitions, like the Glue table of
the same name, so the rollups run the same SQL here as in AWS, reading files in parallel
instead of one request per object.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

# The Glue table's columns (cloud/template.yaml RawBatchesTable); site, thing and date come
# from the key, as in Athena.
READINGS_TYPE = (
    "STRUCT(sensorId VARCHAR, ts BIGINT, temperature DOUBLE, humidity DOUBLE, pressure DOUBLE)[]"
)
COLUMNS = {
    "schema": "INTEGER",
    "equipment": "VARCHAR",
    "boot": "VARCHAR",
    "seq": "BIGINT",
    "runId": "VARCHAR",
    "sentAt": "BIGINT",
    "clockSynced": "BOOLEAN",
    "readings": READINGS_TYPE,
}


def lake_dir(state_dir: Path) -> Path:
    """Where the stack with this state folder mirrors its raw objects."""
    return Path(state_dir) / "lake"


class DuckDbLake:
    """QueryEngine over the mirrored raw objects of one bucket (`rows(sql)`)."""

    def __init__(self, root: Path, bucket: str, threads: int = 2, memory_limit: str = "2GB"):
        self.raw = Path(root) / bucket / "raw"
        # A day of a large fleet's readings does not fit the memory limit: DuckDB spills here.
        self.spill = Path(root) / ".spill"
        self._threads = threads
        self._memory_limit = memory_limit
        self._lock = threading.Lock()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        import duckdb

        columns = ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS.items())
        pattern = self.raw / "site=*" / "thing=*" / "date=*" / "*.json"
        config: dict[str, str | bool | int | float | list[str]] = {
            "threads": self._threads,
            "memory_limit": self._memory_limit,
            "temp_directory": str(self.spill),
            # Rows come back sorted by the query's ORDER BY; nothing needs the scan order kept.
            "preserve_insertion_order": False,
        }
        with self._lock, duckdb.connect(config=config) as con:
            if any(self.raw.glob("site=*/thing=*/date=*/*.json")):
                con.execute(
                    "CREATE VIEW raw_batches AS SELECT * FROM read_json("
                    f"'{pattern}', format = 'newline_delimited', hive_partitioning = true, "
                    f"hive_types_autocast = false, columns = {{{columns}}})"
                )
            else:  # nothing landed yet: the same columns, no rows
                fields = ", ".join(f'"{n}" {k}' for n, k in COLUMNS.items())
                con.execute(
                    f"CREATE TABLE raw_batches ({fields}, site VARCHAR, thing VARCHAR, "
                    '"date" VARCHAR)'
                )
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
