"""Which process holds a claim or a scratch folder, and whether it still runs (on this host)."""

from __future__ import annotations

import os
import socket


def pid_is_running(pid: int) -> bool:
    """True when a process with this pid exists on this host (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_start_ticks(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux), to tell a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of stat(5); the first two fields were split off
    except (OSError, IndexError):
        return None


def owner_id(pid: int | None = None) -> str:
    """`host:pid:start` of this process: who holds a claim."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start_ticks(pid) or '?'}"


def owner_is_dead(owner: str | None) -> bool:
    """True when `owner` names a process on this host that no longer exists (or whose pid was reused)."""
    if not owner:
        return True
    try:
        host, pid_text, start = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False  # cannot tell for another machine: the lease decides
    current = _process_start_ticks(pid)
    if current is None:
        return not pid_is_running(pid)
    return start != "?" and current != start
