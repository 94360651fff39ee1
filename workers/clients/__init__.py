"""Clients of the outside systems, one module (or package) per system: MLflow (``mlflow``), Jira,
ServiceNow, MLServer, object storage (S3) and the notification webhook.

Each client is built from its own settings (:mod:`workers.config`), has one method per remote call and
raises its own error types carrying the system's message; topics turn those into task outcomes.
"""
