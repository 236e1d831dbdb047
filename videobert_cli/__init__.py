"""Entry points of the VideoBERT pipeline: the `videobert` command line, the demo and Prefect's configuration.

The only package above `flows/`: entry points -> flows -> tasks -> videobert -> videobert_model.
"""
