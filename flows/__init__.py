"""Prefect flows: `ingest` (download, transcript, punctuate, features) and the dataset flows (`manifest`,
`codebook`, `tokens`, `dataset`), their deployments, the per-video scheduler and the typed summaries."""
