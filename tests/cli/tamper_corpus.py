"""Tampered result directories and checkpoints that ``clipasync report``, ``trace``
and ``resume`` must refuse with one line (tests/cli/test_fuzz.py).

Each case is ``(case_id, command, tamper)``: ``command`` is ``report``, ``trace``
(on the run's folder) or ``resume`` (on a Ray-style directory with a checkpoint);
``tamper(root, run)`` edits the copy in place (``root`` the experiment directory,
``run`` the run id). Files outside the directory that a case points at live in
``<sandbox>/outside/``.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.cli.fuzz_corpus import BASE_TEXT, _bomb

Tamper = Callable[[Path, str], None]
TamperCase = tuple[str, str, Tamper]
#: The marker the code-execution case would create if the command ran.
PWNED = "outside/pwned"


def _write(rel: str, content: str | bytes) -> Tamper:
    def go(root: Path, run: str) -> None:
        path = root / rel.format(run=run)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return go


def _json_edit(rel: str, **changes: Any) -> Tamper:
    def go(root: Path, run: str) -> None:
        path = root / rel.format(run=run)
        data = json.loads(path.read_text())
        data.update(changes)
        path.write_text(json.dumps(data))

    return go


def _remove(rel: str) -> Tamper:
    def go(root: Path, run: str) -> None:
        path = root / rel.format(run=run)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return go


def _mkdir(rel: str) -> Tamper:
    def go(root: Path, run: str) -> None:
        path = root / rel.format(run=run)
        path.unlink(missing_ok=True)
        path.mkdir()

    return go


def _symlink_out(rel: str, target: str) -> Tamper:
    def go(root: Path, run: str) -> None:
        path = root / rel.format(run=run)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        path.symlink_to(root.parent / "outside" / target)

    return go


def _gz_edit(rel: str, transform: Callable[[bytes], bytes]) -> Tamper:
    def go(root: Path, run: str) -> None:
        path = root / rel.format(run=run)
        path.write_bytes(transform(path.read_bytes()))

    return go


def _csv_gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


@functools.cache
def gzip_bomb() -> bytes:
    """A gzip CSV that inflates to 300 MiB (over the 256 MiB read limit), ~1 MB."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=1) as gz:
        gz.write(b"time,delay\n")
        chunk = b"1,2\n" * (1 << 18)  # 1 MiB
        for _ in range(300):
            gz.write(chunk)
    return buf.getvalue()


def _arrivals_bomb(root: Path, run: str) -> None:
    (root / ARRIVALS.format(run=run)).write_bytes(gzip_bomb())


SUMMARY = "runs/{run}/summary.json"
EVALS = "runs/{run}/evals.csv"
ARRIVALS = "runs/{run}/arrivals.csv.gz"
CKPT = "checkpoints/{run}/checkpoint.json"


