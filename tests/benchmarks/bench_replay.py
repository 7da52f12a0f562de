"""Backlog replay: 86,400 queued readings to a local Mosquitto after reconnecting."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from pathlib import Path

from device_bench_support import REPO, agent_config, prefill
from functional.device.device_broker import PYTHON, Broker, Collector, Pki

BACKLOG = 86_400
TIMEOUT_S = 120.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pki = Pki(root / "pki")
        broker = Broker(root, pki)
        broker.start()
        ccert, ckey = pki.issue("collector")
        collector = Collector(broker, ccert, ckey)
        collector.start()
        cert, key = pki.issue("bench-01")
        state = root / "state"
        prefill(state, BACKLOG)
        # live batches every 5 s, to see them interleaved with the replay
        config = agent_config(
            root / "agent.toml",
            port=broker.port,
            certs=(cert, key, pki.ca_path),
            state=state,
            extra="batch_max_age_s = 5",
        )
        log = root / "agent.log"
        with open(log, "wb") as err:
            started = time.monotonic()
            process = subprocess.Popen(
                [PYTHON, "-m", "chantier.cli", "agent", "run", "--config", str(config)],
                cwd=REPO,
                stderr=err,
            )
        first_at = None
        try:
            got = 0
            while time.monotonic() - started < TIMEOUT_S:
                time.sleep(0.05)
                messages = collector.telemetry()
                if messages and first_at is None:
                    first_at = time.monotonic()
                got = sum(
                    1 for _, m in messages for r in m["readings"] if r["sensorId"] == "backlog"
                )
                if got >= BACKLOG:
                    break
            done_at = time.monotonic()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
            collector.stop()
            broker.stop()
    messages = collector.telemetry()
    backlog_msgs = [(p, m) for p, m in messages if m["readings"][0]["sensorId"] == "backlog"]
    live = [m for _, m in messages if m["readings"][0]["sensorId"] != "backlog"]
    total_bytes = sum(len(p) for p, _ in backlog_msgs)
    replay_s = done_at - (first_at or started)
    print(f"backlog replay, {BACKLOG:,} readings queued, local TLS Mosquitto")
    print(
        f"  delivered {got:,} readings in {len(backlog_msgs)} batches "
        f"({total_bytes / 1e6:.1f} MB, largest {max(len(p) for p, _ in backlog_msgs):,} B)"
    )
    print(
        f"  {replay_s:.1f} s from first message to last ({done_at - started:.1f} s including "
        f"agent start-up); {len(backlog_msgs) / replay_s:.0f} publishes/s, "
        f"{total_bytes / replay_s / 1024:.0f} KB/s"
    )
    positions = [
        i for i, (_, m) in enumerate(messages) if m["readings"][0]["sensorId"] != "backlog"
    ]
    print(
        f"  live batches (5 s max age) delivered during the replay: {len(live)}, "
        f"at message positions {positions} of {len(messages)}"
    )
    print("  target: <= 20 s, within 100 publishes/s and 512 KB/s per connection")


if __name__ == "__main__":
    main()
