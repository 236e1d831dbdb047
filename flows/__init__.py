"""Prefect flows: ingest, features, dataset, train, evaluate."""
