"""Tracking database tables (SQLAlchemy 2 typed declarative models).

The database is the source of truth for per-video progress: one `StageRun` row per (video, stage). The same
models run on SQLite (embedded default) and PostgreSQL; migrations live in `migrations/`.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite keeps no zone: store naive UTC, read back aware)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class StageStatus(StrEnum):
    """Where a (video, stage) stands."""

    PENDING = "pending"  # known, never claimed
    RUNNING = "running"  # claimed by a worker (see claimed_by / lease_expires_at)
    DONE = "done"  # artifacts written and verified, then this row committed
    FAILED = "failed"  # error_type / error_message say why; `retryable` says if a re-run may help


# Shared column types.
VideoId = Annotated[str, mapped_column(String(128))]
Sha256 = Annotated[str, mapped_column(String(64))]
Json = Annotated[dict[str, Any], mapped_column(JSON, default=dict)]
Timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow)]
MaybeTimestamp = Annotated[dt.datetime | None, mapped_column(UTCDateTime())]


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Video(Base):
    """A video known to the pipeline, whatever its source."""

    __tablename__ = "videos"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_videos_source"),)

    # Validated id; also the folder of the video's objects in the store (`videos/<id>/`).
    id: Mapped[VideoId] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # youtube | howto100m | local
    source_id: Mapped[str] = mapped_column(String(1024))  # YouTube id, or the original file path
    url: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float)  # seconds, from metadata or the decoder
    language: Mapped[str | None] = mapped_column(String(16))  # transcript language (BCP 47), when known
    # Last stage event, e.g. "download:done" or "features:failed"; a summary, stage_runs has the detail.
    state: Mapped[str] = mapped_column(String(64), default="registered")
    info: Mapped[Json]  # source-specific extras (HowTo100M categories, rank, task id ...)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp] = mapped_column(onupdate=utcnow)

    stages: Mapped[list[StageRun]] = relationship(back_populates="video", cascade="all, delete-orphan")


class StageRun(Base):
    """One stage of one video: its status, the fingerprint it ran with, its artifacts and its last error."""

    __tablename__ = "stage_runs"
    __table_args__ = (
        UniqueConstraint("video_id", "stage", name="uq_stage_runs_video_stage"),
        Index("ix_stage_runs_stage_status", "stage", "status"),
        Index("ix_stage_runs_error_type", "error_type"),
        # status first: the rows running now (recovery at every run's start), failures by stage and error type
        # (`videobert status`), without reading the whole table at a million videos (bench/bench_scale.py)
        Index("ix_stage_runs_status_stage_error", "status", "stage", "error_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[VideoId] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=StageStatus.PENDING)
    # sha256 of (input artifacts' sha256, the stage's parameters, its code version): see fingerprint.py.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    # {name: {"key": str, "sha256": str, "size": int}} for every artifact the stage wrote.
    artifacts: Mapped[Json]
    # What the stage found, beyond its artifacts (e.g. {"transcript_source": "none"}).
    outcome: Mapped[Json]
    error_type: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(255))  # host:pid:process start time
    claim_token: Mapped[str | None] = mapped_column(String(32))  # changes on every claim
    lease_expires_at: Mapped[MaybeTimestamp]
    started_at: Mapped[MaybeTimestamp]
    finished_at: Mapped[MaybeTimestamp]

    video: Mapped[Video] = relationship(back_populates="stages")


class Codebook(Base):
    """A visual-token codebook (hierarchical k-means), identified by its content hash."""

    __tablename__ = "codebooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[Sha256] = mapped_column(unique=True)
    levels: Mapped[int]
    k: Mapped[int]  # children per node; k ** levels tokens
    dim: Mapped[int]  # feature dimension
    params: Mapped[Json]
    store_prefix: Mapped[str] = mapped_column(String(1024))
    metrics: Mapped[Json]  # inertia, cluster sizes, empty-leaf share, tree-vs-flat agreement
    created_at: Mapped[Timestamp]
    # sha256 of the manifest it was fitted on, and of (that manifest, the codebook params, the fit's code
    # version): a second fit with the same fit key is skipped (videobert.dataset.codebook.fit_key)
    manifest_hash: Mapped[str | None] = mapped_column(String(64))
    fit_key: Mapped[str | None] = mapped_column(String(64), index=True)
    used_at: Mapped[MaybeTimestamp]  # fitted, or reused into a folder, last: the latest codebook


class DatasetIndex(Base):
    """A JSON index of a dataset version (a manifest, a sentences index, a tokens index) kept in the store under
    its content hash, so that a dataset step on any worker finds its inputs through the database."""

    __tablename__ = "dataset_indexes"
    __table_args__ = (UniqueConstraint("kind", "content_hash", name="uq_dataset_indexes_kind_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # manifest, sentences, tokens
    content_hash: Mapped[Sha256]
    store_key: Mapped[str] = mapped_column(String(1024))
    manifest_hash: Mapped[str | None] = mapped_column(String(64))  # the manifest a sentences or tokens index covers
    codebook_hash: Mapped[str | None] = mapped_column(String(64))  # the codebook of a tokens index
    summary: Mapped[Json]  # videos, clips ...
    created_at: Mapped[Timestamp]
    used_at: Mapped[Timestamp]  # written last (again, when the same content is written again): the latest


class CorpusVersion(Base):
    """A built training corpus (examples + split), identified by its content hash."""

    __tablename__ = "corpus_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[Sha256] = mapped_column(unique=True)
    codebook_id: Mapped[int | None] = mapped_column(ForeignKey("codebooks.id"))
    params: Mapped[Json]
    stats: Mapped[Json]  # example counts by kind and split, videos, tokens
    store_prefix: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[Timestamp]


class TrainingRun(Base):
    """One training run of VideoBERT on a corpus version."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    corpus_version_id: Mapped[int | None] = mapped_column(ForeignKey("corpus_versions.id"))
    status: Mapped[str] = mapped_column(String(16), default=StageStatus.PENDING)
    params: Mapped[Json]
    checkpoint_key: Mapped[str | None] = mapped_column(String(1024))  # the latest checkpoint's store prefix
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[Timestamp]
    finished_at: Mapped[MaybeTimestamp]
    # sha256 of (corpus hash, model and train params, pretrained BERT identity): a re-run with the same key resumes
    run_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    corpus_hash: Mapped[str | None] = mapped_column(String(64))
    codebook_hash: Mapped[str | None] = mapped_column(String(64))
    final_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the final validation figures
    checkpoints: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # [{step, prefix, sha256}], in order
    claimed_by: Mapped[str | None] = mapped_column(String(255))  # host:pid:start of the process training it
    flow_run_id: Mapped[str | None] = mapped_column(String(64))

    metrics: Mapped[list[TrainingMetric]] = relationship(back_populates="run", cascade="all, delete-orphan")


