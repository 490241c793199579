-- Runs once, when the PostgreSQL volume is first created: one database per service.
-- The `mlflow` database is created by POSTGRES_DB; Prefect gets its own.
CREATE DATABASE prefect;
