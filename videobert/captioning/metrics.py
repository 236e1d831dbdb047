"""The COCO caption metrics as the YouCook II papers report them (pycocoevalcap 1.2): captions lower-cased and
split by its PTB tokenizer (Stanford CoreNLP's, punctuation removed), then BLEU-1..4 (corpus level, closest
reference length), METEOR 1.5 (its Java jar), ROUGE-L (beta 1.2) and CIDEr-D (idf over the scored references).

Scales as in the papers' tables: BLEU, METEOR and ROUGE-L in percent, CIDEr as is (VideoBERT + S3D: BLEU-4 4.33,
METEOR 11.94, ROUGE-L 28.80, CIDEr 0.55).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from videobert.core.errors import SettingsError

METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")
LABELS = {"bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3", "bleu_4": "BLEU-4", "meteor": "METEOR",
          "rouge_l": "ROUGE-L", "cider": "CIDEr"}
PERCENT = frozenset({"bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l"})  # reported x 100


def _check_java() -> None:
    if shutil.which("java") is None:
        raise SettingsError("the caption metrics need Java (pycocoevalcap runs its PTB tokenizer and METEOR in "
                            "it): install a JRE (e.g. apt-get install default-jre-headless)")


def score_captions(runs: Mapping[str, tuple[Mapping[str, Sequence[str]], Mapping[str, str]]]
                   ) -> dict[str, dict[str, float]]:
    """Scores of several runs, each {segment key: references} and {segment key: prediction} over the same keys;
    one METEOR process serves them all. Returns {run: {metric: value}} in the papers' scales (see the module)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    _check_java()
    for name, (refs, preds) in runs.items():
        if not refs:
            raise ValueError(f"run {name!r}: nothing to score")
        if set(refs) != set(preds):
            raise ValueError(f"run {name!r}: {len(set(refs) ^ set(preds))} segments have a reference but no "
                             "prediction, or the other way round")
        if any(not r for r in refs.values()):
            raise ValueError(f"run {name!r}: a segment without a reference")
    # one PTB tokenizer call (a Java start) for every caption of every run
    keyed = {name: sorted(refs) for name, (refs, _) in runs.items()}
    captions = {(name, "ref", i): [{"caption": r} for r in refs[k]]
                for name, (refs, _) in runs.items() for i, k in enumerate(keyed[name])}
    captions.update({(name, "pred", i): [{"caption": preds[k]}]
                     for name, (_, preds) in runs.items() for i, k in enumerate(keyed[name])})
    tokens = PTBTokenizer().tokenize(captions)
    meteor = Meteor()
    out: dict[str, dict[str, float]] = {}
    try:
        for name in runs:
            gts = {i: tokens[(name, "ref", i)] for i in range(len(keyed[name]))}
            res = {i: tokens[(name, "pred", i)] for i in range(len(keyed[name]))}
            scores: dict[str, Any] = {}
            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
            for n, value in enumerate(bleu, start=1):
                scores[f"bleu_{n}"] = value
            scores["meteor"], _ = meteor.compute_score(gts, res)
            scores["rouge_l"], _ = Rouge().compute_score(gts, res)
            scores["cider"], _ = Cider().compute_score(gts, res)
            out[name] = {k: float(scores[k]) * (100.0 if k in PERCENT else 1.0) for k in METRICS}
    finally:
        del meteor  # its __del__ ends the Java process
    return out
