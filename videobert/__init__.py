"""VideoBERT pipeline core library: settings, artifact store, tracking database, media, text, corpus.

This package imports no Prefect; `tasks/` and `flows/` wrap it.
"""

__version__ = "0.1.0"
