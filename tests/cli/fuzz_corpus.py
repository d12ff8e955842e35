"""A corpus of malformed experiment files, ``--set`` overrides and command lines,
each of which ``clipasync run`` must refuse with one line (tests/cli/test_fuzz.py).

Every case is ``(case_id, files, args)``: ``files`` maps a file name (in the
sandbox folder the command runs in) to its text or bytes, ``args`` is the command
line after ``clipasync``. The base experiment is tiny and valid; each case breaks
one thing.
"""

from __future__ import annotations

import functools
from typing import Any

import yaml

BASE: dict[str, Any] = {
    "name": "fz",
    "seeds": [0],
    "problem": {
        "name": "least_squares",
        "num_samples": 40,
        "dim": 4,
        "batch_size": 4,
        "seed": 0,
    },
    "timing": {"kind": "two_speed", "num_fast": 1, "num_slow": 1, "slow_time": 2},
    "methods": {"clipped": {"policy": "async_sgd", "stepsize": [0.1], "max_norm": 1}},
    "stop": {"max_time": 5, "target": {"metric": "suboptimality", "value": 0.5}},
    "eval_every": 1,
    "workers": 1,
}
BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)

Case = tuple[str, dict[str, str | bytes], list[str]]

#: Values that are wrong for any number: booleans, null, text, lists, maps,
#: non-finite floats.
NOT_A_NUMBER = ["true", "false", "null", "abc", "'3'", "[1, 2]", "{a: 1}", ".nan"]
NON_FINITE = [".inf", "-.inf"]
NOT_POSITIVE = ["0", "-1", "-0.5"]
NOT_AN_INT = ["1.5", "2.0", "1e30"]

