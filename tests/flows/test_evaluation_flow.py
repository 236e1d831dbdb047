"""The evaluation flow end to end (a real Prefect flow run) on a tiny checkpoint trained on a known pattern: the
held-out segments are classified right, the shuffled control falls, every segment's result is in the database,
and the pictures are written."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from flows.evaluation import evaluate_flow
from tests.conftest import Project
from tests.flows.prefect_api import flow_run_artifacts
from tests.helpers.tiny_model import ACTION_TOKEN, OBJECT_TOKEN, OBJECTS, VERBS, train_tiny_model
from videobert.core.storage import keys
from videobert.dataset.codebook import CODEBOOKS
from videobert.db import repository as repo

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
CODEBOOK = "c" * 64
CLIP_S = 1.5


def _pictures_zip() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for token in range(8):
            img = io.BytesIO()
            Image.new("RGB", (16, 16), (30 * token, 100, 200)).save(img, format="JPEG")
            z.writestr(f"{token:06d}.jpg", img.getvalue())
    return buf.getvalue()


def test_evaluation_flow_on_a_known_pattern(project: Project) -> None:
    rt = project.runtime()
    inference = train_tiny_model(codebook_hash=CODEBOOK)
    inference.model.save_pretrained(project.root / "ckpt")
    inference.tokenizer.save_pretrained(project.root / "ckpt")
    rt.store.put_bytes(keys.dataset_artifact(CODEBOOKS, CODEBOOK, "pictures.zip"), _pictures_zip())
    # each token's picture: a training clip of vid0 (action tokens on even clips, object tokens on odd ones)
    pictures = {str(ACTION_TOKEN[v]): {"video": "vid0", "clip": 2 * (i * len(OBJECTS))} for i, v in enumerate(VERBS)}
    pictures |= {str(OBJECT_TOKEN[o]): {"video": "vid0", "clip": 2 * i + 1} for i, o in enumerate(OBJECTS)}
    rt.store.put_json(keys.dataset_artifact(CODEBOOKS, CODEBOOK, "pictures.json"), pictures)
    # six videos, each segment one (verb, object) class over two clips; the last two held out
    classes = [(v, o) for v in VERBS for o in OBJECTS]
    database, index = {}, {"codebook": CODEBOOK, "videos": {}}
    for i in range(6):
        vid = f"vid{i}"
        segments, tokens = [], []
        for j, (verb, obj) in enumerate(classes):
            segments.append({"id": j, "segment": [2 * j * CLIP_S, (2 * j + 2) * CLIP_S],
                             "sentence": f"now {verb} the {obj} ."})
            tokens += [ACTION_TOKEN[verb], OBJECT_TOKEN[obj]]
        database[vid] = {"subset": "validation" if i >= 4 else "training", "duration": len(tokens) * CLIP_S,
                         "recipe_type": "test", "annotations": segments}
        doc = {"codebook": CODEBOOK, "tokens": tokens, "start": [k * CLIP_S for k in range(len(tokens))],
               "end": [(k + 1) * CLIP_S for k in range(len(tokens))]}
        index["videos"][vid] = {"key": rt.store.put_json(keys.video_artifact(vid, "tokens", "tokens.json"), doc).key}
    (project.root / "annotations.json").write_text(json.dumps({"database": database}))
    (project.root / "tokens.json").write_text(json.dumps(index))
    params = project.write_params("evaluate:\n  strips: 2\n  strip_tokens: 4\n  top_k: 2\n  text_to_video_tokens: 4\n")

    summary = evaluate_flow(str(project.root / "ckpt"), str(project.root / "annotations.json"),
                            str(project.root / "tokens.json"), str(project.root / "eval"), str(params))
    m = summary.metrics
    assert (m["segments"], m["videos"], m["verbs"], m["objects"]) == (12, 2, 3, 2)
    assert m["verb"]["top1"] == 1.0 and m["object"]["top1"] == 1.0
    assert m["verb"]["chance_top1"] == pytest.approx(1 / 3) and m["verb"]["chance_top2"] == pytest.approx(2 / 3)
    assert m["shuffled_verb"]["top1"] < 0.8 and m["shuffled_object"]["top1"] < 1.0
    assert m["ground_truth"].startswith("spacy")
    # text-to-video, measured: every held-out sentence, its generated tokens read as their pictures' classes
    t2v = m["text_to_video"]
    assert (t2v["sentences"], t2v["tokens"]) == (12, 12 * 4) and 0 < t2v["mapped_tokens"] <= 48
    assert t2v["chance_verb"] == pytest.approx(1 / 3) and t2v["chance_object"] == pytest.approx(1 / 2)
    assert all(0.0 <= t2v[k] <= 1.0 for k in ("verb", "object", "both", "shuffled_verb", "shuffled_object"))
    lines = (project.root / "eval" / "segments.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["verb_top"][0] == json.loads(lines[0])["verb"]
    for name in ("confusion_verbs.png", "confusion_objects.png", "text_to_video.png", "metrics.json"):
        assert (project.root / "eval" / name).stat().st_size > 0, name
    run = repo.evaluation_runs(rt.db)[0]
    assert run["codebook_hash"] == CODEBOOK and run["metrics"]["verb"]["top1"] == 1.0
    results = repo.evaluation_results(rt.db, run["id"], "vid4")
    assert len(results) == 6 and all(r["verb_top"][0] == r["verb"] for r in results)
    # the same evaluation again replaces its record
    state = evaluate_flow(str(project.root / "ckpt"), str(project.root / "annotations.json"),
                          str(project.root / "tokens.json"), str(project.root / "eval"), str(params), return_state=True)
    assert len(repo.evaluation_runs(rt.db)) == 1
    # what a Prefect UI user reads: the scores beside chance, and the pictures
    artifacts = flow_run_artifacts(str(state.state_details.flow_run_id))
    assert set(artifacts) == {"zero-shot-scores", "zero-shot-confusion-verbs", "zero-shot-confusion-objects",
                              "zero-shot-text-to-video"}
    verb = next(r for r in artifacts["zero-shot-scores"] if r["what"] == "verb" and r["figure"] == "top1")
    assert verb["model"] == 1.0 and verb["chance"] == pytest.approx(1 / 3, abs=1e-4)
    assert "data:image/png;base64," in artifacts["zero-shot-confusion-verbs"]
    # the evaluate section overridden from the form: another evaluation, recorded with its override
    again = evaluate_flow(str(project.root / "ckpt"), str(project.root / "annotations.json"),
                          str(project.root / "tokens.json"), str(project.root / "eval3"), str(params),
                          {"evaluate": {"top_k": 3}})
    assert again.overrides == {"evaluate.top_k": 3} and again.params_file == str(params)
    assert "top3" in again.metrics["verb"] and "top2" not in again.metrics["verb"]
    assert len(repo.evaluation_runs(rt.db)) == 2
    # a tokens index for another codebook is refused
    (project.root / "other.json").write_text(json.dumps({**index, "codebook": "d" * 64}))
    from videobert.dataset.files import DatasetError

    with pytest.raises(DatasetError, match="codebook"):
        evaluate_flow(str(project.root / "ckpt"), str(project.root / "annotations.json"),
                      str(project.root / "other.json"), str(project.root / "eval2"), str(params))
    # a video labelled again with another codebook after the index was written (one tokens stage per video: the
    # new labels replace the old at the same key): refused, naming the video and both codebooks, not other scores
    vid4 = index["videos"]["vid4"]["key"]
    relabelled = {**rt.store.get_json(vid4), "codebook": "d" * 64}
    rt.store.put_json(vid4, relabelled)
    with pytest.raises(DatasetError, match=f"video vid4: its tokens in the store were made with codebook "
                                           f"{'d' * 16}, not {CODEBOOK[:16]}"):
        evaluate_flow(str(project.root / "ckpt"), str(project.root / "annotations.json"),
                      str(project.root / "tokens.json"), str(project.root / "eval2"), str(params))
    # tokens of the right codebook that changed since the index recorded their sha256: refused too
    changed = {**relabelled, "codebook": CODEBOOK, "tokens": relabelled["tokens"][::-1]}
    rt.store.put_json(vid4, changed)
    entry = {**index["videos"]["vid4"], "sha256": "0" * 64}
    (project.root / "recorded.json").write_text(json.dumps({**index, "videos": {**index["videos"], "vid4": entry}}))
    with pytest.raises(DatasetError, match="video vid4: its tokens changed since the tokens index was written"):
        evaluate_flow(str(project.root / "ckpt"), str(project.root / "annotations.json"),
                      str(project.root / "recorded.json"), str(project.root / "eval2"), str(params))
