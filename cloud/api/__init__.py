"""HTTP API of simulation runs and sensor data: core, adapters, resolver, command-line clients."""
