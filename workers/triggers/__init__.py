"""What starts and wakes MLC processes from outside the engine: the event bridge (webhooks of MLflow and
Jira) and the seeds' signals."""
