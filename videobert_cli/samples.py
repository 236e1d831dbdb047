"""Sample videos for the demo: short synthetic clips made with ffmpeg, with subtitle files of cooking steps,
and one narrated by espeak-ng with no subtitle file, whose transcript comes from speech recognition.

They are stand-ins for real instructional videos (no network here): FFmpeg test patterns, moving so that
clip features differ, each with a `.en.vtt` transcript or a spoken narration so that every stage has work to
do. They are made the same, byte for byte, on every run (seeded pattern, one encoder thread).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from videobert.core.errors import SettingsError

# (file stem, ffmpeg lavfi source, seconds, captions as (start, end, text))
SAMPLES: list[tuple[str, str, float, list[tuple[float, float, str]]]] = [
    ("pancakes", "testsrc2=size=480x360:rate=30", 12.0, [
        (0.0, 2.5, "today we are making fluffy pancakes"),
        (3.5, 6.0, "first whisk the eggs with the milk"),
        (6.0, 8.0, "then fold in the flour"),
        (9.0, 12.0, "cook them in a hot pan until golden"),
    ]),
    ("omelette", "mandelbrot=size=480x360:rate=25", 9.0, [
        (0.0, 2.0, "crack three eggs into a bowl"),
        (3.0, 6.0, "season with salt and pepper and beat well"),
        (7.0, 9.0, "pour into the pan and fold the omelette"),
    ]),
    ("salad", "life=size=480x360:rate=24:mold=10:ratio=0.2:seed=7:death_color=#C83232:life_color=#00ff00", 7.5, [
        (0.0, 3.0, "chop the tomatoes and the cucumber"),
        (4.0, 7.5, "toss everything with olive oil and lemon"),
    ]),
]


# (file stem, ffmpeg lavfi source, narration): spoken by espeak-ng; the video lasts as long as the speech
NARRATED: list[tuple[str, str, str]] = [
    ("soup", "cellauto=size=480x360:rate=25:rule=30:seed=3",
     "Chop the onions and the carrots. Fry them in butter until they are soft. "
     "Pour in the stock and let the soup simmer for twenty minutes."),
]
VOICE = "en"  # espeak-ng voice (tiny.en hears it a little better than en-us)
WORDS_PER_MINUTE = 150  # espeak-ng's speaking rate (its default is 175: a little slower is clearer)


def _vtt_time(t: float) -> str:
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"


def make_samples(folder: Path) -> list[Path]:
    """Write the sample videos and their subtitles into `folder` (kept if already there)."""
    if shutil.which("ffmpeg") is None:
        raise SettingsError("ffmpeg is not installed: run `make demo` (it installs it) or apt-get install ffmpeg")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, source, seconds, captions in SAMPLES:
        path = folder / f"{stem}.mp4"
        if not path.exists():
            tmp = folder / f".{stem}.tmp.mp4"
            subprocess.run(
                ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds),
                 # one encoder thread: the same bytes on every machine, so the demo's dataset is reproducible
                 "-c:v", "libx264", "-threads", "1", "-pix_fmt", "yuv420p", "-preset", "veryfast", str(tmp)],
                check=True, capture_output=True, timeout=300,
            )
            tmp.rename(path)
        vtt = "WEBVTT\n\n" + "".join(f"{_vtt_time(a)} --> {_vtt_time(b)}\n{text}\n\n" for a, b, text in captions)
        subtitles = folder / f"{stem}.en.vtt"
        if not subtitles.exists() or subtitles.read_text() != vtt:  # rewriting would change its mtime: a re-run
            subtitles.write_text(vtt)
        paths.append(path)
    return paths


def narrate(path: Path, text: str, video_source: str, voice: str = VOICE, words_per_minute: int = WORDS_PER_MINUTE) -> Path:
    """An mp4 of the lavfi `video_source` with espeak-ng saying `text` (AAC), as long as the speech."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("ffmpeg", "ffmpeg")):
        if shutil.which(tool) is None:
            raise SettingsError(f"{tool} is not installed: run `make setup` (it installs it) or apt-get install {package}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="narration-") as tmp:
        speech = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(speech), text],
                       check=True, capture_output=True, timeout=120)
        out = Path(tmp) / path.name
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", video_source, "-i", str(speech), "-shortest",
             "-c:v", "libx264", "-threads", "1", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-c:a", "aac", str(out)],
            check=True, capture_output=True, timeout=300,
        )
        shutil.move(out, path)
    return path


def make_narrated_samples(folder: Path) -> list[Path]:
    """Write the narrated sample videos into `folder` (kept if already there); no subtitle file beside them."""
    return [path if (path := folder / f"{stem}.mp4").exists() else narrate(path, text, source)
            for stem, source, text in NARRATED]
