"""The README's Python example runs as written."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = ROOT / "README.md"


def test_readme_python_example_runs(capsys):
    text = README.read_text()
    code = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), str(README), "exec"), namespace)
    result = namespace["result"]
    assert result.stop_reason == "target"  # type: ignore[attr-defined]
    assert "target" in capsys.readouterr().out
