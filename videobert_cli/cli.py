"""The `videobert` command line."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from videobert.core.errors import SettingsError, VideobertError
from videobert_cli import interrupt, noise
from videobert_cli.interrupt import CountingReporter
from videobert_cli.prefect_config import configure_prefect
from videobert_cli.printing import print_locations, print_stage_runs

if TYPE_CHECKING:
    from flows.summaries import IngestSummary
    from videobert.core.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="VideoBERT pipeline.")
server_app = typer.Typer(no_args_is_help=True, help="The local Prefect server that this data folder's runs share "
                         "(used when no VIDEOBERT_PREFECT_API_URL is set).")
app.add_typer(server_app, name="prefect-server")
db_app = typer.Typer(no_args_is_help=True, help="Tracking database.")
app.add_typer(db_app, name="db")
dataset_app = typer.Typer(no_args_is_help=True, help="Dataset stages (what dvc repro runs): manifest, codebook, tokens, corpus; the DVC remote.")
app.add_typer(dataset_app, name="dataset")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show Prefect's own error log and the traceback of an "
                                                        "error (otherwise one line says what went wrong).")] = False,
) -> None:
    noise.DEBUG = debug


def _settings():  # noqa: ANN202 - imported lazily so that `--help` stays fast
    from videobert.core.settings import load_settings

    return load_settings()


SET_HELP = ("Override one params.yaml value for this run: section.key=value, the value read as YAML (repeatable), "
            "e.g. --set features.extractor=baseline --set train.max_steps=100.")


def _overrides(assignments: list[str] | None):  # noqa: ANN202 - a ParamsOverride, imported lazily
    """The ParamsOverride of the --set options (a wrong key or value: exit 2 before any flow starts)."""
    from videobert.core.params import override_from_assignments

    return override_from_assignments(assignments or [])


def _params_file(params: Path) -> str:
    """Check the params file before any flow starts (a wrong value or a named file that is missing: exit 2); say
    so when `params.yaml` is not here and the paper's defaults are used."""
    from videobert.core.params import load_params, uses_paper_defaults

    load_params(params)
    if uses_paper_defaults(params):
        err_console.print(f"no {params} here: using the paper's defaults (videobert/core/params.py)")
    return str(params)


@app.command()
def config() -> None:
    """Show the effective settings (secrets masked) and where data lives."""
    settings = _settings()
    table = Table("setting", "value", title="settings")
    for name, value in settings.safe_dump().items():
        table.add_row(name, "" if value is None else str(value))
    console.print(table)
    print_locations(console, settings)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (creates the tables on an empty database)."""
    from videobert.db.engine import Database

    settings = _settings()
    db = Database(settings.resolved_database_url)
    db.ping()
    before, after = db.upgrade(revision)
    console.print(f"database {db.describe()}: schema {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the one this code needs."""
    from videobert.db.engine import Database

    db = Database(_settings().resolved_database_url)
    console.print(f"database {db.describe()}: at {db.current_revision() or 'empty'}, code needs {db.head_revision()}")


@app.command()
def status(
    errors: Annotated[int, typer.Option(help="How many of the most frequent errors to list.")] = 10,
) -> None:
    """Per-stage counts by status and the most frequent errors."""
    from videobert.db import repository as repo
    from videobert.db.engine import open_database

    db = open_database(_settings())
    counts = repo.status_counts(db)
    statuses = ["pending", "running", "done", "failed"]
    by_stage: dict[str, dict[str, int]] = {}
    for stage, st, n in counts:
        by_stage.setdefault(stage, {})[st] = n
    table = Table("stage", *statuses, "total", title=f"{repo.video_count(db)} videos in {db.describe()}")
    for stage, row in by_stage.items():
        table.add_row(stage, *(str(row.get(s, 0)) for s in statuses), str(sum(row.values())))
    console.print(table)
    top = repo.top_errors(db, errors)
    if top:
        etable = Table("stage", "error type", "videos", "example message", title="most frequent errors")
        for stage, etype, n, msg in top:
            etable.add_row(stage, etype, str(n), msg.splitlines()[0][:120] if msg else "")
        console.print(etable)


# --- verify: the stored artifacts against the sha256 the database recorded --------------------------------

VERIFY_LISTED = 20  # problems listed one by one; the table counts them all


