"""What the MLC processes know about models, independent of the engine: deployments and the runtime
inventory, schedules, test criteria (DMN), metrics, batch scoring, data files, tickets and training."""