#: Field -> its wrong values (each one a ``--set field=value`` case).
FIELD_CASES: dict[str, list[str]] = {
    "seeds": [
        *(v for v in NOT_A_NUMBER if v != "[1, 2]"),
        "-1",
        "[-1]",
        "[1.5]",
        "[true]",
        "[.nan]",
        "[]",
        "[0, 0]",
        "1e30",
        "{first: -1, count: 2}",
        "{first: 0, count: 10000000000}",
        "{first: 0}",
    ],
    "problem.seed": [*NOT_A_NUMBER, *NON_FINITE, "-1", "1.5", "1e30", "[0]"],
    "problem.dim": [*NOT_A_NUMBER, *NON_FINITE, *NOT_POSITIVE, "1.5"],
    "problem.num_samples": [*NOT_A_NUMBER, *NON_FINITE, *NOT_POSITIVE, "1.5"],
    "problem.batch_size": [*NOT_A_NUMBER, *NOT_POSITIVE, "1.5", "1000"],
    "problem.name": ["nope", "123", "null", "true", "''", "'" + "x" * 300 + "'"],
    "problem.noise": ["nope", "1", "[]", "{kind: nope}", "{theta: 2}"],
    "problem.noise.kind": ["nope", "null", "1"],
    "problem.bogus_key": ["1"],
    "timing.kind": ["nope", "null", "1", "true", "[two_speed]"],
    "timing.num_fast": [*NOT_A_NUMBER, *NON_FINITE, "-1", *NOT_AN_INT, "30000000"],
    "timing.num_slow": [*NOT_A_NUMBER, "-1", "1.5", "1e30"],
    "timing.slow_time": [*NOT_A_NUMBER, *NON_FINITE, *NOT_POSITIVE, "1e400"],
    "timing.fast_time": [*NOT_A_NUMBER, *NON_FINITE, *NOT_POSITIVE],
    "timing.times": ["[1, 2]", "[]"],
    "timing.bogus": ["1"],
    "methods.clipped.stepsize": [
        *(v for v in NOT_A_NUMBER if v != "[1, 2]"),
        *NON_FINITE,
        *NOT_POSITIVE,
        "[]",
        "[0.1, abc]",
        "[0.1, true]",
        "{base: 2, min_exp: 0, max_exp: 3000000}",
        "{base: 1e300, min_exp: 0, max_exp: 5}",
        "{base: 0, min_exp: 0, max_exp: 1}",
        "{base: 2, min_exp: 1.5, max_exp: 2}",
        "{base: 2, min_exp: 0}",
        "{base: 2, min_exp: 0, max_exp: 1, extra: 1}",
        "{base: true, min_exp: 0, max_exp: 1}",
    ],
    "methods.clipped.max_norm": [
        *(v for v in NOT_A_NUMBER if v not in ("[1, 2]", "null")),
        *NON_FINITE,
        *NOT_POSITIVE,
        "[]",
    ],
    "methods.clipped.policy": ["nope", "null", "1", "[async_sgd]"],
    "methods.clipped.bogus": ["1"],
    "methods.clipped": ["null", "1", "[]", "{}", "{stepsize: 0.1}"],
    "methods": ["null", "{}", "[]", "1"],
    "methods.rm": [
        "{policy: ringmaster, stepsize: 0.1, max_delay: 0}",
        "{policy: ringmaster, stepsize: 0.1, max_delay: -1}",
        "{policy: ringmaster, stepsize: 0.1, max_delay: 1.5}",
        "{policy: ringmaster, stepsize: 0.1, max_delay: true}",
        "{policy: ringmaster, stepsize: 0.1, max_delay: .nan}",
    ],
    "stop.max_time": [*NOT_A_NUMBER, *NON_FINITE, *NOT_POSITIVE, "1e30"],
    "stop.max_updates": [*NOT_A_NUMBER, *NOT_POSITIVE, "1.5", "1e30"],
    "stop.max_arrivals": [*NOT_A_NUMBER, *NOT_POSITIVE, "1.5", "1e30"],
    "stop.target.value": [*NOT_A_NUMBER, *NON_FINITE],
    "stop.target.metric": ["null", "1", "[loss]", "nope"],
    "stop.target.confirm": ["0", "-1", "1.5", "true", "abc"],
    "stop.target": ["1", "[]", "{value: 0.1}", "{metric: loss}"],
    "stop.diverge_factor": ["1", "0.5", ".nan", ".inf", "true", "null", "abc"],
    "stop": ["null", "{}", "[]", "{target: {metric: loss, value: 1}}"],
    "eval_every": [*NOT_A_NUMBER, *NON_FINITE, *NOT_POSITIVE, "1e-7"],
    "workers": ["0", "-1", "1.5", "true", "abc", "null", "1e30", "100000"],
    "record_arrivals": ["'no'", "'yes'", "1", "0", "null", "abc"],
    "name": ["''", "'a b'", "'../x'", "123", "null", "'" + "n" * 300 + "'"],
    "reference": ["nope", "1", "true"],
    "sweep": ["{}", "[]", "1", "{seeds: [1]}", "{name: [a]}", "{workers: [1]}"],
    "sweep.timing.slow_time": ["[]", "[-1]", "[abc]", "[true]", "[.nan]"],
    "sweep.problem.dim": ["[0]", "[1.5]"],
    "sweep.methods.clipped.max_norm": ["[-1]"],
    "protocol": [
        "{tuning_seeds: [0], eval_seeds: [0]}",
        "{tuning_seeds: [], eval_seeds: [1]}",
        "{tuning_seeds: [0], eval_seeds: {first: 1, count: 1e30}}",
        "{tuning_seeds: [0], eval_seeds: {first: 1, count: 100000000000}}",
        "{tuning_seeds: [-1], eval_seeds: [1]}",
        "{tuning_seeds: [0]}",
        "{tuning_seeds: [0], eval_seeds: [1], confidence: 1.5}",
        "{tuning_seeds: [0], eval_seeds: [1], select_by: nope}",
        "{tuning_seeds: [0], eval_seeds: [1], equal_budget: 'no'}",
        "{tuning_seeds: [0], eval_seeds: [1], refine: {factor: 1}}",
        "1",
    ],
    "availability": [
        "{dropout: {kind: nope}}",
        "{dropout: {kind: bernoulli, p: 2}}",
        "{dropout: {kind: bernoulli, p: .nan}}",
        "{open_system: {rate: -1}}",
        "{open_system: {rate: true}}",
        "1",
    ],
    "diagnostics": [
        "{tail_index: {num_samples: 1}}",
        "{tail_index: {at: []}}",
        "{tail_index: {methods: [nope]}}",
        "{tail_index: {seed: -1}}",
        "{bogus: 1}",
    ],
    "paper_reference": ["{x: {y: -1}}", "{x: {y: abc}}", "1"],
    "bogus_top_level": ["1"],
    "profile": ["1"],
}

