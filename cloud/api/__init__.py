"""HTTP API of simulation runs and sensor data: core, DynamoDB and S3 adapters, resolver."""