class TrainingMetric(Base):
    """One scalar logged by a training run (loss, accuracy ...) at a step."""

    __tablename__ = "training_metrics"
    __table_args__ = (Index("ix_training_metrics_run_name_step", "run_id", "name", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    step: Mapped[int]
    split: Mapped[str] = mapped_column(String(16), default="train")
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    logged_at: Mapped[Timestamp]

    run: Mapped[TrainingRun] = relationship(back_populates="metrics")


class EvaluationRun(Base):
    """A zero-shot evaluation of a model on annotations (YouCook II format), with its scores."""

    __tablename__ = "evaluation_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # sha256 of (model, annotations, tokens index, evaluate params): the same evaluation is replaced, not repeated
    eval_key: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    model_sha256: Mapped[str] = mapped_column(String(64))
    annotations_sha256: Mapped[str] = mapped_column(String(64))
    corpus_hash: Mapped[str | None] = mapped_column(String(64))
    codebook_hash: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[Timestamp]

    results: Mapped[list[EvaluationResult]] = relationship(back_populates="run", cascade="all, delete-orphan")


class EvaluationResult(Base):
    """One annotated segment's ground truth and the model's top-ranked verbs and objects."""

    __tablename__ = "evaluation_results"
    __table_args__ = (Index("ix_evaluation_results_run_video", "run_id", "video_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("evaluation_runs.id", ondelete="CASCADE"))
    video_id: Mapped[str] = mapped_column(String(128))
    segment_id: Mapped[int]
    verb: Mapped[str | None] = mapped_column(String(64))
    object: Mapped[str | None] = mapped_column(String(64))
    verb_top: Mapped[list[str]] = mapped_column(JSON)
    object_top: Mapped[list[str]] = mapped_column(JSON)

    run: Mapped[EvaluationRun] = relationship(back_populates="results")


class CaptioningRun(Base):
    """One row of a captioning run: a captioner trained on one split's segments (with VideoBERT features or on
    clip features alone) and scored on another's."""

    __tablename__ = "captioning_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # sha256 of (VideoBERT weights, annotations, tokens index, caption params, inputs, BERT, code): the same run is
    # replaced, not repeated
    run_key: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    inputs: Mapped[str] = mapped_column(String(32))  # videobert+clip | clip (the ablation row)
    status: Mapped[str] = mapped_column(String(16), default=StageStatus.RUNNING)
    videobert_sha256: Mapped[str] = mapped_column(String(64))
    annotations_sha256: Mapped[str] = mapped_column(String(64))
    codebook_hash: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[Json]
    training: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # segments, steps, loss per epoch
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # BLEU-1..4, METEOR, ROUGE-L, CIDEr
    model_prefix: Mapped[str | None] = mapped_column(String(1024))  # the trained captioner in the store
    predictions_key: Mapped[str | None] = mapped_column(String(1024))  # per-segment (reference, prediction)
    error_message: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[Timestamp]
    finished_at: Mapped[MaybeTimestamp]
