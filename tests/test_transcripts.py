"""Transcript sources: YouTube (recorded responses replayed), HowTo100M's caption file, subtitle files."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import pytest
import responses
import youtube_transcript_api

from videobert.ingest.howto100m import HowTo100MCaptions, MalformedCaptionFileError
from videobert.ingest.transcripts import (
    Caption,
    CaptionWord,
    MalformedSubtitleError,
    Transcript,
    TranscriptUnavailableError,
    find_subtitles,
    from_howto100m,
    from_subtitle_file,
    from_youtube,
    remove_rolling_duplicates,
    tidy,
)

# Real YouTube responses recorded by youtube-transcript-api's authors, shipped in its package.
ASSETS = Path(youtube_transcript_api.__file__).parent / "test" / "assets"
VIDEO = "GJLlxj_dtq8"  # the video the recordings are of


def _innertube(name: str = "youtube.innertube.json.static", keep: callable | None = None) -> dict:
    data = json.loads((ASSETS / name).read_text())
    if keep is not None:
        tracks = data["captions"]["playerCaptionsTracklistRenderer"]["captionTracks"]
        data["captions"]["playerCaptionsTracklistRenderer"]["captionTracks"] = [t for t in tracks if keep(t)]
    return data


def _replay(rsps: responses.RequestsMock, innertube: dict | None = None, status: int = 200) -> None:
    rsps.add(responses.GET, f"https://www.youtube.com/watch?v={VIDEO}", body=(ASSETS / "youtube.html.static").read_text())
    rsps.add(responses.POST, re.compile(r"https://www\.youtube\.com/youtubei/v1/player.*"), json=innertube, status=status)
    rsps.add(responses.GET, re.compile(r"https://www\.youtube\.com/api/timedtext.*"),
             body=(ASSETS / "transcript.xml.static").read_text())


def test_youtube_manual_english_is_preferred() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _replay(rsps, _innertube())
        transcript, note = from_youtube(VIDEO, ["en"])
        timedtext = [c.request.url for c in rsps.calls if "timedtext" in c.request.url]
    assert transcript is not None
    assert (transcript.source, transcript.kind, transcript.language, transcript.english) == ("youtube", "manual", "en", True)
    assert "kind=asr" not in timedtext[0] and "lang=en" in timedtext[0]
    assert transcript.captions[0] == Caption(0.0, 1.54, "Hey, this is just a test")
    assert transcript.captions[1].text == "this is not the original transcript"  # markup stripped by the library
    assert note == "youtube: manual en"


def test_youtube_auto_generated_when_no_manual() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _replay(rsps, _innertube(keep=lambda t: t.get("kind") == "asr"))
        transcript, _ = from_youtube(VIDEO, ["en"])
    assert transcript is not None and (transcript.kind, transcript.language, transcript.english) == ("auto", "en", True)


def test_youtube_non_english_is_kept_and_marked() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _replay(rsps, _innertube(keep=lambda t: t["languageCode"] == "de"))
        transcript, note = from_youtube(VIDEO, ["en"])
    assert transcript is not None
    assert (transcript.language, transcript.english, transcript.kind) == ("de", False, "manual")
    assert len(transcript.captions) == 3


def test_youtube_transcripts_disabled_is_no_transcript_not_an_error() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _replay(rsps, _innertube("youtube_transcripts_disabled.innertube.json.static"))
        transcript, note = from_youtube(VIDEO, ["en"])
    assert transcript is None and note == "youtube: TranscriptsDisabled"


def test_youtube_unavailable_video_is_no_transcript() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _replay(rsps, _innertube("youtube_video_unavailable.innertube.json.static"))
        transcript, note = from_youtube(VIDEO, ["en"])
    assert transcript is None and note.startswith("youtube: VideoUnavailable")


def test_youtube_blocking_is_transient() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, f"https://www.youtube.com/watch?v={VIDEO}", status=429, body="")
        with pytest.raises(TranscriptUnavailableError, match="IpBlocked") as err:
            from_youtube(VIDEO, ["en"])
    assert err.value.retryable


# --- HowTo100M ---------------------------------------------------------------------------------------------


def _captions_file(tmp_path: Path, text: str) -> HowTo100MCaptions:
    path = tmp_path / "raw_caption.json"
    path.write_text(text, encoding="utf-8")
    return HowTo100MCaptions(path, tmp_path / "cache")


def test_howto100m_entries(tmp_path: Path) -> None:
    data = {
        "normal1": {"start": [0.5, 3.0], "end": [3.0, 6.2], "text": ["crack two eggs", "into the bowl ça va"]},
        "mismatch": {"start": [0, 1, 2], "end": [1, 2], "text": ["a", "b", "c"]},
        "empty": {"start": [], "end": [], "text": []},
        "odd": [1, 2, 3],
    }
    captions = _captions_file(tmp_path, json.dumps(data, ensure_ascii=False, indent=1))
    t, note = from_howto100m(captions, "normal1")
    assert t is not None and t.captions == [Caption(0.5, 3.0, "crack two eggs"), Caption(3.0, 6.2, "into the bowl ça va")]
    assert (t.source, t.kind, t.english) == ("howto100m", "auto", True)
    t, _ = from_howto100m(captions, "mismatch")
    assert t is not None and len(t.captions) == 2 and "mismatched lengths start=3 end=2 text=3" in t.notes[0]
    assert from_howto100m(captions, "empty") == (None, "howto100m: empty entry")
    assert from_howto100m(captions, "absent") == (None, "howto100m: no entry")
    t, note = from_howto100m(captions, "odd")
    assert t is None and "not {start, end, text}" in note
    assert len(captions) == 4


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": {"start": [1], "end": [2], "text": ["x"]}, "b": {"start": [1], "end"', "entry 'b'"),
        ('{"a": {"start": [1]} "b": {}}', "expected ',' or '}'"),
        ('["not", "an", "object"]', "expected '{'"),
        ('{"a": {"start": [1]},', "ends before the closing"),
        ("", "expected '{'"),
    ],
)
def test_howto100m_malformed_file(tmp_path: Path, text: str, where: str) -> None:
    captions = _captions_file(tmp_path, text)
    with pytest.raises(MalformedCaptionFileError, match="malformed at byte") as err:
        captions.raw_entry("a")
    assert where in str(err.value)


def test_howto100m_index_uses_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    n = 60_000
    with path.open("w") as fh:  # ~40 MB, streamed out the same way it must be read
        fh.write("{")
        for i in range(n):
            entry = {"start": [j * 2.0 for j in range(20)], "end": [j * 2.0 + 2 for j in range(20)],
                     "text": [f"step {j} of video {i} stir the sauce gently" for j in range(20)]}
            fh.write(("," if i else "") + json.dumps(f"vid{i:07d}") + ":" + json.dumps(entry))
        fh.write("}")
    size = path.stat().st_size
    captions = HowTo100MCaptions(path, tmp_path / "cache")
    tracemalloc.start()
    captions.ensure_index()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size > 30e6 and peak < 25e6, f"peak {peak / 1e6:.1f} MB while indexing {size / 1e6:.0f} MB"
    t, _ = from_howto100m(captions, f"vid{n - 1:07d}")
    assert t is not None and t.captions[3].text == f"step 3 of video {n - 1} stir the sauce gently"


# --- subtitle files ------------------------------------------------------------------------------------------

ROLLING_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.000 --> 00:00:02.310 align:start position:0%
\u0020
today<00:00:00.480><c> we</c><00:00:00.960><c> make</c><00:00:01.200><c> pancakes</c>

00:00:02.310 --> 00:00:02.320 align:start position:0%
today we make pancakes
\u0020

00:00:02.320 --> 00:00:04.870 align:start position:0%
today we make pancakes
first<00:00:02.800><c> crack</c><00:00:03.100><c> the</c><00:00:03.400><c> eggs</c>

00:00:04.870 --> 00:00:04.880 align:start position:0%
first crack the eggs
\u0020

00:00:04.880 --> 00:00:07.100 align:start position:0%
first crack the eggs
then whisk well
"""

