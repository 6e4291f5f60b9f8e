"""Which server process owns a record, and whether that process is gone.

Several servers may share one PostgreSQL index; at start-up a server may only settle the
records of its own host's previous processes. An owner is ``hostname:pid:start:instance``:
the process's start time (clock ticks since boot, from ``/proc``; empty where unknown) tells
a live process from a later one that reuses its pid, and ``instance`` (random, one per
registry) tells a registry from an earlier one in the same process.
"""

from __future__ import annotations

import os
import socket
import uuid


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # the name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else ""


def new_owner() -> str:
    """A fresh owner for this process: ``hostname:pid:start:instance``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}:{uuid.uuid4().hex[:12]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def owner_gone(owner: str, me: str) -> bool | None:
    """Whether ``owner`` is a process of this host that no longer runs (True), one that
    still does (False), or of another host (None: cannot tell). An unreadable owner, or an
    earlier registry of this very process, is gone."""
    host, _, rest = me.partition(":")
    parts = owner.rsplit(":", 3)  # a hostname has no colon, but be lenient
    if len(parts) != 4 or not parts[1].isdigit():
        return True
    other_host, pid_text, start, _instance = parts
    if other_host != host:
        return None
    my_pid, my_start, _ = rest.split(":", 2)
    if (pid_text, start) == (my_pid, my_start):
        return owner != me
    pid = int(pid_text)
    if not _alive(pid):
        return True
    return bool(start) and process_start(pid) not in ("", start)
