"""Run the real ``clipasync`` command in a subprocess, in a sandbox folder, with
bounded time and memory; report what it printed and what it touched."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import clipasync

#: Address-space cap of the child (numpy, pydantic and the CLI need ~1 GiB).
MEMORY_BYTES = 3 << 30
#: Wall-clock cap: a case still running then is a hang.
TIMEOUT_S = 30.0
#: What "within a few seconds" means for one refused case (start-up included).
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


def run_cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT_S,
) -> Outcome:
    """Run ``clipasync ARGS`` in ``cwd`` (HOME is ``cwd/home``) with the limits."""
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    full_env = {
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
    before = _snapshot(cwd)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", LIMITED_ENTRY, *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
        rc: int | None = proc.returncode
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = None
        stdout = str(exc.stdout or "")
        stderr = str(exc.stderr or "")
    seconds = time.perf_counter() - t0
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
