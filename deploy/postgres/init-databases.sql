-- One PostgreSQL server, one database per system: the engine's and MLflow's.
CREATE DATABASE camunda;
CREATE DATABASE mlflow;
