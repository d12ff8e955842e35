"""A fork server for the CLI corpus: import the command line once, fork per case.

Most of a refused case's time is the CLI's start-up (~0.85 s of imports: pydantic,
typer, rich, the config schema), paid again by each of several hundred cases. This
process pays it once, then for each request read from stdin (one JSON line:
``args``, ``cwd``, ``env``, ``stdout``, ``stderr``, ``timeout``) forks a child that
sets the sandbox limits on itself, enters the case's folder and environment, points
its fds 0/1/2 at /dev/null and the two output files, and runs ``clipasync ARGS``
exactly as the console entry point would (``app()``, its ``SystemExit`` as the exit
status, the interpreter's exit handlers). The reply is one JSON line: ``rc`` (None
when the case was killed at its timeout, with its whole process group) and
``seconds`` from fork to exit.

The server itself stays single-threaded (forking a threaded process is unsafe) and
serves one case at a time; the corpus runs a few servers side by side.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any

# The start-up paid once, before any fork.
from clipasync.cli import main

POLL_S = 0.005


def _child(req: dict[str, Any]) -> int:
    """Become the case: limits, folder, environment, fds; run the CLI; its status."""
    os.setpgid(0, 0)
    memory = int(req["memory"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, (path, flags) in enumerate(
        [
            (os.devnull, os.O_RDONLY),
            (req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ]
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = ["clipasync", *req["args"]]
    code: int
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None after killing its group at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(POLL_S)


def serve() -> None:
    """Answer one JSON request per stdin line until stdin closes."""
    reply = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(req)
            finally:
                os._exit(code)
        rc = _wait(pid, float(req["timeout"]))
        seconds = time.perf_counter() - start
        reply.write(json.dumps({"rc": rc, "seconds": seconds}) + "\n")
        reply.flush()


if __name__ == "__main__":
    serve()
