"""The paper tasks (clipasync.problems.paper_tasks): label skew from a mapping."""

from __future__ import annotations

import pytest

from clipasync.errors import ConfigError


def test_label_skew_partition_from_a_mapping() -> None:
    from clipasync.problems import _label_skew
    from clipasync.problems.paper_tasks import LabelSkew

    got = _label_skew({"kind": "dirichlet", "alpha": 0.5, "min_size": 50})
    assert got == LabelSkew(num_workers=16, alpha=0.5, min_size=50)
    with pytest.raises(ConfigError, match="unknown key 'beta'"):
        _label_skew({"kind": "dirichlet", "beta": 1})
