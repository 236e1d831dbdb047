"""VideoBERT pipeline core library (no Prefect; `tasks/` and `flows/` wrap it, `videobert_cli/` runs them).

Subpackages, one per pipeline part: `core` (settings, params, store, stage skeleton, runtime), `db` (tracking
database), `ingest` (sources, download, transcripts, punctuation), `features` (decoding, clip extractors),
`dataset` (manifest, codebook, tokens).
"""

__version__ = "0.1.0"
