"""A local HTTP server on 127.0.0.1 for yt-dlp's generic extractor: files, pages, errors, slow and cut responses."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    content_type: str = "video/mp4"
    truncate_to: int | None = None  # send this many bytes, then drop the connection
    bytes_per_second: int | None = None  # throttle the body
    fail_first: int = 0  # answer this many GET requests with `fail_status` first
    fail_status: int = 503


@dataclass
class LocalHTTPServer:
    """A threaded HTTP server with per-path routes; records every request line."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)

    def start(self) -> LocalHTTPServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                server.requests.append((self.command, path))
                route = server.routes.get(path)
                if route is None:
                    route = Route(b"not found", 404, "text/plain")
                if route.fail_first > 0 and not head:
                    route.fail_first -= 1
                    route = Route(b"unavailable", route.fail_status, "text/plain")
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.send_header("Accept-Ranges", "none")
                self.end_headers()
                if head:
                    return
                body = route.body if route.truncate_to is None else route.body[: route.truncate_to]
                try:
                    if route.bytes_per_second:
                        step = max(1, route.bytes_per_second // 10)
                        for i in range(0, len(body), step):
                            self.wfile.write(body[i : i + step])
                            self.wfile.flush()
                            time.sleep(0.1)
                    else:
                        self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                if route.truncate_to is not None:
                    self.close_connection = True
                    self.connection.shutdown(2)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_video_page(self, path: str, video_path: str, title: str, duration_s: float) -> None:
        """An HTML page describing a video with schema.org JSON-LD, as many sites publish."""
        ld = {
            "@context": "https://schema.org", "@type": "VideoObject", "name": title,
            "contentUrl": self.url(video_path), "duration": f"PT{int(duration_s)}S",
            "uploadDate": "2024-01-01", "thumbnailUrl": self.url("/thumb.jpg"), "description": title,
        }
        html = (f"<html><head><title>{title}</title><script type=\"application/ld+json\">{json.dumps(ld)}"
                "</script></head><body><h1>recipe</h1></body></html>")
        self.routes[path] = Route(html.encode(), 200, "text/html; charset=utf-8")


Factory = Callable[[], LocalHTTPServer]
