"""Hostile and broken inputs through the real command line, one subprocess per case.

Every case of tests/cli/fuzz_corpus.py (malformed configs, overrides and options)
and tests/cli/tamper_corpus.py (tampered result directories and checkpoints) must
exit non-zero with one ``error:`` line and no traceback, within a few seconds
under a 3 GiB address-space limit (tests/cli/sandbox.py), writing nothing outside
its output directory; the code-execution checkpoint never runs its command.

The corpus is several hundred subprocesses (~1 s each, the CLI's start-up): it
is marked ``slow`` and still runs under ``make test``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.fuzz_corpus import BASE_TEXT, config_cases, side_files
from tests.cli.sandbox import run_cli, write_files
from tests.cli.tamper_corpus import PWNED, make_ray_dir, report_cases, resume_cases

CONFIG_CASES = config_cases()
SLOW_JOIN_S = 30.0
TAMPER_CASES = report_cases() + resume_cases()


def test_the_corpus_is_as_large_as_promised() -> None:
    assert len(CONFIG_CASES) >= 300
    assert len(TAMPER_CASES) >= 50
    assert len({c[0] for c in CONFIG_CASES + TAMPER_CASES}) == len(CONFIG_CASES) + len(
        TAMPER_CASES
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("files", "args"),
    [pytest.param(f, a, id=cid) for cid, f, a in CONFIG_CASES],
)
def test_a_malformed_config_is_one_clear_line(
    tmp_path: Path, files: dict[str, str | bytes], args: list[str]
) -> None:
    write_files(tmp_path, side_files())
    write_files(tmp_path, files)
    outcome = run_cli(args, tmp_path)
    assert outcome.problems() == []


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished simulator run directory, written by the real CLI."""
    root = tmp_path_factory.mktemp("finished")
    (root / "cfg.yaml").write_text(BASE_TEXT)
    outcome = run_cli(["run", "cfg.yaml", "--out", "exp", "--no-progress"], root)
    assert outcome.rc == 0, outcome.stderr
    return root / "exp"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "tamper"),
    [pytest.param(c, t, id=cid) for cid, c, t in TAMPER_CASES],
)
def test_a_tampered_directory_is_one_clear_line(
    tmp_path: Path, finished: Path, command: str, tamper: object
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.json").write_text('{"secret": 1}')
    exp = tmp_path / "exp"
    if command == "resume":
        run = make_ray_dir(finished, exp)
    else:
        shutil.copytree(finished, exp, symlinks=True)
        (run,) = __import__("json").loads((exp / "runs.json").read_text())
    tamper(exp, run)  # type: ignore[operator]
    target = str(exp / "runs" / run) if command == "trace" else "exp"
    outcome = run_cli([command, target], tmp_path)
    problems = outcome.problems(allowed=("exp",))
    if command == "resume" and outcome.seconds < SLOW_JOIN_S:
        # Joining an address that accepts connections (a proxy does) but is no Ray
        # ends with Ray's own connect timeout, ~20 s: bounded, not "a few seconds".
        problems = [p for p in problems if not p.startswith("took")]
        last = outcome.stderr.strip().splitlines()[-1:]
        if last and last[0].startswith("error: cannot join the Ray cluster"):
            # ... and Ray's core logs its own failed attempts on stderr first.
            problems = [p for p in problems if not p.startswith("not one error")]
    assert problems == []
    assert not (tmp_path / PWNED).exists()
    assert not (tmp_path / "pwned").exists()
