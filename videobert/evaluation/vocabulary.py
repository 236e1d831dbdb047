"""The verb and object vocabularies of the zero-shot classification: the most frequent ground-truth verbs and
objects of one split (the training split), the words the model's masked-LM scores are restricted to.

Order: count, most frequent first; ties broken alphabetically, so the same truths give the same vocabulary.

Multi-WordPiece words are **excluded**: the model scores one masked position per word, and a word that the BERT
vocabulary does not hold as a single WordPiece ("saute" -> "sa", "##ute") has no single score there. The filter
runs before the size cap, so a vocabulary still holds `max_*` words; what the exclusion costs is reported on each
`Vocabulary` (`excluded`: the words left out with their counts; `covered_without_filter`: the split's segments the
same-size vocabulary would have covered without the filter, beside `covered`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videobert.evaluation.ground_truth import Method, SegmentTruth, segment_truths
from videobert.evaluation.youcook2 import VideoAnnotation

WordFilter = Callable[[str], bool]


@dataclass(frozen=True, eq=True)
class Vocabulary(Sequence[str]):
    """The words of one label kind (verbs or objects), most frequent first, and what they cover of their split.

    A sequence of its words (`list(v)`, `v[0]`, `len(v)`, `w in v`), so it can be passed where a word list is
    expected (the model's rankings, `confusion_matrix`'s labels, the frequency prior)."""

    kind: str  # "verb" or "object"
    words: tuple[str, ...]
    counts: Mapping[str, int]  # the split's count of each word in `words`
    excluded: Mapping[str, int]  # words seen >= min_count times but not a single WordPiece, with their counts
    segments: int  # segments of the split that have a truth of this kind
    covered: int  # of those, the ones whose truth is in `words`
    covered_without_filter: int  # what a vocabulary of the same size would cover without the WordPiece filter

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, i: Any) -> Any:
        return self.words[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.counts

    @property
    def coverage(self) -> float:
        """Share of the split's labelled segments whose truth is in the vocabulary."""
        return self.covered / self.segments if self.segments else 0.0

    @property
    def dropped_by_filter(self) -> int:
        """Segments of the split the WordPiece filter costs (covered without it, not with it)."""
        return self.covered_without_filter - self.covered


def load_wordpiece_vocab(path: str | Path) -> frozenset[str]:
    """The tokens of a BERT `vocab.txt` (one WordPiece a line) or of a folder that holds one."""
    path = Path(path)
    if path.is_dir():
        path = path / "vocab.txt"
    return frozenset(line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines())


def single_wordpiece(vocab: Iterable[str] | WordFilter) -> WordFilter:
    """A predicate: is the (lower-case) word one whole WordPiece of `vocab` (a token set or a predicate)."""
    if callable(vocab):
        return vocab
    tokens = frozenset(vocab)
    return lambda word: word in tokens  # "##" continuation pieces never equal a whole word


def ranked(counts: Mapping[str, int]) -> list[str]:
    """Words by count, most frequent first, ties alphabetically."""
    return sorted(counts, key=lambda w: (-counts[w], w))


def build_vocabulary(kind: str, labels: Iterable[str | None], max_words: int | None = None, min_count: int = 1,
                     vocab: Iterable[str] | WordFilter | None = None) -> Vocabulary:
    """The vocabulary of one kind from the labels of a split's segments (None: the segment has no label)."""
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    counts = Counter(w for w in labels if w is not None)
    candidates = [w for w in ranked(counts) if counts[w] >= min_count]
    keep = single_wordpiece(vocab) if vocab is not None else (lambda _w: True)
    kept = [w for w in candidates if keep(w)]
    excluded = {w: counts[w] for w in candidates if not keep(w)}
    words = kept[:max_words]
    return Vocabulary(
        kind=kind,
        words=tuple(words),
        counts={w: counts[w] for w in words},
        excluded=excluded,
        segments=sum(counts.values()),
        covered=sum(counts[w] for w in words),
        covered_without_filter=sum(counts[w] for w in candidates[:max_words]),
    )


def derive_vocabularies(source: Mapping[str, VideoAnnotation] | Iterable[SegmentTruth], subset: str = "training",
                        max_verbs: int | None = None, max_objects: int | None = None, min_count: int = 1,
                        vocab: Iterable[str] | WordFilter | None = None,
                        method: Method = "auto") -> tuple[Vocabulary, Vocabulary]:
    """The (verbs, objects) vocabularies of one split.

    Args:
        source: annotations (their `subset` segments are labelled here with `method`) or segment truths already
            extracted (those of `subset` are used).
        subset: the split the words and counts come from (the paper's: training).
        max_verbs, max_objects: the most frequent words kept (all when None).
        min_count: a word seen fewer times in the split is left out.
        vocab: a WordPiece vocabulary (token set, or a predicate on a word); words that are not one whole
            WordPiece are excluded (see the module docstring). No filter when None.
        method: the ground-truth method when `source` is annotations.
    """
    if isinstance(source, Mapping):
        truths = segment_truths(source, subset, method)
    else:
        truths = [t for t in source if t.subset == subset]
    verbs = build_vocabulary("verb", (t.verb for t in truths), max_verbs, min_count, vocab)
    objects = build_vocabulary("object", (t.object for t in truths), max_objects, min_count, vocab)
    return verbs, objects
