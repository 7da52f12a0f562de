"""Agent CPU: 2 simulated sensors at 1 Hz, default batching, publishing to a local Mosquitto."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from pathlib import Path

from device_bench_support import REPO, agent_config, cpu_seconds, rss_kb
from functional.device.device_broker import PYTHON, Broker, Pki

WARMUP_S = 5.0
MEASURE_S = 30.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pki = Pki(root / "pki")
        broker = Broker(root, pki)
        broker.start()
        cert, key = pki.issue("bench-01")
        config = agent_config(
            root / "agent.toml",
            port=broker.port,
            certs=(cert, key, pki.ca_path),
            state=root / "state",
        )
        process = subprocess.Popen(
            [PYTHON, "-m", "chantier.cli", "agent", "run", "--config", str(config)],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(WARMUP_S)  # imports, TLS handshake, first health message
            cpu0, t0 = cpu_seconds(process.pid), time.monotonic()
            time.sleep(MEASURE_S)
            cpu1, t1 = cpu_seconds(process.pid), time.monotonic()
            rss, _ = rss_kb(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
            broker.stop()
    share = 100 * (cpu1 - cpu0) / (t1 - t0)
    print(
        f"agent CPU, 2 simulated sensors at 1 Hz, batches <= 4,800 B / 60 s, local TLS broker, "
        f"measured over {t1 - t0:.0f} s after {WARMUP_S:.0f} s warm-up"
    )
    print(f"  CPU: {cpu1 - cpu0:.2f} s = {share:.2f} % of one core   (RSS {rss / 1024:.1f} MB)")
    print("  target: <= 1 % of one core")


if __name__ == "__main__":
    main()
