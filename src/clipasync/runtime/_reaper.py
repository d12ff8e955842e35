"""Ends the local Ray a driver started once that driver is gone, even by SIGKILL.

Run as a script (``python _reaper.py DRIVER_PID``) with a pipe from the driver on
stdin; standard library only, so it starts in milliseconds. The driver writes the
process ids of the Ray processes its ``ray.init`` started (one line); the reaper
records those processes and, every ``POLL_S``, their descendants (Ray's agents and
workers), each with its start time so that a reused process id is never touched.
When stdin reaches end of file — the driver exited, cleanly or killed — it sends
SIGTERM to every recorded process still alive, then SIGKILL after ``GRACE_S``.

Why: Ray 2.60 ties its GCS and raylet to the driver (the kernel's parent-death
signal), but the raylet's dashboard and runtime-env agents outlive a driver killed
by SIGKILL, reparented to init and blocked on the dead GCS.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

POLL_S = 0.5
GRACE_S = 1.0


def _stat(pid: int) -> tuple[int, int] | None:
    """Return ``(parent pid, start time)`` of a process, or ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()  # the name may hold spaces
    return int(fields[1]), int(fields[19])


def _processes() -> dict[int, tuple[int, int]]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def _track(roots: set[int], seen: dict[int, int]) -> None:
    """Add the roots and all their living descendants to ``seen`` (pid: start)."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    stack = [p for p in roots | set(seen) if p in procs]
    while stack:
        pid = stack.pop()
        if pid in procs and pid not in seen:
            seen[pid] = procs[pid][1]
        stack.extend(c for c in children.get(pid, []) if c not in seen)


def _alive(seen: dict[int, int]) -> list[int]:
    out = []
    for pid, start in seen.items():
        st = _stat(pid)
        if st is not None and st[1] == start:
            out.append(pid)
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the driver's group
    roots: set[int] = set()
    seen: dict[int, int] = {}
    fd = sys.stdin.fileno()
    buffer = b""
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                roots.update(int(p) for p in line.split())
        _track(roots, seen)
    _track(roots, seen)
    _signal_all(_alive(seen), signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_all(_alive(seen), signal.SIGKILL)


if __name__ == "__main__":
    main()
