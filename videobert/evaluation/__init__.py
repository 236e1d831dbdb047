"""The YouCook II evaluation core: the annotation reader (`youcook2`), the ground-truth verb and object of each
segment sentence (`ground_truth`), the verb and object vocabularies of the training split (`vocabulary`), and the
scores: top-k accuracy, chance, the frequency prior, confusion matrices and their pictures (`metrics`).

Pure Python, numpy and Pillow, plus spaCy for the ground truth; the model's side is `videobert_model.inference`.
"""

from videobert.evaluation.ground_truth import (
    GroundTruth,
    SegmentTruth,
    extract_ground_truths,
    resolve_method,
    segment_truths,
    truths_by_segment,
)
from videobert.evaluation.metrics import (
    chance_topk,
    confusion_matrix,
    confusion_png,
    frequency_prior_topk,
    topk_accuracy,
)
from videobert.evaluation.vocabulary import Vocabulary, derive_vocabularies, load_wordpiece_vocab
from videobert.evaluation.youcook2 import Segment, VideoAnnotation, load_annotations, segments_of, videos_of

__all__ = [
    "GroundTruth", "SegmentTruth", "Segment", "VideoAnnotation", "Vocabulary",
    "chance_topk", "confusion_matrix", "confusion_png", "derive_vocabularies", "extract_ground_truths",
    "frequency_prior_topk", "load_annotations", "load_wordpiece_vocab", "resolve_method", "segment_truths",
    "segments_of", "topk_accuracy", "truths_by_segment", "videos_of",
]
