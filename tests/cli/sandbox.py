"""Run the real ``clipasync`` command in a subprocess, in a sandbox folder, with
bounded time and memory; report what it printed and what it touched."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import clipasync

#: Address-space cap of the child (numpy, pydantic and the CLI need ~1 GiB).
MEMORY_BYTES = 3 << 30
#: Wall-clock cap: a case still running then is a hang.
TIMEOUT_S = 30.0
#: What "within a few seconds" means for one refused case (a fresh interpreter's
#: start-up included; a forked case has none to pay).
FEW_SECONDS = 10.0
SRC = str(Path(clipasync.__file__).resolve().parents[1])
#: matplotlib's font cache, shared by the cases and kept out of the sandbox (a
#: cache in the user's config folder is matplotlib's, not a result).
MPL_DIR = Path(tempfile.gettempdir()) / f"clipasync-fuzz-mpl-{os.getuid()}"
ENTRY = "from clipasync.cli import main; main()"
#: The child caps its own address space and core size before the CLI starts (no
#: ``preexec_fn``: the corpus starts cases from several threads, where it is unsafe).
LIMITED_ENTRY = (
    "import resource as r; "
    f"r.setrlimit(r.RLIMIT_AS, ({MEMORY_BYTES}, {MEMORY_BYTES})); "
    "r.setrlimit(r.RLIMIT_CORE, (0, 0)); " + ENTRY
)


@dataclass
class Outcome:
    """One command's exit status, output, time and the sandbox files it changed."""

    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    changed: list[str]

    @property
    def hung(self) -> bool:
        return self.rc is None

    def problems(self, allowed: tuple[str, ...] = ("out",)) -> list[str]:
        """What is wrong with a refusal: [] when it is one clean error line."""
        out: list[str] = []
        if self.hung:
            return [f"hang: still running after {TIMEOUT_S:.0f} s"]
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        if self.rc == 0:
            out.append("exit status 0")
        if "Traceback" in self.stderr or "Traceback" in self.stdout:
            out.append("traceback")
        if len(lines) != 1 or not lines[0].startswith("error: "):
            out.append(f"not one error line: {self.stderr[-300:]!r}")
        if self.stdout.strip():
            out.append(f"stdout: {self.stdout[-200:]!r}")
        if self.seconds > FEW_SECONDS:
            out.append(f"took {self.seconds:.1f} s")
        stray = [p for p in self.changed if not p.startswith(allowed)]
        if stray:
            out.append(f"wrote outside the output directory: {stray[:5]}")
        return out


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in root.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _environment(home: Path, env: dict[str, str] | None) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": SRC,
        "HOME": str(home),
        "MPLCONFIGDIR": str(MPL_DIR),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "COLUMNS": "200",
        **(env or {}),
    }


class ForkServer:
    """One tests/cli/fork_server.py process: the CLI imported once, a fork per case."""

    def __init__(self) -> None:
        home = Path(tempfile.mkdtemp(prefix="clipasync-fork-server-"))
        self._home = home
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("fork_server.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_environment(home, None),
            cwd=home,
            text=True,
        )

    def run(
        self, args: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> tuple[int | None, str, str, float]:
        """Run one case; (exit status or None if killed at ``timeout``, stdout, stderr,
        seconds)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with tempfile.TemporaryDirectory(prefix="clipasync-case-") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {
                "args": args,
                "cwd": str(cwd),
                "env": env,
                "stdout": str(out),
                "stderr": str(err),
                "timeout": timeout,
                "memory": MEMORY_BYTES,
            }
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            if not line:
                raise RuntimeError("the fork server ended")
            reply = json.loads(line)
            read = {"encoding": "utf-8", "errors": "replace"}
            stdout = out.read_text(**read) if out.exists() else ""
            stderr = err.read_text(**read) if err.exists() else ""
        return reply["rc"], stdout, stderr, float(reply["seconds"])

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._home, ignore_errors=True)


class ServerPool:
    """``size`` fork servers, lent one at a time to the threads that run cases."""

    def __init__(self, size: int) -> None:
        self._all = [ForkServer() for _ in range(size)]
        self._free: queue.Queue[ForkServer] = queue.Queue()
        for server in self._all:
            self._free.put(server)

    @contextmanager
    def lend(self) -> Iterator[ForkServer]:
        server = self._free.get()
        try:
            yield server
        finally:
            self._free.put(server)

    def close(self) -> None:
        for server in self._all:
            server.close()


def _subprocess(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> tuple[int | None, str, str]:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", LIMITED_ENTRY, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
        return proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        return None, str(exc.stdout or ""), str(exc.stderr or "")


def run_cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT_S,
    servers: ServerPool | None = None,
) -> Outcome:
    """Run ``clipasync ARGS`` in ``cwd`` (HOME is ``cwd/home``) with the limits: a
    fresh interpreter, or a child forked by one of ``servers`` (same limits, same
    entry point, without paying the imports again)."""
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    full_env = _environment(home, env)
    before = _snapshot(cwd)
    t0 = time.perf_counter()
    if servers is None:
        rc, stdout, stderr = _subprocess(args, cwd, full_env, timeout)
        seconds = time.perf_counter() - t0
    else:
        with servers.lend() as server:
            rc, stdout, stderr, seconds = server.run(args, cwd, full_env, timeout)
    after = _snapshot(cwd)
    changed = sorted(
        p
        for p in set(before) | set(after)
        if before.get(p) != after.get(p) and not p.startswith("home")
    )
    home_files = [str(p) for p in home.rglob("*") if p.is_file()]
    return Outcome(rc, stdout, stderr, seconds, changed + home_files)


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    """Write ``files`` (name -> text or bytes) under ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