@app.command()
def verify(
    repair: Annotated[bool, typer.Option(help="Mark the stages that do not verify, and the stages that depend on "
                                              "them, to run again.")] = False,
    stage: Annotated[list[str] | None, typer.Option(help="Check only these stages (repeatable).")] = None,
) -> None:
    """Check every done stage's artifacts against the size and sha256 in the database (reads every object).

    Exit code 1 when something does not verify; with --repair, 0 once the stages that do not verify are marked to
    run again (the next `videobert ingest`, and `videobert dataset tokens`, redoes them).
    """
    from videobert.core.storage import open_store
    from videobert.core.verify import verify_stages
    from videobert.dataset.tokens import TOKENS
    from videobert.db.engine import open_database
    from videobert.ingest.plan import INGEST_STAGES

    specs = (*INGEST_STAGES, TOKENS)
    unknown = sorted(set(stage or ()) - {s.name for s in specs})
    if unknown:
        raise SettingsError(f"unknown stages {unknown}: choose from {[s.name for s in specs]}")
    settings = _settings()
    db, store = open_database(settings), open_store(settings)
    report = verify_stages(db, store, specs, stage or None, repair)
    counts = ["checked", "ok", "corrupt", "missing"] + (["marked"] if repair else [])
    table = Table("stage", *counts, title=f"done stages in {db.describe()} against {store.describe()}")
    for name, c in sorted(report.stages.items()):
        table.add_row(name, *(str(getattr(c, field)) for field in counts))
    console.print(table)
    if report.problems:
        ptable = Table("video", "stage", "artifact", "problem", title="artifacts that do not verify")
        for p in report.problems[:VERIFY_LISTED]:
            ptable.add_row(p.video_id, p.stage, p.artifact, f"{p.kind}: {p.detail}")
        console.print(ptable)
    if not report.problems:
        console.print("every done stage's artifacts verify")
    elif repair:
        console.print("the stages marked above run again on the next `videobert ingest` "
                      "(tokens: `videobert dataset tokens`)")
    else:
        console.print(f"{len(report.problems)} artifacts do not verify: `videobert verify --repair` marks their "
                      "stages, and the stages that depend on them, to run again")
    bad_checkpoints = [] if stage else _verify_checkpoints(settings, repair)
    bad_models = [] if stage else _verify_models(settings, repair)
    if (report.problems or bad_checkpoints or bad_models) and not repair:
        sys.exit(1)  # not typer.Exit: with standalone_mode=False click returns its code, and main() drops it


def _verify_checkpoints(settings: Settings, repair: bool) -> list[tuple[str, int, str]]:
    """The training checkpoints recorded in the database against their content hash in the store; printed."""
    from videobert.core.runtime import get_runtime
    from videobert.training.store import verify_checkpoints

    checked, problems = verify_checkpoints(get_runtime(settings), repair)
    if not checked:
        return []
    if not problems:
        console.print(f"every training checkpoint verifies ({checked})")
        return []
    table = Table("run", "step", "problem", title=f"training checkpoints that do not verify ({len(problems)} of {checked})")
    for key, step, problem in problems[:VERIFY_LISTED]:
        table.add_row(key[:16], str(step), problem)
    console.print(table)
    console.print("taken off their runs' records: a resumed run starts from the newest checkpoint that verifies"
                  if repair else "`videobert verify --repair` takes them off their runs' records (resuming skips "
                  "them either way)")
    return problems


def _verify_models(settings: Settings, repair: bool) -> list[tuple[str, str, str | None]]:
    """The final models in the store against the content hash their folder names; printed."""
    from videobert.core.runtime import get_runtime
    from videobert.training.store import verify_models

    checked, problems = verify_models(get_runtime(settings), repair)
    if not checked:
        return []
    if not problems:
        console.print(f"every trained model in the store verifies ({checked})")
        return []
    table = Table("model", "training run", "problem", title=f"trained models that do not verify ({len(problems)} of "
                                                           f"{checked})")
    for prefix, problem, run_key in problems[:VERIFY_LISTED]:
        table.add_row(prefix, (run_key or "unknown")[:16], problem)
    console.print(table)
    console.print("removed from the store, their training runs marked failed: `videobert train` writes them again "
                  "from the newest checkpoint" if repair else "`videobert verify --repair` removes them and marks "
                  "their training runs to train again")
    return problems


def _request_error(error: dict) -> str:
    """One error of an ingest request: the field and the value given when it is about one (e.g. --source tiktok)."""
    msg = error["msg"].removeprefix("Value error, ")
    loc = [str(x) for x in error.get("loc", ())]
    return f"{'.'.join(loc)}={error.get('input')!r}: {msg}" if loc else msg


def _run_ingest(request_fields: dict, params: Path, quiet: bool, assignments: list[str] | None = None) -> IngestSummary:
    from pydantic import ValidationError

    from flows.ingest_plan import IngestRequest, plan_request
    from videobert.core.runtime import get_runtime

    settings = _settings()
    params_file = _params_file(params)
    overrides = _overrides(assignments)
    try:
        request = IngestRequest(**{k: v for k, v in request_fields.items() if v not in (None, [])})
    except ValidationError as exc:
        raise SettingsError("; ".join(_request_error(e) for e in exc.errors())) from None
    # The plan first, without Prefect (nothing is registered yet): when nothing is left to run, no flow run starts.
    planned = plan_request(get_runtime(settings), request, params_file, register=False, overrides=overrides)
    if planned.nothing_to_run:
        summary = planned.summary
        console.print("nothing to run: every stage is up to date or skipped (no Prefect flow run started)")
    else:
        _prefect_ready()
        from flows.ingest import run_ingest
        from flows.progress import RichReporter, use_reporter

        with use_reporter(CountingReporter(None if quiet else RichReporter(console))):
            summary = run_ingest(request, params_file, overrides)
    print_stage_runs(console, summary, "ingest results")
    print_locations(console, settings)
    _refuse_unknown_ids(getattr(summary, "unknown_ids", []))
    return summary