#: Overrides that are malformed as text.
BAD_OVERRIDES = [
    "noequals",
    "=1",
    "a..b=1",
    ".a=1",
    "methods=[1",
    "seeds=[0, 1",
    "name='unterminated",
    "problem.dim.x=1",
    "seeds.x=1",
    "seeds=&a [*a]",
    "methods={a: 1, a: 2}",
    "seeds=" + "[" * 2000 + "]" * 2000,
    "seeds=\t[0]",
]


def _bomb(levels: int = 9) -> str:
    lines = ["x0: &x0 [a, a, a, a, a, a, a, a, a]"]
    lines += [
        f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]" for i in range(1, levels)
    ]
    return "\n".join(lines) + "\n"


def _with(**changes: Any) -> str:
    data = {**BASE, **changes}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None})


#: Whole files that are broken as YAML, as text or as files.
BAD_FILES: dict[str, str | bytes] = {
    "alias_bomb": BASE_TEXT + _bomb(),
    "alias_bomb_in_methods": BASE_TEXT.replace("methods:", "junk: *x8\nmethods:", 1)
    + _bomb(),
    "deep_nesting": BASE_TEXT + "junk: " + "[" * 3000 + "]" * 3000 + "\n",
    "deep_block_nesting": BASE_TEXT
    + "junk:\n"
    + "".join(" " * i + "- \n" for i in range(1, 400)),
    "self_alias": BASE_TEXT + "junk: &s [1, *s]\n",
    "unknown_alias": BASE_TEXT + "junk: *nowhere\n",
    "duplicate_methods": BASE_TEXT
    + "methods: {other: {policy: async_sgd, stepsize: 1}}\n",
    "duplicate_stop": BASE_TEXT + "stop: {max_time: 1}\n",
    "duplicate_nested": BASE_TEXT.replace("name: fz", "name: fz\nseeds: [1]", 1),
    "duplicate_in_flow": BASE_TEXT + "junk: {a: 1, b: 2, a: 3}\n",
    "tabs": "name:\tfz\n\tseeds: [0]\n",
    "not_utf8": b"name: \xff\xfe\xfa\n" + BASE_TEXT.encode(),
    "utf16": BASE_TEXT.encode("utf-16"),
    "binary": bytes(range(256)) * 4,
    "nul_bytes": BASE_TEXT.encode() + b"\x00\x00",
    "empty": "",
    "only_comment": "# nothing\n",
    "a_list": "- 1\n- 2\n",
    "a_number": "42\n",
    "a_string": "hello\n",
    "null_doc": "null\n",
    "two_documents": BASE_TEXT + "---\n" + BASE_TEXT,
    "unterminated": "name: 'fz\n",
    "bad_indent": "name: fz\n  seeds: [0]\n seeds: [1]\n",
    "mapping_key": BASE_TEXT + "? [a, b]\n: 1\n",
    "python_tag": BASE_TEXT + "junk: !!python/object/apply:os.system ['touch pwned']\n",
    "unknown_tag": BASE_TEXT + "junk: !custom 1\n",
    "huge_file": BASE_TEXT + "# " + "x" * (2 << 20) + "\n",
    "huge_scalar": BASE_TEXT + "description: " + "x" * (2 << 20) + "\n",
    "no_methods": _with(methods=None),
    "no_stop": _with(stop=None),
    "no_problem": _with(problem=None),
    "no_timing": _with(timing=None),
    "no_name": _with(name=None),
    "long_method_name": _with(
        methods={"m" * 300: {"policy": "async_sgd", "stepsize": 0.1}}
    ),
    "odd_method_name": _with(methods={"a/b": {"policy": "async_sgd", "stepsize": 1}}),
    "method_name_dots": _with(methods={"../x": {"policy": "async_sgd", "stepsize": 1}}),
    "huge_grid": _with(
        methods={
            "clipped": {
                "policy": "async_sgd",
                "stepsize": list(range(1, 1801)),
                "max_norm": list(range(1, 1801)),
            }
        }
    ),
    "huge_sweep": _with(
        sweep={
            "timing.slow_time": list(range(1, 2001)),
            "problem.dim": list(range(1, 2001)),
        }
    ),
    "target_true": _with(
        stop={"max_time": 5, "target": {"metric": "loss", "value": True}}
    ),
    "endless_updates": _with(stop={"max_updates": 10**30}, eval_every=None),
    "endless_time": _with(stop={"max_time": 1e30}, eval_every=None),
    "eval_every_tiny": _with(eval_every=1e-7),
    "trace_missing": _with(timing={"kind": "trace", "path": "no_such.csv"}),
    "trace_is_folder": _with(timing={"kind": "trace", "path": "folder"}),
    "trace_huge_worker": _with(timing={"kind": "trace", "path": "bigworker.csv"}),
    "trace_garbage": _with(timing={"kind": "trace", "path": "garbage.csv"}),
    "trace_negative": _with(timing={"kind": "trace", "path": "negative.csv"}),
    "trace_nan": _with(timing={"kind": "trace", "path": "nan.csv"}),
    "trace_empty": _with(timing={"kind": "trace", "path": "empty.csv"}),
    "trace_bomb": _with(timing={"kind": "trace", "path": "bomb.csv.gz"}),
}


