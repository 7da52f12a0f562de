"""What the dashboards show (machines, health, readings, alerts), read for the API's routes."""
