"""Agent resident memory: 2 sensors at 1 Hz, 100,000 readings queued (broker unreachable)."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from pathlib import Path

from device_bench_support import REPO, agent_config, prefill, rss_kb
from functional.device.device_broker import PYTHON, Pki, free_port

QUEUED = 100_000
RUN_S = 20.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pki = Pki(root / "pki")
        cert, key = pki.issue("bench-01")
        state = root / "state"
        prefill(state, QUEUED)
        # nobody listens on this port: the queue stays full, the client keeps retrying
        config = agent_config(
            root / "agent.toml", port=free_port(), certs=(cert, key, pki.ca_path), state=state
        )
        process = subprocess.Popen(
            [PYTHON, "-m", "chantier.cli", "agent", "run", "--config", str(config)],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        try:
            samples = []
            started = time.monotonic()
            while time.monotonic() - started < RUN_S:
                time.sleep(1.0)
                samples.append(rss_kb(process.pid))
            rss, hwm = samples[-1]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
    print(
        f"agent memory, 2 simulated sensors at 1 Hz, {QUEUED:,} readings queued, "
        f"broker unreachable, after {RUN_S:.0f} s"
    )
    print(f"  resident (VmRSS): {rss / 1024:.1f} MB   peak (VmHWM): {hwm / 1024:.1f} MB")
    print("  target: <= 32 MB")


if __name__ == "__main__":
    main()