#: Side files some of the cases above name (a trace, a folder).
@functools.cache
def side_files() -> dict[str, str | bytes]:
    """Files that the trace cases read, in the sandbox next to the config (built
    once: the gzip bomb takes a second to compress)."""
    import gzip

    bomb = gzip.compress(b"worker,compute_time\n" + b"0,1.0\n" * (50 << 20), 9)
    return {
        "bigworker.csv": "worker,compute_time\n0,1.0\n30000000,1.0\n1,2.0\n",
        "garbage.csv": "this is not,a trace\n\x01,\x02\n",
        "negative.csv": "worker,compute_time\n0,-1.0\n1,1.0\n",
        "nan.csv": "worker,compute_time\n0,nan\n1,1.0\n",
        "empty.csv": "",
        "bomb.csv.gz": bomb,
        "folder/.keep": "",
    }


def config_cases() -> list[Case]:
    """Every malformed-config case: overrides, override texts, files, options."""
    base = {"cfg.yaml": BASE_TEXT}
    run = ["run", "cfg.yaml", "--out", "out", "--no-progress"]
    cases: list[Case] = []
    for field, values in FIELD_CASES.items():
        for i, value in enumerate(values):
            cases.append(
                (f"set:{field}#{i}", base, [*run, "--set", f"{field}={value}"])
            )
    for i, text in enumerate(BAD_OVERRIDES):
        cases.append((f"override#{i}", base, [*run, "--set", text]))
    for name, text in BAD_FILES.items():
        cases.append((f"file:{name}", {"cfg.yaml": text}, run))
    cli = [
        ("out_empty", ["run", "cfg.yaml", "--out", "", "--no-progress"]),
        ("out_blank", ["run", "cfg.yaml", "--out", "  ", "--no-progress"]),
        ("out_is_file", ["run", "cfg.yaml", "--out", "cfg.yaml", "--no-progress"]),
        ("address_with_sim", [*run, "--address", "127.0.0.1:6379"]),
        ("no_inject_with_sim", [*run, "--no-inject"]),
        ("time_unit_with_sim", [*run, "--time-unit", "0.1"]),
        ("checkpoint_with_sim", [*run, "--checkpoint-every", "5"]),
        ("backend_unknown", [*run, "--backend", "gpu"]),
        ("profile_unknown", [*run, "--profile", "nope"]),
        ("workers_zero", [*run, "--workers", "0"]),
        ("workers_huge", [*run, "--workers", "100000"]),
        ("config_missing", ["run", "missing.yaml", "--out", "out"]),
        ("config_folder", ["run", "folder", "--out", "out"]),
        ("config_devnull", ["run", "/dev/null", "--out", "out"]),
        ("time_unit_tiny", [*run, "--backend", "ray", "--time-unit", "0"]),
    ]
    for name, args in cli:
        cases.append((f"cli:{name}", base, args))
    return cases
