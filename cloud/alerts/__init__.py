"""Alert state per (thing, sensor, rule), driven by the rules in chantier/alerts; operator actions.

The core modules (records, lifecycle, store, engine) import neither boto3 nor awscrt; the
DynamoDB and SNS adapters do, and are imported only where they are wired (cloud/bootstrap.py).
"""