def report_cases() -> list[TamperCase]:
    """Tampered simulator run directories for ``report`` and ``trace``."""
    s = SUMMARY
    cases: list[tuple[str, Tamper]] = [
        ("runs_json_parent", _write("runs.json", '["../../../../etc"]')),
        ("runs_json_absolute", _write("runs.json", '["/etc"]')),
        ("runs_json_dotdot", _write("runs.json", '[".."]')),
        ("runs_json_object", _write("runs.json", '{"a": 1}')),
        ("runs_json_ints", _write("runs.json", "[1, 2]")),
        ("runs_json_garbage", _write("runs.json", "not json")),
        ("runs_json_deep", _write("runs.json", "[" * 100_000)),
        ("runs_json_binary", _write("runs.json", b"\xff\xfe\x00")),
        ("runs_json_long_id", _write("runs.json", json.dumps(["x" * 1000]))),
        ("runs_json_dir", _mkdir("runs.json")),
        ("runs_json_empty_list", _write("runs.json", "[]")),
        ("runs_json_unknown_id", _write("runs.json", '["nope"]')),
        ("summary_garbage", _write(s, "garbage")),
        ("summary_list", _write(s, "[]")),
        ("summary_deep", _write(s, "[" * 50_000 + "]" * 50_000)),
        ("summary_binary", _write(s, b"\xff\xfe{}")),
        ("summary_sim_time_text", _json_edit(s, sim_time="abc")),
        ("summary_sim_time_nan", _write(s, '{"sim_time": NaN}')),
        ("summary_seed_negative", _json_edit(s, seed=-1)),
        ("summary_seed_float", _json_edit(s, seed=1.5)),
        ("summary_reached_text", _json_edit(s, reached="yes")),
        ("summary_method_int", _json_edit(s, method=5)),
        ("summary_run_id_path", _json_edit(s, run_id="../../x")),
        ("summary_final_list", _json_edit(s, final=[])),
        ("summary_final_text", _json_edit(s, final={"loss": "x"})),
        ("summary_counts_text", _json_edit(s, counts="x")),
        ("summary_hit_negative", _json_edit(s, time_to_target=-5)),
        ("summary_version_negative", _json_edit(s, version=-1)),
        ("summary_hyper_int", _json_edit(s, hyper=5)),
        ("summary_stage_int", _json_edit(s, stage=5)),
        ("summary_sweep_int", _json_edit(s, sweep=5)),
        ("summary_no_method", _json_edit(s, method=None)),
        ("summary_symlink_out", _symlink_out(s, "secret.json")),
        ("run_dir_symlink_out", _symlink_out("runs/{run}", "")),
        ("summary_removed", _remove(s)),
        ("config_bomb", _write("config.resolved.yaml", BASE_TEXT + _bomb())),
        ("config_dup", _write("config.resolved.yaml", BASE_TEXT + "name: y\n")),
        ("config_list", _write("config.resolved.yaml", "- a\n- b\n")),
        ("config_removed", _remove("config.resolved.yaml")),
        ("config_binary", _write("config.resolved.yaml", b"\xff\xfe\xfa")),
        ("config_deep", _write("config.resolved.yaml", "[" * 5000 + "]" * 5000)),
        ("config_symlink_dir", _mkdir("config.resolved.yaml")),
        ("evals_garbage", _write(EVALS, "time,loss\nx,y\n")),
        ("evals_ragged", _write(EVALS, "time,loss\n1\n")),
        ("evals_binary", _write(EVALS, b"time\n\xff\xfe\n")),
        ("evals_dir", _mkdir(EVALS)),
        ("evals_no_time", _write(EVALS, "loss,suboptimality\n1,2\n")),
        ("evals_huge_cell", _write(EVALS, "time\n" + "1" * 200_000 + "\n")),
        ("arrivals_truncated", _gz_edit(ARRIVALS, lambda b: b[: len(b) // 2])),
        ("arrivals_not_gzip", _write(ARRIVALS, b"plain text, not gzip")),
        ("arrivals_bomb", _arrivals_bomb),
        ("arrivals_no_delay", _write(ARRIVALS, _csv_gz("time,worker\n1,0\n"))),
        ("arrivals_text_cell", _write(ARRIVALS, _csv_gz("time,delay\n1,abc\n"))),
        ("arrivals_binary", _write(ARRIVALS, gzip.compress(b"\xff\xfe\n", mtime=0))),
    ]
    out = [(f"report:{name}", "report", fn) for name, fn in cases]
    trace = [
        ("summary_garbage", _write(s, "garbage")),
        ("summary_timing_int", _json_edit(s, timing=5)),
        ("summary_policy_unknown", _json_edit(s, policy="nope")),
        ("summary_hyper_unknown", _json_edit(s, hyper={"bogus": 1})),
        ("arrivals_truncated", _gz_edit(ARRIVALS, lambda b: b[: len(b) // 2])),
        ("arrivals_removed", _remove(ARRIVALS)),
        ("arrivals_no_delay", _write(ARRIVALS, _csv_gz("time,worker\n1,0\n"))),
    ]
    out += [(f"trace:{name}", "trace", fn) for name, fn in trace]
    return out


def _ckpt(**changes: Any) -> Tamper:
    return _json_edit(CKPT, **changes)


def _arrays(make: Callable[[Path], None]) -> Tamper:
    def go(root: Path, run: str) -> None:
        meta = json.loads((root / CKPT.format(run=run)).read_text())
        make(root / "checkpoints" / run / meta["arrays"])

    return go


def _object_array(path: Path) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, a0=np.array([object()], dtype=object))


def _code_exec(root: Path, run: str) -> None:
    marker = root.parent / PWNED
    state = {
        "__namedtuple__": "clipasync.checkpoint:os.system",
        "fields": {"command": f"touch {marker}"},
    }
    _ckpt(state=state)(root, run)


def _settings(**changes: Any) -> Tamper:
    return _json_edit("backend.json", **changes)


def resume_cases() -> list[TamperCase]:
    """Tampered Ray experiment directories (settings and checkpoints)."""
    cases: list[tuple[str, Tamper]] = [
        ("backend_removed", _remove("backend.json")),
        ("backend_garbage", _write("backend.json", "{not json")),
        ("backend_list", _write("backend.json", "[]")),
        ("address_int", _settings(address=12345)),
        ("address_unroutable", _settings(address="10.255.255.1:6379")),
        ("address_refused", _settings(address="127.0.0.1:1")),
        ("address_long", _settings(address="x" * 1000 + ":1")),
        ("address_bad_port", _settings(address="127.0.0.1:99999")),
        ("address_shell", _settings(address="$(touch pwned):1")),
        ("time_unit_text", _settings(time_unit_s="abc")),
        ("time_unit_negative", _settings(time_unit_s=-1)),
        ("time_unit_huge", _settings(time_unit_s=1e30)),
        ("time_unit_nan", _write("backend.json", '{"time_unit_s": NaN}')),
        ("time_unit_bool", _settings(time_unit_s=True)),
        ("inject_text", _settings(inject_delays="yes")),
        ("checkpoint_every_zero", _settings(checkpoint_every=0)),
        ("checkpoint_every_float", _settings(checkpoint_every=1.5)),
        ("overrides_text", _settings(overrides="x")),
        ("overrides_bad", _settings(overrides=["seeds=[-1]"])),
        ("overrides_bomb", _settings(overrides=["seeds=" + "[" * 3000])),
        ("profile_int", _settings(profile=5)),
        ("profile_unknown", _settings(profile="nope")),
        ("source_removed", _remove("config.source.yaml")),
        ("source_bomb", _write("config.source.yaml", BASE_TEXT + _bomb())),
        ("code_execution", _code_exec),
        ("arrays_parent", _ckpt(arrays="../../../etc/passwd")),
        ("arrays_absolute", _ckpt(arrays="/etc/passwd")),
        ("arrays_missing", _ckpt(arrays="nope.npz")),
        ("arrays_int", _ckpt(arrays=5)),
        ("format_other", _ckpt(format=2)),
        ("version_negative", _ckpt(version=-1)),
        ("version_text", _ckpt(version="1")),
        ("time_negative", _ckpt(time=-1.0)),
        ("time_code", _ckpt(time={"__float__": "__import__('os')"})),
        ("keep_arrivals_text", _ckpt(keep_arrivals="x")),
        ("counts_text", _ckpt(counts={"arrivals": "b"})),
        ("next_job_float", _ckpt(next_job=1.5)),
        ("ckpt_garbage", _write(CKPT, "{garbage")),
        ("ckpt_deep", _write(CKPT, "[" * 100_000)),
        ("ckpt_list", _write(CKPT, "[]")),
        ("ckpt_binary", _write(CKPT, b"\xff\xfe")),
        ("npz_not_zip", _arrays(lambda p: p.write_bytes(b"not a zip"))),
        ("npz_truncated", _arrays(lambda p: p.write_bytes(p.read_bytes()[:40]))),
        ("npz_pickle", _arrays(_object_array)),
        ("state_foreign_class", _ckpt(state={"__dataclass__": "os:PathLike"})),
        ("state_subprocess", _ckpt(state={"__dataclass__": "subprocess:Popen"})),
        ("state_unknown_tag", _ckpt(state={"__evil__": 1})),
        ("state_missing_array", _ckpt(state={"__array__": "a99"})),
        ("state_scalar_object", _ckpt(state={"__scalar__": "O", "value": 1})),
        (
            "state_bad_generator",
            _ckpt(state={"__generator__": {"__dict__": {"bit_generator": "PCG64"}}}),
        ),
        (
            "state_foreign_generator",
            _ckpt(state={"__generator__": {"__dict__": {"bit_generator": "os"}}}),
        ),
        (
            "state_wrong_fields",
            _ckpt(
                state={
                    "__dataclass__": "clipasync.policies.async_sgd:AsyncState",
                    "fields": {"evil": 1},
                }
            ),
        ),
        (
            "state_deep",
            _write(CKPT, '{"format": 1, "state": ' + "[" * 5000 + "]" * 5000 + "}"),
        ),
        ("ckpt_dir_symlink_out", _symlink_out("checkpoints/{run}", "")),
    ]
    return [(f"resume:{name}", "resume", fn) for name, fn in cases]


def make_ray_dir(sim_dir: Path, dest: Path) -> str:
    """A Ray-style experiment directory (settings, source, one checkpointed
    unfinished run) built from a finished simulator directory; returns the run id."""
    from clipasync.checkpoint import Checkpoint, save_checkpoint

    shutil.copytree(sim_dir, dest, symlinks=True)
    (run,) = json.loads((dest / "runs.json").read_text())
    shutil.rmtree(dest / "runs" / run)
    (dest / "config.source.yaml").write_text(BASE_TEXT)
    (dest / "backend.json").write_text(
        json.dumps(
            {
                "overrides": [],
                "profile": None,
                "backend": "ray",
                "address": None,
                "time_unit_s": 0.05,
                "inject_delays": True,
                "checkpoint_every": 200,
            }
        )
    )
    ck = Checkpoint(state=None, policy={}, version=1, time=1.0, counts={}, next_job=2)
    save_checkpoint(dest / "checkpoints" / run, ck)
    os.utime(dest)
    return str(run)


__all__ = ["PWNED", "make_ray_dir", "report_cases", "resume_cases"]
