"""The local dashboard page and the read-only API it uses (machines, readings, alerts)."""
