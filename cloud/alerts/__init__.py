"""Alert engine: rules as data, alert state per (thing, sensor, rule), operator actions.

The core modules (rules, fields, detectors, model, state, store, engine) import neither boto3
nor awscrt; the DynamoDB and SNS adapters do, and are imported only where they are wired.
"""
