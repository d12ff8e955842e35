"""Hostile and broken inputs through the real command line, one subprocess per case.

Every case of tests/cli/fuzz_corpus.py (malformed configs, overrides and options)
and tests/cli/tamper_corpus.py (tampered result directories and checkpoints) must
exit non-zero with one ``error:`` line and no traceback, within a few seconds
under a 3 GiB address-space limit (tests/cli/sandbox.py), writing nothing outside
its output directory; the code-execution checkpoint never runs its command.

The corpus is several hundred cases, each a process of its own: a child forked
by a fork server (tests/cli/fork_server.py) that imported the CLI once, since the
~0.85 s start-up per fresh interpreter was most of the corpus's time. A sample of
cases is also run in fresh interpreters and must answer the same. Cases run a few
at a time from threads and are checked in chunks (each chunk's failures are listed
by case id): they are marked ``slow`` and still run under ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.cli.fuzz_corpus import BASE_TEXT, config_cases, side_files
from tests.cli.sandbox import ServerPool, run_cli, write_files
from tests.cli.tamper_corpus import PWNED, make_ray_dir, report_cases, resume_cases

CONFIG_CASES = config_cases()
SLOW_JOIN_S = 30.0
#: The one-line refusals of an address that is no joinable Ray head
#: (clipasync.runtime.ray_session).
JOIN_ERRORS = tuple(
    f"error: {text}"
    for text in (
        "no Ray cluster answers at",
        "the Ray head at",
        "the Ray cluster at",
        "could not join the Ray cluster at",
    )
)
TAMPER_CASES = report_cases() + resume_cases()
#: Cases running at once (each is one single-threaded CLI process).
PARALLEL = min(4, (os.cpu_count() or 1) + 1)
CHUNKS = 6


def _chunks(cases: Sequence[Any]) -> list[Any]:
    return [pytest.param(list(cases[i::CHUNKS]), id=f"chunk{i}") for i in range(CHUNKS)]


def _failures(cases: list[Any], check: Callable[[Any], list[str]]) -> list[str]:
    """Run ``check`` on every case, ``PARALLEL`` at a time; the problems found,
    each prefixed by its case id."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        found = list(pool.map(check, cases))
    pairs = zip(cases, found, strict=True)
    return [f"{case[0]}: {p}" for case, problems in pairs for p in problems]


@pytest.fixture(scope="module")
def servers() -> Iterator[ServerPool]:
    pool = ServerPool(PARALLEL)
    yield pool
    pool.close()


def _config_case(
    root: Path, case: tuple[str, dict[str, str | bytes], list[str]]
) -> Path:
    cid, files, _ = case
    root = root / cid
    root.mkdir(parents=True)
    write_files(root, side_files())
    write_files(root, files)
    return root


def test_the_corpus_is_as_large_as_promised() -> None:
    assert len(CONFIG_CASES) >= 300
    assert len(TAMPER_CASES) >= 50
    assert len({c[0] for c in CONFIG_CASES + TAMPER_CASES}) == len(CONFIG_CASES) + len(
        TAMPER_CASES
    )


@pytest.mark.slow
@pytest.mark.parametrize("cases", _chunks(CONFIG_CASES))
def test_a_malformed_config_is_one_clear_line(
    tmp_path: Path,
    servers: ServerPool,
    cases: list[tuple[str, dict[str, str | bytes], list[str]]],
) -> None:
    def check(case: tuple[str, dict[str, str | bytes], list[str]]) -> list[str]:
        return run_cli(
            case[2], _config_case(tmp_path, case), servers=servers
        ).problems()

    assert _failures(cases, check) == []


@pytest.mark.slow
def test_a_forked_case_answers_as_a_fresh_interpreter(
    tmp_path: Path, servers: ServerPool
) -> None:
    """The harness's shortcut changes nothing a case can see: the same exit status,
    output and files as the real console entry point in a new interpreter."""
    sample = CONFIG_CASES[:: len(CONFIG_CASES) // 8]
    for case in sample:
        fresh = run_cli(case[2], _config_case(tmp_path / "fresh", case))
        forked = run_cli(
            case[2], _config_case(tmp_path / "forked", case), servers=servers
        )
        assert (forked.rc, forked.stdout, forked.changed) == (
            fresh.rc,
            fresh.stdout,
            fresh.changed,
        ), case[0]
        assert forked.stderr.replace("forked", "fresh") == fresh.stderr, case[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished simulator run directory, written by the real CLI."""
    root = tmp_path_factory.mktemp("finished")
    (root / "cfg.yaml").write_text(BASE_TEXT)
    outcome = run_cli(["run", "cfg.yaml", "--out", "exp", "--no-progress"], root)
    assert outcome.rc == 0, outcome.stderr
    return root / "exp"


@pytest.mark.slow
@pytest.mark.parametrize("cases", _chunks(TAMPER_CASES))
def test_a_tampered_directory_is_one_clear_line(
    tmp_path: Path,
    finished: Path,
    servers: ServerPool,
    cases: list[tuple[str, str, Any]],
) -> None:
    def check(case: tuple[str, str, Any]) -> list[str]:
        cid, command, tamper = case
        root = tmp_path / cid
        (root / "outside").mkdir(parents=True)
        (root / "outside" / "secret.json").write_text('{"secret": 1}')
        exp = root / "exp"
        if command == "resume":
            run = make_ray_dir(finished, exp)
        else:
            shutil.copytree(finished, exp, symlinks=True)
            (run,) = json.loads((exp / "runs.json").read_text())
        tamper(exp, run)
        target = str(exp / "runs" / run) if command == "trace" else "exp"
        outcome = run_cli([command, target], root, servers=servers)
        problems = outcome.problems(allowed=("exp",))
        if command == "resume" and outcome.seconds < SLOW_JOIN_S:
            # Joining an address that accepts connections (a proxy does) but is no
            # Ray ends with Ray's own connect timeout: bounded, not "a few seconds".
            problems = [p for p in problems if not p.startswith("took")]
            last = outcome.stderr.strip().splitlines()[-1:]
            if last and (
                last[0].startswith(JOIN_ERRORS)
                or "accepts connections but no Ray head answered" in last[0]
            ):
                # ... and Ray's core logs its own failed attempts on stderr first.
                problems = [p for p in problems if not p.startswith("not one error")]
        if (root / PWNED).exists() or (root / "pwned").exists():
            problems.append("the checkpoint's command ran")
        return problems

    assert _failures(cases, check) == []
