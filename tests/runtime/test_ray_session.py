"""Joining a cluster: which token the driver sends, and addresses it refuses early.

No Ray is started here (the real ``ray start`` head is in test_ray_start.py).
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from clipasync.errors import ClusterUnreachable, ConfigError
from clipasync.runtime import ray_session
from clipasync.runtime.ray_session import (
    INLINE_BYTES,
    check_cluster,
    ray_init_kwargs,
    use_cluster_token,
)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        # Set, then delete: monkeypatch then restores each variable as it was,
        # including what the code under test sets (else it leaks into later tests).
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    # Ray's cached config is not refreshed here: these tests read the variables.
    monkeypatch.setattr(ray_session, "_refresh_ray_config", lambda: None)
    return tmp_path


def test_no_token_anywhere_leaves_token_mode_off(clean_env):
    assert use_cluster_token() is False
    assert "RAY_AUTH_MODE" not in os.environ


def test_the_token_ray_start_leaves_under_home_turns_token_mode_on(clean_env):
    (clean_env / ".ray").mkdir()
    (clean_env / ".ray" / "auth_token").write_text("t")
    assert use_cluster_token() is True
    assert os.environ["RAY_AUTH_MODE"] == "token"


def test_ray_auth_token_variable_turns_token_mode_on(clean_env, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    assert use_cluster_token() is True


def test_an_explicit_token_file_wins_and_a_missing_one_is_refused(clean_env):
    token = clean_env / "cluster.token"
    with pytest.raises(ConfigError, match="is not a file"):
        use_cluster_token(token)
    token.write_text("t")
    os.environ["RAY_AUTH_TOKEN"] = "other"
    assert use_cluster_token(token) is True
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(token.resolve())
    assert "RAY_AUTH_TOKEN" not in os.environ


def test_a_mode_the_user_set_is_respected(clean_env, monkeypatch):
    (clean_env / ".ray").mkdir()
    (clean_env / ".ray" / "auth_token").write_text("t")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert use_cluster_token() is False
    assert os.environ["RAY_AUTH_MODE"] == "disabled"


@pytest.mark.parametrize("address", ["127.0.0.1", "head:", ":6379", "head:port"])
def test_a_malformed_address_is_one_line(address):
    with pytest.raises(ConfigError, match="HOST:PORT"):
        check_cluster(address)


def test_nothing_listening_fails_at_once_and_says_what_to_do():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ClusterUnreachable, match=f"ray start --head --port={port}"):
        check_cluster(f"127.0.0.1:{port}", timeout_s=1.0)
    assert time.monotonic() - t0 < 1.5


def test_ray_init_arguments_are_assembled_in_one_place():
    local = ray_init_kwargs(None, 1)
    assert local["address"] == "local" and local["num_cpus"] == 1
    assert local["include_dashboard"] is False
    # A local Ray sends models and gradients of up to 1 MiB inside task messages.
    assert local["_system_config"] == {"max_direct_call_object_size": INLINE_BYTES}
    assert ray_init_kwargs("h:1", None) == {
        "address": "h:1",
        "configure_logging": False,
    }
    with pytest.raises(ConfigError, match="num_cpus"):
        ray_init_kwargs(None, 10**6)
