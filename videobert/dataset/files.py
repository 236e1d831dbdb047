"""Files of the dataset stages: sorted JSON and ZIPs with fixed entry times, so equal contents give equal bytes
(what lets `dvc repro` on the same inputs reproduce the same outputs), and the error they raise."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from videobert.core.errors import PermanentStageError

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry times: equal contents give equal bytes


class DatasetError(PermanentStageError):
    """The inputs of a dataset stage are not usable (no videos, mixed extractors ...)."""


def json_bytes(value: Any) -> bytes:
    """Sorted, indented JSON with a final newline, UTF-8: the bytes of every JSON file the dataset steps write."""
    return (json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_json(path: Path, value: Any) -> None:
    """`json_bytes` of `value`, written atomically (a temporary name of this process's own, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(json_bytes(value))
    tmp.replace(path)


def zip_write(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Add `data` as an uncompressed entry with the fixed time."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    z.writestr(info, data)


@contextlib.contextmanager
def staged_dir(out_dir: Path) -> Iterator[Path]:
    """A new temporary folder beside `out_dir` for the block; on success it replaces `out_dir`, on an error it is
    removed and `out_dir` is left as it was."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out_dir.with_name(f".{out_dir.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
    tmp.chmod(0o755)  # mkdtemp makes it private; a dataset folder is not
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
