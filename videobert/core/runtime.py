"""What a worker process needs to run stages: settings, database, store, and per-process caches.

One `Runtime` per (database, store) configuration and process, so that threads of a Prefect task runner
share connection pools and loaded models instead of opening their own.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videobert.core.processes import pid_is_running
from videobert.core.settings import Settings, load_settings
from videobert.core.storage import ArtifactStore, open_store
from videobert.db.engine import Database, open_database

if TYPE_CHECKING:
    from videobert.core.params import FeaturesParams, PunctuateParams, TranscriptParams
    from videobert.features.extractors import ClipExtractor
    from videobert.ingest.howto100m import HowTo100MCaptions
    from videobert.ingest.punctuation import Labeler
    from videobert.ingest.whisper import WhisperRecognizer


@dataclass
class Runtime:
    """Settings plus the open database and store, with caches shared by the threads of one process."""

    settings: Settings
    db: Database
    store: ArtifactStore
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _loaded: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)  # models and indexes, by key
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def work_dir(self) -> Path:
        """A scratch folder on the data disk (downloads, decoded media), created on demand."""
        path = self.settings.resolved_data_dir / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        """A new scratch folder for the block, named with this process's pid so that a later run can remove it
        if this process dies before the block ends."""
        import os
        import shutil
        import tempfile

        path = Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=self.work_dir()))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def clean_scratch(self) -> int:
        """Remove scratch folders left by processes of this host that no longer run; returns how many."""
        import os
        import shutil

        removed = 0
        for path in self.work_dir().iterdir():
            parts = path.name.split("-")
            pid = next((int(p) for p in parts[1:] if p.isdigit()), None)
            if pid is None or pid == os.getpid():
                continue
            if not pid_is_running(pid):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    def cache_dir(self) -> Path:
        """A folder for derived, rebuildable files (indexes)."""
        path = self.settings.resolved_data_dir / "cache"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def labeler(self, params: PunctuateParams) -> Labeler:
        """The punctuation labeler for `params`, loaded once per process."""
        from videobert.ingest.punctuation import make_labeler

        model = self.settings.punctuation_model
        return self._once(("labeler", params.model_dump_json(), model), lambda: make_labeler(params, model))

    def whisper(self, params: TranscriptParams) -> WhisperRecognizer | None:
        """The Whisper recognizer (VIDEOBERT_WHISPER_MODEL, else the bundled tiny.en) placed for `params`, loaded
        once per process; None when there is no model."""
        from videobert.ingest.whisper import load_recognizer

        model = self.settings.whisper_model
        return self._once(("whisper", model, params.whisper_compute_type), lambda: load_recognizer(model, params))

    def extractor(self, params: FeaturesParams) -> ClipExtractor:
        """The clip feature extractor for `params`, loaded once per process (models are big)."""
        from videobert.features.clips import make_extractor

        s = self.settings
        key = ("extractor", params.model_dump_json(), s.s3d_handle, s.i3d_handle, str(s.tfhub_cache_dir),
               str(s.efficientnet_weights), s.torch_threads, s.torch_device)
        return self._once(key, lambda: make_extractor(params, s))

    def howto100m(self, path: str) -> HowTo100MCaptions:
        """The HowTo100M caption file at `path`, with its index.

        Cached per process by path *and* the file's size and modification time, so a file replaced under a
        process that runs flows more than once (a notebook, a test) is read afresh with its new identity.
        """
        from videobert.ingest.howto100m import HowTo100MCaptions

        try:
            stat = os.stat(path)
            identity: tuple[Any, ...] = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        except OSError:
            identity = ()  # HowTo100MCaptions raises the clear error
        return self._once(("howto100m", path, *identity), lambda: HowTo100MCaptions(path, self.cache_dir()))

    def _once(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """The object cached under `key`, made by `make` the first time (one thread makes it)."""
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = make()
            return self._loaded[key]

    def http_session(self) -> Any:
        """A requests.Session per thread (youtube-transcript-api's is not thread-safe)."""
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session


_RUNTIMES: dict[tuple[str, str], Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def get_runtime(settings: Settings | None = None) -> Runtime:
    """The process's Runtime for the current settings (opened, and migrated if embedded, on first use)."""
    settings = settings or load_settings()
    store = open_store(settings, check=False)
    key = (settings.resolved_database_url, store.describe())
    with _RUNTIMES_LOCK:
        rt = _RUNTIMES.get(key)
        if rt is None:
            store.check()
            rt = Runtime(settings, open_database(settings), store)
            _RUNTIMES[key] = rt
        rt.settings = settings  # model paths and leases may change between runs of one process
        return rt


def reset_runtimes() -> None:
    """Forget cached runtimes (tests switch databases between cases)."""
    with _RUNTIMES_LOCK:
        for rt in _RUNTIMES.values():
            rt.db.dispose()
        _RUNTIMES.clear()
