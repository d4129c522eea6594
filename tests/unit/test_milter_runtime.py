"""The milter process runtime (spamwarden.milter.runtime): start-up order."""

from __future__ import annotations

import Milter.test  # noqa: F401 - before the milter modules, as pymilter's test context wants
import pytest

from spamwarden.config import config_from_mapping
from spamwarden.milter import runtime


class Stop(Exception):
    pass


def test_run_milter_installs_the_boundary_matcher_before_serving(
        monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[str] = []
    monkeypatch.setattr(runtime, "install_boundary_matcher", lambda: steps.append("install"))

    def register(conn: str, timeout: int) -> None:
        steps.append("register")
        raise Stop

    monkeypatch.setattr(runtime, "_register", register)
    monkeypatch.setattr(runtime.signal, "pthread_sigmask", lambda *a: set())
    monkeypatch.setattr(runtime.signal, "signal", lambda *a: None)
    cfg = config_from_mapping({"milter": {"listen": "inet:127.0.0.1:1"}}, source="<test>")
    with pytest.raises(Stop):
        runtime.run_milter(cfg, build=lambda: pytest.fail("built a scanner"))
    assert steps == ["install", "register"]


def test_an_unknown_symbol_stops_the_milter_before_it_listens(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from spamwarden.errors import ConfigError

    monkeypatch.setattr(runtime, "_register", lambda *a: pytest.fail("registered"))
    monkeypatch.setattr(runtime.signal, "pthread_sigmask", lambda *a: set())
    monkeypatch.setattr(runtime.signal, "signal", lambda *a: None)
    cfg = config_from_mapping({"milter": {"listen": "inet:127.0.0.1:1", "workers": 4},
                               "policy": {"symbols": {"RBL_OWNN": 9.0}}}, source="<test>")
    with pytest.raises(ConfigError, match="RBL_OWNN"):
        runtime.run_milter(cfg, build=lambda: pytest.fail("built a scanner"))
