"""The client address of a request (spamwarden/api/_http.py): which X-Forwarded-For entry
is believed, and the rate-limit bucket of an IPv6 client."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from spamwarden.api._http import CONFIG_KEY, client_ip, rate_client
from spamwarden.config import config_from_mapping


def _request(peer: str, *forwarded: str, proxies: tuple[str, ...] = ("127.0.0.0/8",),
             **api: Any) -> web.Request:
    app = web.Application()
    app[CONFIG_KEY] = config_from_mapping({"api": {"trusted_proxies": list(proxies), **api}})
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default)
    headers = CIMultiDict(("X-Forwarded-For", v) for v in forwarded)
    return make_mocked_request("POST", "/v1/delist-requests", headers=headers, app=app,
                               transport=transport)


def test_every_forwarded_for_line_is_read_and_the_proxys_own_entry_wins() -> None:
    # the client wrote the first line itself; the trusted proxy appended the second
    assert client_ip(_request("127.0.0.1", "10.66.0.1", "198.51.100.77")) == "198.51.100.77"
    # the same in one line, and with the client's forged entries in front
    assert client_ip(_request("127.0.0.1", "10.66.0.1, 10.66.0.2, 198.51.100.77")) == (
        "198.51.100.77")


def test_trusted_proxies_are_walked_from_the_right() -> None:
    # client -> proxy 10.0.0.5 (trusted) -> proxy 127.0.0.1 (the peer, trusted)
    req = _request("127.0.0.1", "203.0.113.9, 198.51.100.77", "10.0.0.5",
                   proxies=("127.0.0.0/8", "10.0.0.0/8"))
    assert client_ip(req) == "198.51.100.77"
    # every entry a trusted proxy: the left-most is the furthest known
    req = _request("127.0.0.1", "10.0.0.7, 10.0.0.5", proxies=("127.0.0.0/8", "10.0.0.0/8"))
    assert client_ip(req) == "10.0.0.7"
    # nothing left of a malformed entry is believed: the trusted address right of it is
    req = _request("127.0.0.1", "198.51.100.77, unknown", "10.0.0.5",
                   proxies=("127.0.0.0/8", "10.0.0.0/8"))
    assert client_ip(req) == "10.0.0.5"
    assert client_ip(_request("127.0.0.1", "nonsense")) == "127.0.0.1"


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert client_ip(_request("192.0.2.50", "198.51.100.77")) == "192.0.2.50"
    assert client_ip(_request("127.0.0.1", "198.51.100.77", proxies=())) == "127.0.0.1"


@pytest.mark.parametrize(("peer", "bucket"), [
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("192.0.2.50", "192.0.2.50"),
    ("::ffff:192.0.2.50", "192.0.2.50"),
])
def test_an_ipv6_client_is_rate_limited_per_64(peer: str, bucket: str) -> None:
    assert rate_client(_request(peer, proxies=())) == bucket
    assert rate_client(_request("127.0.0.1", peer)) == bucket
    assert client_ip(_request(peer, proxies=())) == peer  # the address itself in the logs


def test_the_ipv6_prefix_is_a_setting() -> None:
    req = _request("2001:db8:1:2:3::1", proxies=(), ipv6_rate_prefix=80)
    assert rate_client(req) == "2001:db8:1:2:3::/80"
    req = _request("2001:db8:1:2:3::1", proxies=(), ipv6_rate_prefix=128)
    assert rate_client(req) == "2001:db8:1:2:3::1"