def _refuse_unknown_ids(unknown: list[str]) -> None:
    """After the known videos ran: exit 1 naming the `--video` ids that are not valid or not registered."""
    from videobert.core.errors import UnknownVideoError
    from videobert.core.ids import validate_video_id

    for vid in unknown:
        validate_video_id(vid)  # InvalidIdError naming it (`../x`, slashes, shell characters)
    if unknown:
        raise UnknownVideoError(f"unknown video id{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: not "
                                "registered (`videobert ingest --local/--ids/--youtube` registers videos)")


@app.command()
def ingest(
    ids: Annotated[Path | None, typer.Option("--ids", help="Text file of YouTube ids or URLs.")] = None,
    howto100m: Annotated[Path | None, typer.Option("--howto100m", help="HowTo100M csv.")] = None,
    local: Annotated[Path | None, typer.Option("--local", help="Folder of video files.")] = None,
    video: Annotated[list[str] | None, typer.Option("--video", help="A registered video id (repeatable).")] = None,
    youtube: Annotated[list[str] | None, typer.Option("--youtube", help="A YouTube id or URL to register and "
                                                      "ingest (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N videos of the source.")] = None,
    category: Annotated[list[str] | None, typer.Option(help="HowTo100M category filter (repeatable).")] = None,
    captions: Annotated[Path | None, typer.Option(help="HowTo100M raw_caption.json.")] = None,
    stage: Annotated[list[str] | None, typer.Option(help="Run only these stages (repeatable).")] = None,
    source: Annotated[list[str] | None, typer.Option(
        "--source", help="Transcript sources for this run instead of transcript.sources (repeatable): youtube, "
        "howto100m, subtitles, whisper.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Videos in flight at once.")] = None,
    force: Annotated[bool, typer.Option(help="Re-run stages that are up to date.")] = False,
    params: Annotated[Path, typer.Option(help="Parameters file.")] = Path("params.yaml"),
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Register videos from a source and run download, transcript, punctuation and clip features for each.

    `--video ID --stage transcript --source whisper --force` transcribes chosen videos again by speech recognition.
    """
    _run_ingest(
        {
            "ids_file": ids and str(ids), "howto100m_csv": howto100m and str(howto100m),
            "local_dir": local and str(local), "video_ids": video, "youtube": youtube, "limit": limit,
            "categories": category, "howto100m_captions": captions and str(captions), "stages": stage,
            "concurrency": concurrency, "force": force, "transcript_sources": source,
        },
        params,
        quiet,
        set_,
    )


@app.command()
def retry(
    error_type: Annotated[str, typer.Option("--error-type", help="Error type, as `videobert status` lists it.")],
    concurrency: Annotated[int | None, typer.Option(help="Videos in flight at once.")] = None,
    params: Annotated[Path, typer.Option(help="Parameters file.")] = Path("params.yaml"),
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Re-run the stages of the videos that failed with one error type (permanent ones included)."""
    _run_ingest({"retry_error_type": error_type, "concurrency": concurrency}, params, quiet)


def _prefect_ready() -> None:
    """Prefect's settings, and its API: the configured one, or this data folder's shared local server."""
    configure_prefect(_settings(), say=err_console.print)


@dataset_app.command("manifest")
def dataset_manifest(
    out: Annotated[Path, typer.Option(help="Manifest file to write.")] = Path("dataset/manifest.json"),
    params: Annotated[Path, typer.Option(help="Parameters file.")] = Path("params.yaml"),
    sentences: Annotated[Path, typer.Option(help="Sentences index to write.")] = Path("dataset/sentences.json"),
) -> None:
    """Write the manifest of videos whose features are done with the current parameters, and their sentences."""
    params_file = _params_file(params)  # checked before Prefect starts
    _prefect_ready()
    from flows.dataset import manifest_flow

    r = manifest_flow(out=str(out), params_file=params_file, sentences_out=str(sentences))
    console.print(f"manifest {out}: {r.videos} videos, {r.clips} clips"
                  + (f"; {len(r.stale)} with stale features left out (re-run ingest)" if r.stale else ""))
    console.print(f"sentences {sentences}: {r.sentences} videos with sentences"
                  + (f"; {len(r.stale_sentences)} with stale sentences left out (re-run ingest)"
                     if r.stale_sentences else ""))


@dataset_app.command("codebook")
def dataset_codebook(
    manifest: Annotated[Path, typer.Option(help="Manifest file.")] = Path("dataset/manifest.json"),
    out: Annotated[Path, typer.Option(help="Codebook folder to write.")] = Path("dataset/codebook"),
    params: Annotated[Path, typer.Option(help="Parameters file.")] = Path("params.yaml"),
    force: Annotated[bool, typer.Option(help="Fit again even when a codebook of this manifest, these parameters "
                                             "and this code version is registered.")] = False,
) -> None:
    """Fit the hierarchical k-means codebook, its token pictures and gallery; print its quality figures.

    When a codebook was fitted on the same manifest with the same parameters and code version, it is copied from
    the store instead (--force fits again)."""
    params_file = _params_file(params)  # checked before Prefect starts
    _prefect_ready()
    from flows.dataset import codebook_flow

    r = codebook_flow(manifest=str(manifest), out=str(out), params_file=params_file, force=force)
    m = r.metrics
    table = Table("figure", "value", title=f"codebook {r.content_hash[:16]} ({m['vocab_size']} tokens)")
    for key in ("n_vectors", "videos", "leaf_inertia", "empty_leaf_share", "tree_flat_agreement",
                "tokens_with_pictures"):
        table.add_row(key, f"{m[key]:.4g}" if isinstance(m[key], float) else str(m[key]))
    table.add_row("leaf size (min/median/p95/max)", "{min}/{median:g}/{p95:g}/{max}".format(**m["leaf_size"]))
    console.print(table)
    how = "fitted" if r.fitted else "reused (fitted before on this manifest with these parameters; --force fits again)"
    console.print(f"{how}; saved in {out} (gallery: {out / 'gallery.png'})")


@dataset_app.command("tokens")
def dataset_tokens(
    manifest: Annotated[Path, typer.Option(help="Manifest file.")] = Path("dataset/manifest.json"),
    codebook: Annotated[str, typer.Option(help="Codebook folder, or content hash in the store.")] = "dataset/codebook",
    out: Annotated[Path, typer.Option(help="Tokens index to write.")] = Path("dataset/tokens.json"),
    concurrency: Annotated[int, typer.Option(help="Videos in flight.")] = 4,
    allow_missing: Annotated[bool, typer.Option(help="Write the index without the videos that have no tokens "
                                                     "(they are listed; exit code 0).")] = False,
) -> None:
    """Label every manifest video's clips with the codebook.

    Exit code 1, naming them, when some manifest videos are left without tokens (the index is then not written),
    unless --allow-missing.
    """
    _prefect_ready()
    from flows.dataset import missing_tokens, tokens_flow

    r = tokens_flow(manifest=str(manifest), codebook=codebook, out=str(out), concurrency=concurrency,
                    allow_missing=allow_missing)
    print_stage_runs(console, r, "tokens results")
    console.print(f"tokens {out}: {r.indexed} videos indexed")
    if r.missing:
        err_console.print(f"[yellow]left out (--allow-missing):[/] {missing_tokens(r)}")


@dataset_app.command("corpus")
def dataset_corpus(
    manifest: Annotated[Path, typer.Option(help="Manifest file.")] = Path("dataset/manifest.json"),
    sentences: Annotated[Path, typer.Option(help="Sentences index.")] = Path("dataset/sentences.json"),
    tokens: Annotated[Path, typer.Option(help="Tokens index.")] = Path("dataset/tokens.json"),
    out: Annotated[Path, typer.Option(help="Corpus folder to write.")] = Path("dataset/corpus"),
    params: Annotated[Path, typer.Option(help="Parameters file.")] = Path("params.yaml"),
) -> None:
    """Build the training corpus: Parquet shards of text-video, text-only and video-only examples, corpus.json."""
    params_file = _params_file(params)  # checked before Prefect starts
    _prefect_ready()
    from flows.dataset import corpus_flow

    r = corpus_flow(manifest=str(manifest), sentences=str(sentences), tokens=str(tokens), out=str(out),
                    params_file=params_file)
    table = Table("split", "text_video", "text", "video", title=f"corpus {r.content_hash[:16]} "
                  f"(codebook {r.codebook[:16]}, {r.tokenizer})")
    for split, by_kind in r.stats["examples"].items():
        table.add_row(split, *(str(by_kind[k]) for k in ("text_video", "text", "video")))
    console.print(table)
    console.print(f"negative pairs {r.stats['negatives']}; clips without a sentence "
                  f"{r.stats['clips_without_sentence_share']:.1%}; saved in {out} (lengths: {out / 'lengths.png'})")


HASH_SHOWN = 10  # hex digits of a hash listed: enough to name it as an input


@dataset_app.command("versions")
def dataset_versions(
    limit: Annotated[int, typer.Option(min=1, help="Versions listed per kind, the latest first.")] = 5,
) -> None:
    """List the registered dataset versions (manifests, sentences and tokens indexes, codebooks, corpora), the
    latest first: what an empty input of a dataset step, or of the train, evaluate and caption flows, reads."""
    from videobert.core.runtime import get_runtime
    from videobert.dataset import registry
    from videobert.db import repository as repo

    rt = get_runtime(_settings())
    table = Table(title="registered dataset versions, the latest first (hash prefixes are enough as inputs)")
    for name in ("kind", "hash", "manifest", "codebook"):
        table.add_column(name, no_wrap=True)
    table.add_column("figures")
    table.add_column("written", no_wrap=True)

    def short(digest: str | None) -> str:
        return (digest or "")[:HASH_SHOWN]

    for kind in (registry.MANIFEST, registry.SENTENCES, registry.TOKENS_INDEX):
        for v in repo.dataset_indexes(rt.db, kind)[:limit]:
            table.add_row(kind, short(v["content_hash"]), short(v["manifest_hash"]), short(v["codebook_hash"]),
                          ", ".join(f"{k} {n}" for k, n in v["summary"].items()), f"{v['created_at']:%m-%d %H:%M}")
    for c in repo.codebooks(rt.db)[:limit]:
        table.add_row("codebook", short(c["content_hash"]), short(c["manifest_hash"]), "",
                      f"{c['levels']} x {c['k']}, {c['metrics'].get('n_vectors', '?')} clips",
                      f"{c['created_at']:%m-%d %H:%M}")
    for v in repo.corpus_versions(rt.db)[:limit]:
        examples = sum(sum(by_kind.values()) for by_kind in v["stats"].get("examples", {}).values())
        table.add_row("corpus", short(v["content_hash"]), "", short(v["codebook_hash"]), f"{examples} examples",
                      f"{v['created_at']:%m-%d %H:%M}")
    console.print(table if table.rows else "nothing registered yet (`videobert dataset manifest` starts a version)")


@dataset_app.command("remote")
def dataset_remote(
    name: Annotated[str, typer.Option(help="Remote name.")] = "store",
    prefix: Annotated[str, typer.Option(help="Folder of the DVC cache in the bucket.")] = "dvc",
) -> None:
    """Make the S3-protocol store (VIDEOBERT_MINIO_*) the default DVC remote of the DVC project here."""
    from videobert.dataset.dvc_remote import configure_remote

    url = configure_remote(_settings(), Path.cwd(), name, prefix)
    console.print(f"DVC remote {name!r} -> {url} (keys in .dvc/config.local); now: dvc push / dvc pull")


@app.command()
def serve(
    limit: Annotated[int | None, typer.Option(help="Most runs of one flow at once (default: no limit).")] = None,
) -> None:
    """Register every flow as a deployment on the Prefect server and run what users start from the UI."""
    from videobert_cli.interrupt import restore_defaults

    restore_defaults()  # Ctrl-C stops the runner the way Prefect does it
    _prefect_ready()
    from flows.deployments import serve_all

    serve_all(limit)


@app.command()
def deploy(
    pool: Annotated[str, typer.Option(help="Prefect work pool (type process) to register every flow's deployment to.")],
    create_pool: Annotated[bool, typer.Option(help="Create the work pool when it does not exist.")] = False,
    working_dir: Annotated[Path | None, typer.Option(
        help="Folder the flow runs start in on the workers' machines (params.yaml and the flows' relative paths "
             "resolve there); default: this folder.")] = None,
    limit: Annotated[int | None, typer.Option(help="Most runs of one flow at once (default: no limit).")] = None,
) -> None:
    """Register every flow as a deployment to a Prefect work pool; `prefect worker start --pool NAME` (on any
    machines with the project installed) runs what users start."""
    _prefect_ready()
    from flows.deployments import deploy_to_pool

    folder = (working_dir or Path.cwd()).expanduser().absolute()
    names = deploy_to_pool(pool, folder, limit, create_pool)
    console.print(f"{len(names)} deployments in work pool {pool!r}, their runs starting in {folder}: {', '.join(names)}")
    if not folder.is_dir():
        console.print(f"({folder} is not a folder on this machine: it must be one where the workers run)")
    console.print(f"start workers with: prefect worker start --pool {pool} --type process")


def _local_server_home() -> Path:
    from videobert_cli.prefect_config import prefect_home

    return prefect_home(_settings())


@server_app.command("status")
def prefect_server_status() -> None:
    """Whether this data folder's local Prefect server runs: its pid, its API address, the runs using it."""
    from videobert_cli.local_server import LOG, live_clients, running_server

    home = _local_server_home()
    rec = running_server(home)
    if rec is None:
        console.print(f"no local Prefect server runs for {home}")
        return
    stops = f"stops after {rec.idle_stop_s // 60} idle minutes" if rec.idle_stop_s else "stops when told"
    console.print(f"local Prefect server: pid {rec.pid}, {rec.api_url}{f', UI {rec.ui_url}' if rec.ui else ''}, "
                  f"log {home / LOG}; used by {len(live_clients(home))} runs now; {stops}")


@server_app.command("start")
def prefect_server_start(
    ui: Annotated[bool, typer.Option(help="Serve Prefect's UI too, with all its background services; it then "
                                          "stops only when told (`videobert prefect-server stop`).")] = False,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port on 127.0.0.1 (default: a free one).")] = None,
) -> None:
    """Start this data folder's local Prefect server now (runs start it when they need it, and reuse it)."""
    settings = _settings()
    if settings.prefect_api_url:
        console.print(f"VIDEOBERT_PREFECT_API_URL is set: runs use {settings.prefect_api_url}, not a local server")
        return
    if ui or port is not None:
        from videobert_cli.local_server import IDLE_STOP_S, ensure_server, wait_ready

        rec, _ = ensure_server(_local_server_home(), 0 if ui else IDLE_STOP_S, ui=ui, port=port)
        wait_ready(rec)
        if rec.ui:
            console.print(f"Prefect UI: {rec.ui_url} (`videobert serve` in this folder registers the deployments)")
    else:
        configure_prefect(settings, say=console.print)
    prefect_server_status()


@server_app.command("stop")
def prefect_server_stop(
    force: Annotated[bool, typer.Option(help="Stop it even while runs use it (they fail).")] = False,
) -> None:
    """Stop this data folder's local Prefect server (the next run that needs it starts it again)."""
    from videobert_cli.local_server import live_clients, stop_server

    home = _local_server_home()
    users = live_clients(home)
    if users and not force:
        raise VideobertError(f"the local Prefect server is used by {len(users)} running commands "
                             f"({', '.join(users)}): stop them first, or use --force")
    rec = stop_server(home)
    console.print(f"stopped the local Prefect server (pid {rec.pid})" if rec else f"no local Prefect server runs for {home}")


@app.command()
def train(
    corpus: Annotated[str | None, typer.Option(help="Corpus version: its hash or a unique prefix (default: the "
                                               "latest registered).")] = None,
    corpus_dir: Annotated[Path | None, typer.Option(help="A local corpus folder instead (dataset/corpus).")] = None,
    out: Annotated[Path | None, typer.Option(help="Final model folder (default: <data>/training/<run>/final).")] = None,
    params: Annotated[Path, typer.Option(help="Parameters file (its model and train sections).")] = Path("params.yaml"),
    force: Annotated[bool, typer.Option(help="Train a finished run again; take over a run another process "
                                        "holds.")] = False,
    stop_after: Annotated[int | None, typer.Option(help="Stop after this step (resumable: run again to go "
                                                   "on).")] = None,
    metrics_file: Annotated[Path | None, typer.Option(help="Also write the final metrics here (dvc metrics).")] = None,
    plots_dir: Annotated[Path | None, typer.Option(help="Also copy DVCLive's plots here (dvc plots).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Pre-train VideoBERT on a corpus version; a run started again resumes from its last checkpoint."""
    interrupt.set_resume_hint(interrupt.TRAINING_HINT)
    params_file = _params_file(params)
    overrides = _overrides(set_)
    _prefect_ready()
    import shutil

    from flows.progress import RichReporter, use_reporter
    from flows.training import train_flow

    reporter = None if quiet else RichReporter(console)
    with use_reporter(reporter) if reporter else contextlib.nullcontext():
        r = train_flow(None if corpus is None else corpus, None if corpus_dir is None else str(corpus_dir),
                       None if out is None else str(out), params_file, force, stop_after, overrides)
    what = {"done": "trained", "skipped": "already trained (--force trains it again)",
            "stopped": "stopped; run the same command again to resume"}[r.status]
    console.print(f"run {r.run_key[:16]}: {what}; {r.steps} steps on corpus {r.corpus_hash[:16]} (codebook "
                  f"{(r.codebook_hash or '?')[:16]})" + (f", resumed from step {r.resumed_from}" if r.resumed_from else ""))
    if r.metrics:
        table = Table("figure", "value", title="final validation")
        for k, v in r.metrics.items():
            table.add_row(k, f"{v:.4g}")
        console.print(table)
    console.print(f"model: {r.out_dir}" + (f" (loss curve {r.loss_curve})" if r.loss_curve else ""))
    if metrics_file:
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        metrics_file.write_text(json.dumps(r.metrics, indent=1, sort_keys=True) + "\n")
    if plots_dir:
        source = Path(r.out_dir) / "dvclive" / "plots"
        shutil.rmtree(plots_dir, ignore_errors=True)
        if source.exists():
            shutil.copytree(source, plots_dir)


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="A trained model folder.")] = Path("models/videobert"),
    annotations: Annotated[Path | None, typer.Option(help="Annotations in the YouCook II format (default: "
                                                     "evaluate.annotations of the params file).")] = None,
    tokens: Annotated[Path, typer.Option(help="Tokens index of the labelled videos.")] = Path("dataset/tokens.json"),
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, segments.jsonl and pictures.")] = Path("eval"),
    params: Annotated[Path, typer.Option(help="Parameters file (its evaluate section).")] = Path("params.yaml"),
    metrics_file: Annotated[Path | None, typer.Option(help="Also write the metrics here (dvc metrics).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
) -> None:
    """Zero-shot verb and object classification of a checkpoint on annotated segments, against chance and a
    shuffled-video control."""
    params_file = _params_file(params)
    overrides = _overrides(set_)
    _prefect_ready()
    from flows.evaluation import evaluate_flow

    r = evaluate_flow(str(checkpoint), None if annotations is None else str(annotations), str(tokens), str(out),
                      params_file, overrides)
    table = Table("what", "figure", "model", "chance", "frequency prior", "shuffled video",
                  title=f"zero-shot on {r.metrics['segments']} segments of {r.metrics['videos']} videos "
                        f"({r.metrics['verbs']} verbs, {r.metrics['objects']} objects)")
    for row in r.rows():
        table.add_row(row["what"], row["figure"], f"{row['model']:.1%}", f"{row['chance']:.1%}",
                      f"{row['frequency prior']:.1%}",
                      "-" if row["shuffled video"] is None else f"{row['shuffled video']:.1%}")
    console.print(table)
    skipped = {k: v for k, v in r.metrics["skipped"].items() if v}
    if skipped:
        console.print("not scored: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()))
    console.print(f"results: {out} (metrics.json, segments.jsonl, confusion_verbs.png, confusion_objects.png, "
                  "text_to_video.png)")
    if metrics_file:
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        metrics_file.write_text(json.dumps(r.metrics, indent=1, sort_keys=True) + "\n")


@app.command()
def caption(
    checkpoint: Annotated[Path, typer.Option(help="A trained VideoBERT folder.")] = Path("models/videobert"),
    annotations: Annotated[Path | None, typer.Option(help="Annotations in the YouCook II format (default: "
                                                     "caption.annotations of the params file).")] = None,
    tokens: Annotated[Path, typer.Option(help="Tokens index of the labelled videos.")] = Path("dataset/tokens.json"),
    out: Annotated[Path, typer.Option(help="Folder for metrics.json and each captioner with its predictions.")] = Path(
        "caption"),
    params: Annotated[Path, typer.Option(help="Parameters file (its caption section).")] = Path("params.yaml"),
    metrics_file: Annotated[Path | None, typer.Option(help="Also write the metrics here (dvc metrics).")] = None,
) -> None:
    """Train captioners over a checkpoint's VideoBERT features and the clip features (and, with caption.ablation,
    over the clip features alone) on annotated segments; score them with BLEU, METEOR, ROUGE-L and CIDEr."""
    params_file = _params_file(params)
    _prefect_ready()
    from flows.captioning import caption_flow

    r = caption_flow(str(checkpoint), None if annotations is None else str(annotations), str(tokens), str(out),
                     params_file)
    rows = r.table()
    table = Table(*rows[0].keys(), title="captioning of the scored split (BLEU, METEOR, ROUGE-L in %; CIDEr)")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    for example in r.metrics.get("examples", []):
        console.print(f"  reference: {example['reference']}")
        for row in rows:
            console.print(f"  {row['inputs']:>15}: {example.get(row['inputs'], '')}")
    skipped = {k: v for k, v in r.rows[0]["skipped"].items() if v}
    if skipped:
        console.print("left out: " + ", ".join(f"{v} segments: {k.replace('_', ' ')}" for k, v in skipped.items()))
    console.print(f"results: {out} (metrics.json; per captioner: model/, predictions.jsonl, training.json)")
    if metrics_file:
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        flat = {row["inputs"]: {k: v for k, v in r.metrics[row["inputs"]].items() if isinstance(v, int | float)}
                for row in rows}
        metrics_file.write_text(json.dumps(flat, indent=1, sort_keys=True) + "\n")


infer_app = typer.Typer(help="Use a trained checkpoint: zero-shot classification, text-to-video, forecasting.",
                        no_args_is_help=True)
app.add_typer(infer_app, name="infer")


def _inference(checkpoint: Path):  # noqa: ANN202
    from videobert.core.model_folder import check_model_folder
    from videobert_model.inference import VideoBertInference

    check_model_folder(checkpoint)
    return VideoBertInference.from_pretrained(checkpoint)


def _strip(inf, tokens: list[int], label: str, out: Path | None) -> None:  # noqa: ANN001
    from videobert.core.runtime import get_runtime
    from videobert.evaluation.pictures import strips_png
    from videobert.evaluation.zero_shot import _pictures_zip

    console.print(f"tokens: {tokens}")
    if out is not None:
        strips_png(out, [(label, tokens)], _pictures_zip(get_runtime(_settings()), inf.config.codebook_hash))
        console.print(f"pictures: {out}")


@infer_app.command("zero-shot")
def infer_zero_shot(
    video: Annotated[str, typer.Option(help="Video id (its tokens must exist).")],
    verbs: Annotated[str, typer.Option(help="Comma-separated verbs to rank.")],
    objects: Annotated[str, typer.Option(help="Comma-separated objects to rank.")],
    checkpoint: Annotated[Path, typer.Option(help="A trained model folder.")] = Path("models/videobert"),
    start: Annotated[float | None, typer.Option(help="Segment start, seconds.")] = None,
    end: Annotated[float | None, typer.Option(help="Segment end, seconds.")] = None,
    top: Annotated[int, typer.Option(help="How many to show.")] = 5,
) -> None:
    """Rank verbs and objects for a video segment with the paper's template."""
    from videobert.core.runtime import get_runtime
    from videobert.evaluation.zero_shot import video_tokens

    inf = _inference(checkpoint)
    tokens = video_tokens(get_runtime(_settings()), video, inf.config.codebook_hash, start, end)
    if not tokens:
        raise SettingsError(f"no clip of {video} has its midpoint in [{start}, {end})")
    v, o = inf.zero_shot([tokens], [w.strip() for w in verbs.split(",") if w.strip()],
                         [w.strip() for w in objects.split(",") if w.strip()])[0]
    for what, ranked in (("verbs", v), ("objects", o)):
        console.print(f"{what}: " + ", ".join(f"{w} ({s:.2f})" for w, s in list(zip(ranked.words, ranked.scores, strict=True))[:top]))


@infer_app.command("text-to-video")
def infer_text_to_video(
    text: Annotated[str, typer.Argument(help="A sentence.")],
    checkpoint: Annotated[Path, typer.Option(help="A trained model folder.")] = Path("models/videobert"),
    tokens: Annotated[int, typer.Option(help="Visual tokens to predict.")] = 8,
    out: Annotated[Path | None, typer.Option(help="PNG strip of the tokens' pictures.")] = None,
) -> None:
    """The visual tokens the model predicts for a sentence (and their pictures)."""
    inf = _inference(checkpoint)
    _strip(inf, inf.text_to_video(text, tokens), text, out)


@infer_app.command("forecast")
def infer_forecast(
    video: Annotated[str, typer.Option(help="Video id (its tokens must exist).")],
    checkpoint: Annotated[Path, typer.Option(help="A trained model folder.")] = Path("models/videobert"),
    start: Annotated[float | None, typer.Option(help="Segment start, seconds.")] = None,
    end: Annotated[float | None, typer.Option(help="Segment end, seconds.")] = None,
    steps: Annotated[int, typer.Option("--next", help="Tokens to forecast.")] = 4,
    out: Annotated[Path | None, typer.Option(help="PNG strip of the tokens' pictures.")] = None,
) -> None:
    """The next visual tokens after a video segment (and their pictures)."""
    from videobert.core.runtime import get_runtime
    from videobert.evaluation.zero_shot import video_tokens

    inf = _inference(checkpoint)
    history = video_tokens(get_runtime(_settings()), video, inf.config.codebook_hash, start, end)
    if not history:
        raise SettingsError(f"no clip of {video} has its midpoint in [{start}, {end})")
    _strip(inf, inf.forecast(history, steps), f"{video}: after {history}", out)


@app.command()
def checkpoints(
    run: Annotated[str | None, typer.Option(help="Only the run whose key starts with this.")] = None,
) -> None:
    """List the training runs with their data versions, metrics and checkpoints."""
    from videobert.core.runtime import get_runtime
    from videobert.db import repository as repo

    runs = repo.training_runs(get_runtime(_settings()).db, run)
    if not runs:
        console.print("no training runs" + (f" with key {run}" if run else "") + " (start one with `videobert train`)")
        return
    table = Table("run", "status", "corpus", "codebook", "step", "eval loss")
    for r in runs:
        newest = r["checkpoints"][-1] if r["checkpoints"] else None
        metrics = r["metrics"] or {}
        table.add_row(r["run_key"][:16], r["status"], (r["corpus_hash"] or "")[:12], (r["codebook_hash"] or "")[:12],
                      str(newest["step"]) if newest else "-",
                      f"{metrics['eval_loss']:.4g}" if "eval_loss" in metrics else "-")
    console.print(table)
    for r in runs:
        for c in r["checkpoints"][-1:]:
            console.print(f"{r['run_key'][:16]}: {len(r['checkpoints'])} checkpoints, newest step {c['step']} "
                          f"at {c['prefix']}")
    for r in runs:
        if r["error_message"]:
            console.print(f"{r['run_key'][:16]}: {r['error_message']}")


@app.command()
def demo() -> None:
    """Run the pipeline on embedded defaults and a few generated sample videos."""
    from videobert_cli.demo import run_demo

    run_demo(console)


def main() -> None:
    """Entry point: run the app, turning the project's errors into one clear line and an exit code (Ctrl-C: 130,
    SIGTERM: 143, with what had finished: `videobert_cli.interrupt`)."""
    from flows.progress import use_reporter

    interrupt.install(err_console)
    try:
        with use_reporter(CountingReporter()):  # counts finished stage runs for the line an interruption prints
            code = app(standalone_mode=False)
    except SettingsError as exc:
        _error(f"[bold red]configuration error:[/] {exc}")
        sys.exit(2)
    except VideobertError as exc:
        _error(f"[bold red]error ({type(exc).__name__}):[/] {exc}")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:  # with standalone_mode=False, click returns typer.Exit's code
        sys.exit(code)


def _error(line: str) -> None:
    """Our one line for an expected failure; with --debug, the traceback first."""
    if noise.DEBUG:
        err_console.print_exception()
    elif noise.hidden():
        line += " [dim](--debug shows Prefect's log and the traceback)[/]"
    err_console.print(line)


if __name__ == "__main__":
    main()
