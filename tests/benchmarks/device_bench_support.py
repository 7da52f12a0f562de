"""Helpers shared by the agent benchmarks: prefilled queues, a broker, process figures."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from device.clock import os_boot_id  # noqa: E402
from device.queue import DurableQueue, NewReading  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def prefill(state_dir: Path, count: int, sensor: str = "backlog") -> None:
    """`count` stamped readings from the past day, committed 1,000 per transaction."""
    q = DurableQueue(state_dir, max_readings=max(200_000, count * 2))
    start_ms = int(time.time() * 1000) - 86_400_000
    boot = os_boot_id()
    chunk: list[NewReading] = []
    for i in range(count):
        ts = start_ms + i * 1000
        chunk.append(
            NewReading(sensor, ts, i * 1000, boot, ts, 20.0 + (i % 500) / 100, 45.5, 1008.25)
        )
        if len(chunk) == 1000:
            q.add(chunk)
            chunk = []
    q.add(chunk)
    q.close()


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def agent_config(
    path: Path,
    *,
    port: int,
    certs: tuple[Path, Path, Path],
    state: Path,
    thing: str = "bench-01",
    extra: str = "",
) -> Path:
    cert, key, ca = certs
    path.write_text(
        f'thing = "{thing}"\nsite = "bench"\nequipment = "generator"\n'
        f'endpoint = "127.0.0.1"\nport = {port}\ncert = "{cert}"\nkey = "{key}"\nca = "{ca}"\n'
        f'state_dir = "{state}"\nclock_sync = "assume-synced"\nqueue_max_readings = 300000\n'
        f'log_level = "warning"\n{extra}\n'
        '[[sensors]]\nname = "engine"\nseed = 1\n\n[[sensors]]\nname = "ambient"\nseed = 2\n'
    )
    return path
