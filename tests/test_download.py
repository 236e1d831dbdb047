"""yt-dlp downloading real video files from a local HTTP server (generic extractor)."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.helpers.httpserver import LocalHTTPServer, Route
from tests.helpers.media import make_video
from videobert.core.params import DownloadParams, Params
from videobert.db import repository as repo
from videobert.features.media import CorruptVideoError, NotAVideoError, TooLongError, probe
from videobert.ingest.download import (
    GeoBlockedError,
    NetworkError,
    ThrottledError,
    VideoUnavailableError,
    classify_ytdlp_error,
    download,
)
from videobert.ingest.stages import run_download

PARAMS = DownloadParams(http_retries=1, socket_timeout_s=10)
# an HLS media playlist without #EXT-X-ENDLIST: a live stream (segments keep coming)
LIVE_PLAYLIST = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nseg0.ts\n"


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_video(tmp_path_factory.mktemp("v") / "pancakes.mp4", seconds=2, size="640x360", audio=True).read_bytes()


@pytest.fixture
def server(video_bytes: bytes) -> Iterator[LocalHTTPServer]:
    srv = LocalHTTPServer().start()
    srv.routes["/videos/pancakes.mp4"] = Route(video_bytes)
    srv.routes["/videos/cut.mp4"] = Route(video_bytes, truncate_to=len(video_bytes) // 3)
    srv.routes["/videos/busy.mp4"] = Route(b"try later", 503, "text/plain")
    srv.routes["/videos/slowdown.mp4"] = Route(b"slow down", 429, "text/plain")
    srv.routes["/videos/notes.mp4"] = Route(b"this is not a video at all", 200, "video/mp4")
    srv.routes["/videos/forbidden.mp4"] = Route(b"forbidden", 403, "text/plain")
    srv.routes["/videos/withdrawn.mp4"] = Route(b"gone", 410, "text/plain")
    srv.routes["/live/stream.m3u8"] = Route(LIVE_PLAYLIST, 200, "application/vnd.apple.mpegurl")
    srv.routes["/blog.html"] = Route(b"<html><head><title>blog</title></head><body>no video</body></html>", 200, "text/html")
    srv.add_video_page("/watch/short.html", "/videos/pancakes.mp4", "Fluffy pancakes", 2)
    srv.add_video_page("/watch/long.html", "/videos/pancakes.mp4", "A very long stream", 20 * 60)
    yield srv
    srv.stop()


def test_direct_file_is_downloaded_whole(server: LocalHTTPServer, video_bytes: bytes, tmp_path: Path) -> None:
    got = download(server.url("/videos/pancakes.mp4"), tmp_path, PARAMS)
    assert got.path.read_bytes() == video_bytes
    assert got.extractor == "Generic"
    info = probe(got.path)
    assert (info.width, info.height) == (640, 360)
    assert info.has_audio and 1.9 < (info.duration_s or 0) < 2.2


def test_page_with_metadata(server: LocalHTTPServer, video_bytes: bytes, tmp_path: Path) -> None:
    got = download(server.url("/watch/short.html"), tmp_path, PARAMS)
    assert got.title == "Fluffy pancakes" and got.duration_s == 2
    assert hashlib.sha256(got.path.read_bytes()).digest() == hashlib.sha256(video_bytes).digest()


def test_too_long_video_is_refused_before_download(server: LocalHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(TooLongError, match="1200 s long, over the 900 s limit"):
        download(server.url("/watch/long.html"), tmp_path, PARAMS)
    assert ("GET", "/videos/pancakes.mp4") not in server.requests  # the metadata was enough
    assert list(tmp_path.iterdir()) == []
    # the limit is a parameter
    got = download(server.url("/watch/long.html"), tmp_path, PARAMS.model_copy(update={"max_duration_s": 3600}))
    assert got.path.is_file()


def test_404_is_permanent_with_ytdlp_text(server: LocalHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(VideoUnavailableError) as err:
        download(server.url("/videos/gone.mp4"), tmp_path, PARAMS)
    assert "HTTP Error 404" in str(err.value) and not err.value.retryable


def test_410_is_permanent_and_403_transient(server: LocalHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(VideoUnavailableError) as gone:
        download(server.url("/videos/withdrawn.mp4"), tmp_path, PARAMS)
    assert "HTTP Error 410" in str(gone.value) and not gone.value.retryable
    with pytest.raises(NetworkError) as forbidden:  # often an expired signed URL or a transient block: retried
        download(server.url("/videos/forbidden.mp4"), tmp_path, PARAMS)
    assert "HTTP Error 403" in str(forbidden.value) and forbidden.value.retryable


def test_live_stream_is_not_a_video(server: LocalHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(NotAVideoError, match="live stream") as err:
        download(server.url("/live/stream.m3u8"), tmp_path, PARAMS)
    assert not err.value.retryable
    assert ("GET", "/live/seg0.ts") not in server.requests and list(tmp_path.iterdir()) == []  # nothing fetched


def test_audio_only_file_stops_at_the_download_stage(server: LocalHTTPServer, project: Project) -> None:
    tone = project.root / "tone.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", str(tone)],
                   check=True, timeout=60)
    server.routes["/audio/tone.m4a"] = Route(tone.read_bytes(), 200, "audio/mp4")
    rt = project.runtime()
    url = server.url("/audio/tone.m4a")
    repo.register_videos(rt.db, [repo.NewVideo("tone", "url", url, url=url)])
    r = run_download(rt, "tone", Params(download=PARAMS))
    assert (r.status, r.reason, r.retryable) == ("failed", "NotAVideoError", False)
    assert "no video stream" in r.message and rt.store.list("videos/tone/") == []


def test_truncated_response_is_transient(server: LocalHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(NetworkError) as err:
        download(server.url("/videos/cut.mp4"), tmp_path, PARAMS)
    assert "more expected" in str(err.value) and err.value.retryable
    assert not any(p.suffix == ".mp4" for p in tmp_path.iterdir())  # no half file passes as a video


def test_server_errors_and_throttling_are_transient(server: LocalHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="503"):
        download(server.url("/videos/busy.mp4"), tmp_path, PARAMS)
    with pytest.raises(ThrottledError, match="429"):
        download(server.url("/videos/slowdown.mp4"), tmp_path, PARAMS)


def test_page_without_a_video(server: LocalHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(NotAVideoError, match="Unsupported URL"):
        download(server.url("/blog.html"), tmp_path, PARAMS)


def test_downloaded_file_that_is_not_a_video(server: LocalHTTPServer, tmp_path: Path) -> None:
    got = download(server.url("/videos/notes.mp4"), tmp_path, PARAMS)
    with pytest.raises(CorruptVideoError):
        probe(got.path)


def test_unreachable_host_is_transient(tmp_path: Path) -> None:
    from tests.conftest import free_port

    with pytest.raises(NetworkError):
        download(f"http://127.0.0.1:{free_port()}/v.mp4", tmp_path, PARAMS.model_copy(update={"http_retries": 0}))


@pytest.mark.parametrize(
    ("message", "kind", "retryable"),
    [
        ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access", VideoUnavailableError, False),
        ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", VideoUnavailableError, False),
        ("ERROR: [youtube] abc: The uploader has not made this video available in your country", GeoBlockedError, False),
        ("ERROR: [youtube] abc: Sign in to confirm your age", VideoUnavailableError, False),
        ("ERROR: [youtube] abc: Sign in to confirm you’re not a bot", ThrottledError, True),
        ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests", ThrottledError, True),
        ("ERROR: [youtube] abc: Read timed out.", NetworkError, True),
    ],
)
def test_error_classification(message: str, kind: type, retryable: bool) -> None:
    from yt_dlp.utils import DownloadError

    err = classify_ytdlp_error(DownloadError(message))
    assert isinstance(err, kind) and err.retryable is retryable
    assert str(err) == message.removeprefix("ERROR: ")  # yt-dlp's own words are kept