SRT = """1
00:00:00,000 --> 00:00:01,500
Heat the pan.

2
00:00:01,500 --> 00:00:03,250
Add <i>butter</i>.
"""


def test_vtt_rolling_auto_captions_are_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "clip.vtt"
    path.write_text(ROLLING_VTT)
    t, note = from_subtitle_file(path, ["en"])
    assert t is not None and t.language == "en" and t.english
    captions, notes = tidy(t.captions, dedupe=True)
    assert [c.text for c in captions] == ["today we make pancakes", "first crack the eggs", "then whisk well"]
    assert [(c.start, c.end) for c in captions] == [(0.0, 2.31), (2.32, 4.87), (4.88, 7.1)]
    assert notes == ["removed 2 rolling duplicate captions"]


def test_srt_with_language_from_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "clip.fr.srt").write_text(SRT)
    found = find_subtitles(tmp_path / "clip.mp4", ["en"])
    assert found == tmp_path / "clip.fr.srt"  # no English one: another language is still used
    t, _ = from_subtitle_file(found, ["en"])
    assert t is not None and (t.language, t.english) == ("fr", False)
    assert [(c.start, c.end, c.text) for c in tidy(t.captions, dedupe=True)[0]] == [
        (0.0, 1.5, "Heat the pan."), (1.5, 3.25, "Add butter."),
    ]
    (tmp_path / "clip.en.vtt").write_text(ROLLING_VTT)
    assert find_subtitles(tmp_path / "clip.mp4", ["en"]) == tmp_path / "clip.en.vtt"


def test_malformed_subtitles(tmp_path: Path) -> None:
    path = tmp_path / "bad.vtt"
    path.write_text("this is not a subtitle file\n")
    with pytest.raises(MalformedSubtitleError, match="bad.vtt"):
        from_subtitle_file(path, ["en"])


def test_rolling_dedupe_keeps_distinct_lines() -> None:
    caps = [Caption(0, 1, "stir"), Caption(1, 2, "stir\nadd salt"), Caption(2, 3, "add salt\nstir again")]
    assert [c.text for c in remove_rolling_duplicates(caps)] == ["stir", "add salt", "stir again"]


def test_stored_form_keeps_word_times_and_leaves_the_other_sources_as_they_were() -> None:
    words = (CaptionWord(0.5, 0.9, "Whisk"), CaptionWord(1.0, 1.4, "it."))
    spoken = Transcript("whisper", "auto", "en", True, [Caption(0.5, 1.4, "Whisk it.", words)], punctuated=True)
    assert Transcript.from_json(json.loads(json.dumps(spoken.to_json()))) == spoken
    subtitles = Transcript("subtitles", None, "en", True, [Caption(0.0, 1.0, "whisk it")])
    # no `words` or `punctuated` keys: a transcript of these sources stores the bytes it stored before Whisper
    assert subtitles.to_json() == {"source": "subtitles", "kind": None, "language": "en", "english": True,
                                   "captions": [{"start": 0.0, "end": 1.0, "text": "whisk it"}], "notes": []}
    assert Transcript.from_json(subtitles.to_json()) == subtitles
    # tidying (sorting, cleaning) keeps a caption's words
    assert tidy(spoken.captions, dedupe=False)[0][0].words == words
