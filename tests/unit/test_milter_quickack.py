"""ConnectionAcker refuses anything that is not pymilter's context for a libmilter
connection, and says so once; a real connection is covered by the miltertest and Postfix
integration tests (their milter logs must not say `milter_quickack_off`)."""

from __future__ import annotations

import logging
import socket

import pytest

from spamwarden.milter.quickack import ConnectionAcker


def test_a_foreign_context_switches_it_off_once(caplog: pytest.LogCaptureFixture) -> None:
    acker = ConnectionAcker(8890, timeout=600)
    with caplog.at_level(logging.WARNING, logger="spamwarden.milter"):
        assert acker.socket_for(object()) is None
        assert acker.socket_for(object()) is None
    assert not acker.enabled
    said = [r for r in caplog.records if r.getMessage() == "milter_quickack_off"]
    assert len(said) == 1 and "layout" in said[0].fields["why"]  # type: ignore[attr-defined]


def test_no_context_is_no_socket() -> None:
    acker = ConnectionAcker(8890, timeout=600)
    assert acker.socket_for(None) is None
    assert acker.enabled  # nothing was wrong; there was just no connection


def test_ack_and_cork_never_raise() -> None:
    ConnectionAcker.ack(None)
    ConnectionAcker.cork(None, True)
    a, b = socket.socketpair()  # not TCP: the options are refused, quietly
    with a, b:
        ConnectionAcker.ack(a)
        ConnectionAcker.cork(a, True)
    closed = socket.socket()
    closed.close()
    ConnectionAcker.ack(closed)
    ConnectionAcker.cork(closed, False)
