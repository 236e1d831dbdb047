"""Prefect tasks: thin per-video wrappers around `videobert` functions plus their database record."""
