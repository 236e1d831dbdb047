"""Deployments: every flow of the pipeline, startable from the Prefect UI with a form of its parameters.

`videobert serve` registers them with the Prefect server (VIDEOBERT_PREFECT_API_URL) and runs the flow runs
that users start from the UI. Start several `videobert serve` processes (on several machines sharing the
database and the store) to run more flows at once: each stage still claims its (video, stage) row, so no work
is done twice.
"""

from __future__ import annotations

from typing import Any

from flows.captioning import caption_flow
from flows.dataset import codebook_flow, corpus_flow, dataset_flow, manifest_flow, tokens_flow
from flows.evaluation import evaluate_flow
from flows.ingest import ingest
from flows.training import train_flow

TAGS = ["videobert"]


def build_deployments(limit: int | None = None) -> list[Any]:
    """The deployments of every flow (not yet registered)."""
    flows = [
        (ingest, "Register videos and run download, transcript, punctuation and clip features."),
        (manifest_flow, "Write the manifest of videos whose features are done."),
        (codebook_flow, "Fit the hierarchical k-means codebook of a manifest."),
        (tokens_flow, "Label every manifest video with a codebook."),
        (corpus_flow, "Build the training corpus from the manifest, sentences and tokens."),
        (dataset_flow, "Manifest, codebook, tokens and corpus, one after the other."),
        (train_flow, "Pre-train VideoBERT on a corpus version (the latest by default); resumes a stopped run."),
        (evaluate_flow, "Zero-shot verb and object classification of a checkpoint on YouCook II-format annotations."),
        (caption_flow, "Captioners over a checkpoint's VideoBERT features and over clip features alone, scored with "
                       "BLEU, METEOR, ROUGE-L and CIDEr on YouCook II-format annotations."),
    ]
    return [f.to_deployment(name=f.name, description=text, tags=TAGS, concurrency_limit=limit) for f, text in flows]


def serve_all(limit: int | None = None) -> None:
    """Register the deployments and run their flow runs until interrupted."""
    from prefect import serve

    serve(*build_deployments(limit))
