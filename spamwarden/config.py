"""Configuration: one TOML file loaded into frozen dataclasses.

Every option lives in ``conf/spamwarden.toml`` with a comment.  The loader is
strict: an unknown section or key, a value of the wrong type or out of range is a
:class:`~spamwarden.errors.ConfigError` naming the file, the key and what was
expected.  Sections map one-to-one to the dataclasses below; a missing key takes
the default written here, which is the decree's value where the decree sets one.

Where the file is found (:func:`default_config_path`): ``--config FILE``, else
``$SPAMWARDEN_CONFIG``, else ``/etc/spamwarden/spamwarden.toml``, else
``conf/spamwarden.toml`` relative to the working directory.

Durations accept seconds as a number or a string with a unit: ``"90s"``,
``"15m"``, ``"24h"``, ``"7d"``.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import ipaddress
import os
import re
import socket
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._unixsock import parse_mode, resolve_group, unix_path
from .errors import ConfigError

__all__ = [
    "Config",
    "ServiceConfig",
    "RedisConfig",
    "DnsConfig",
    "MilterConfig",
    "PolicyConfig",
    "IntakeConfig",
    "ReputationConfig",
    "RblConfig",
    "ApiConfig",
    "ArcConfig",
    "ConsentConfig",
    "TrainingConfig",
    "load_config",
    "default_config_path",
    "parse_duration",
    "parse_hostport",
    "ExternalList",
    "SettingsConfig",
    "config_warnings",
]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """Seconds in a duration given as a number or ``"<n>[s|m|h|d|w]"``.

    :raises ValueError: the value is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a non-negative duration")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError('a duration such as 30, "90s", "15m", "24h" or "7d"')


def parse_hostport(value: str, *, default_port: int | None = None) -> tuple[str, int]:
    """Split ``"ip:port"``, ``"[v6]:port"`` or a bare ``"ip"`` into (host, port).

    :raises ValueError: the text is not an address with a port in 0..65535.
    """
    text = value.strip()
    host: str
    port: str | None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unbalanced brackets in {value!r}")
        host, rest = text[1:end], text[end + 1 :]
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None  # bare IPv4, IPv6 or name
    if port is None:
        if default_port is None:
            raise ValueError(f"{value!r} has no port")
        return host, default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in {value!r}")
    return host, int(port)


# -- field helpers --------------------------------------------------------------------------

Check = Callable[[Any], str | None]  # returns what was expected, or None when fine


def _opt(
    default: Any, *, check: Check | None = None, duration: bool = False, doc: str = "",
    secret: bool = False, parse: Callable[[Any], Any] | None = None,
) -> Any:
    """A setting; ``secret`` ones are never echoed in an error message.  ``parse``
    converts a structured value (an array of tables) and raises ValueError saying
    what was expected."""
    meta = {"check": check, "duration": duration, "doc": doc, "secret": secret,
            "parse": parse}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples / MappingProxy for defaults")
    if isinstance(default, types.MappingProxyType):
        frozen = dict(default)
        return field(default_factory=lambda: types.MappingProxyType(dict(frozen)), metadata=meta)
    return field(default=default, metadata=meta)


def _positive(v: Any) -> str | None:
    return None if v > 0 else "a number greater than 0"


def _not_negative(v: Any) -> str | None:
    return None if v >= 0 else "a number 0 or greater"


def _ipv6_prefix(v: Any) -> str | None:
    return None if 32 <= v <= 128 else "a prefix length from 32 to 128"


def _site_count(v: Any) -> str | None:
    return None if 0 <= v <= 10_000_000 else "a number of messages from 0 to 10000000"


def _workers(v: Any) -> str | None:
    return None if 0 <= v <= 64 else "a number of processes from 1 to 64, or 0 for one per CPU core"


#: the words milter.cpu_affinity takes besides a CPU list
_CPU_AFFINITY_WORDS = ("auto", "on", "off")


def _cpu_affinity(v: Any) -> str | None:
    if v in _CPU_AFFINITY_WORDS:
        return None
    from ._affinity import parse_cpus
    try:
        parse_cpus(str(v))
    except ValueError as exc:
        return f'"auto", "on", "off" or a list of CPU numbers such as "0-3,6" ({exc})'
    return None


def _fraction(v: Any) -> str | None:
    return None if 0 <= v <= 1 else "a fraction between 0 and 1"


def _one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def _every(parse: Callable[[Any], object], expected: str) -> Callable[[Any], str | None]:
    """A check that every item of a list option parses: ``parse`` raises ValueError on a bad
    item, and the check then answers ``expected`` (what the option takes)."""

    def check(v: Any) -> str | None:
        for item in v:
            try:
                parse(item)
            except ValueError:
                return expected
        return None

    return check


_hostport_list = _every(parse_hostport, '"ip:port" entries such as "127.0.0.1:5353" or "[::1]:5353"')
_nameservers = _every(
    lambda item: ipaddress.ip_address(parse_hostport(item, default_port=53)[0]),
    'IP addresses, optionally with a port: "127.0.0.1" or "127.0.0.1:5300"',
)
_networks = _every(lambda item: ipaddress.ip_network(item, strict=False),
                   'IP addresses or networks such as "127.0.0.1" or "10.0.0.0/8"')


_DOMAIN = re.compile(r"^(?=.{1,253}\.?$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+"
                     r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?$", re.IGNORECASE)


def _feedback_loop(item: str) -> object:
    """The shape of one ``intake.feedback_loops`` entry: a domain, then networks.

    The entry is parsed for use by ``reputation.feedback_loops.parse_feedback_loop``;
    this check lives here so the configuration imports nothing above it.
    """
    words = item.split()
    if not words or "." not in words[0] or not _DOMAIN.match(words[0]):
        raise ValueError(f"not a domain: {item!r}")
    for w in words[1:]:
        ipaddress.ip_network(w, strict=False)
    return words


def _domain_name(item: str) -> object:
    """A domain name (``lists.example.org``, or an internationalized one in either
    spelling: ``ví-dụ.vn``, ``xn--v-d-rma6749a.vn``); raises ValueError otherwise."""
    name = item.strip()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"not a domain: {item!r}") from None
    if "." not in name or not _DOMAIN.match(name):
        raise ValueError(f"not a domain: {item!r}")
    return item


def _domain_or_network(item: str) -> object:
    """A domain name (:func:`_domain_name`) or an IP address or network."""
    try:
        return ipaddress.ip_network(item.strip(), strict=False)
    except ValueError:
        return _domain_name(item)


_domain_names = _every(_domain_name, 'domain names such as "example.vn" or "ví-dụ.vn"')
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def _mail_domain(item: str) -> object:
    """A domain name (:func:`_domain_name`), or one label of a private set-up such as
    ``localhost``."""
    return item if _LABEL.match(item.strip()) else _domain_name(item)


def _milter_socket(v: Any) -> str | None:
    if re.match(r"^(inet:[^:]+:\d+|inet6:.+:\d+|unix:/.+|local:/.+)$", v):
        return None
    return 'a Postfix milter address: "inet:127.0.0.1:8890" or "unix:/run/spamwarden/milter.sock"'


def _hostport(v: Any) -> str | None:
    return _hostport_list([v])


def _intake_listen(v: Any) -> str | None:
    path = unix_path(v) if isinstance(v, str) else None
    if path is None:
        return _hostport(v)
    if path.startswith("/"):
        return None
    return '"HOST:PORT" or "unix:/PATH" (an absolute path)'


def _socket_mode(v: Any) -> str | None:
    try:
        parse_mode(v)
    except ValueError:
        return 'a file mode of three octal digits, such as "0660"'
    return None


def _socket_group(v: Any) -> str | None:
    if not isinstance(v, str):
        return 'a group name such as "postfix", or "" for the service\'s own group'
    try:
        resolve_group(v)
    except ValueError:
        return (f'a group that exists on this host ({v!r} does not), or "" for the '
                "service's own group")
    return None


# RFC 6750 §2.1 b64token: what an ``Authorization: Bearer`` credential may hold.
_BEARER = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
MIN_SECRET_CHARS = 16


def _operator_tokens(v: Any) -> str | None:
    for token in v:
        if len(token) < MIN_SECRET_CHARS or not _BEARER.match(token):
            return (f"tokens of at least {MIN_SECRET_CHARS} characters from A-Z a-z 0-9 "
                    "- . _ ~ + / (e.g. `openssl rand -hex 32`); an empty one would let "
                    "anyone in")
    return None


def _token_key(v: Any) -> str | None:
    # The unsubscribe signer needs 16 bytes; 8 different characters refuses a key
    # such as "aaaa..." that has the length but none of the entropy.
    if v == "" or (len(v.encode("utf-8")) >= MIN_SECRET_CHARS and len(set(v)) >= 8):
        return None
    return (f'"" (a key generated once under service.state_dir) or at least '
            f"{MIN_SECRET_CHARS} bytes with 8 or more different characters "
            "(e.g. `openssl rand -hex 32`)")


def _url_parts(v: str) -> tuple[str, str] | None:
    """``(scheme, path)`` of an absolute http(s) URL with a host and neither query nor
    fragment; ``None`` otherwise."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or v.endswith(("?", "#")):
        return None
    return parts.scheme, parts.path


def _api_root_url(v: Any) -> str | None:
    # The API's own address as the world reaches it: links are built by appending
    # /v1/... to it; a proxy may put the API under a path prefix.
    parts = _url_parts(v)
    if parts is None or parts[1].rstrip("/").endswith("/v1"):
        return ('the API\'s public root, an http(s) URL without query, such as '
                '"https://mail.example.net" or "https://mail.example.net/spamwarden" '
                '(links append /v1/... to it)')
    return None


def _listing_lookup_url(v: Any) -> str | None:
    # The listed IP or domain is appended to it (TXT answers, reject texts).
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(v)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.fragment or not v.endswith(("/", "=")):
        return ('an http(s) URL the listed IP or domain is appended to, ending in "/" or '
                '"=": "https://bl.example.net/lookup/" or "https://example.net/bl?key="')
    return None


def _unsubscribe_base(v: Any) -> str | None:
    # The API serves the one-click routes at /u/<token> (and /a/, /r/ beside it): a
    # base URL whose path does not end in /u/ prints links that answer 404, and the
    # recipient's refusal is never recorded.  A proxy may add a prefix before /u/.
    parts = _url_parts(v)
    if parts is None or parts[1].rstrip("/").rsplit("/", 1)[-1] != "u" \
            or not parts[1].rstrip("/").startswith("/"):
        return ('an http(s) URL ending in /u/, where the API serves GET/POST /u/<token>: '
                '"https://mail.example.net/u/" (behind a proxy that strips a prefix: '
                '"https://example.net/spamwarden/u/")')
    return None


#: external DNSBLs (``[[rbl.external]]``) at most
MAX_EXTERNAL_LISTS = 20
_SYMBOL_NAME = re.compile(r"^[A-Z0-9_]{1,40}$")
_ZONE_NAME = re.compile(r"^(?=.{1,200}$)([A-Za-z0-9_]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                        r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ExternalList:
    """One ``[[rbl.external]]`` entry: a third-party DNSBL and what its answers score.

    :ivar name: the symbol it adds (``SPAMHAUS_ZEN``); ``<name>_LOOKUP_FAILED`` is the
        failed-lookup symbol.
    :ivar zone: the list's zone (``zen.spamhaus.org``).
    :ivar kind: ``ip`` (the client IP, RFC 5782 §2.1), ``sender`` (envelope and From
        registrable domains, §2.2) or ``url`` (registrable domains of linked URLs, §2.2).
    :ivar codes: answer (``127.0.0.2``, or a network ``127.0.1.0/24``) → points; the
        highest matching answer wins, other answers score nothing.
    :ivar dqs_key: Spamhaus DQS style key, asked as ``<name>.<dqs_key>.<zone>``; empty: none.
    """

    name: str
    zone: str
    kind: str = "ip"
    codes: Mapping[str, float] = field(default_factory=lambda: types.MappingProxyType({}))
    dqs_key: str = ""

    def query_zone(self) -> str:
        """The zone names are asked under: ``<dqs_key>.<zone>`` or ``<zone>``."""
        zone = self.zone.strip(".").lower()
        return f"{self.dqs_key}.{zone}" if self.dqs_key else zone


def _external_entry(i: int, item: Any) -> ExternalList:
    where = f"entry {i + 1}"
    if not isinstance(item, dict):
        raise ValueError(f"[[rbl.external]] tables ({where} is not one)")
    known = {"name", "zone", "kind", "codes", "dqs_key"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise ValueError(f"only the keys {', '.join(sorted(known))} ({where} has "
                         f"{', '.join(unknown)})")
    name = item.get("name")
    if not isinstance(name, str) or not _SYMBOL_NAME.match(name):
        raise ValueError(f"a name of A-Z 0-9 _ (at most 40) in {where}, the symbol it adds "
                         '(e.g. name = "SPAMHAUS_ZEN")')
    where = f"{where} ({name})"
    zone = item.get("zone")
    if not isinstance(zone, str) or not _ZONE_NAME.match(zone.strip(".")):
        raise ValueError(f'a DNS zone in {where} (e.g. zone = "zen.spamhaus.org")')
    kind = item.get("kind", "ip")
    if kind not in ("ip", "sender", "url"):
        raise ValueError(f"kind = \"ip\", \"sender\" or \"url\" in {where}")
    codes = item.get("codes")
    if not isinstance(codes, dict) or not codes:
        raise ValueError(f'codes = {{ "127.0.0.2" = 4.0 }} (answer = points) in {where}')
    parsed: dict[str, float] = {}
    for code, points in codes.items():
        try:
            net = ipaddress.ip_network(code, strict=True)
        except ValueError:
            net = None
        if net is None or net.version != 4 or not net.subnet_of(
                ipaddress.IPv4Network("127.0.0.0/8")) or net.overlaps(
                ipaddress.IPv4Network("127.255.255.0/24")):
            raise ValueError(f"codes keys that are 127.0.0.0/8 addresses or networks outside "
                             f"127.255.255.0/24 (the lists' refusals) in {where}, not {code!r}")
        if isinstance(points, bool) or not isinstance(points, (int, float)):
            raise ValueError(f"a number of points for code {code} in {where}")
        parsed[code] = float(points)
    dqs_key = item.get("dqs_key", "")
    if not isinstance(dqs_key, str) or (dqs_key and not re.match(r"^[A-Za-z0-9]{8,64}$",
                                                                  dqs_key)):
        raise ValueError(f"a DQS key of 8 to 64 letters and digits in {where}")
    return ExternalList(name, zone.strip(".").lower(), kind,
                        types.MappingProxyType(parsed), dqs_key)


def _external_lists(value: Any) -> tuple[ExternalList, ...]:
    """``[[rbl.external]]``: the entries, validated; ValueError says what was expected."""
    if not isinstance(value, list):
        raise ValueError("[[rbl.external]] tables")
    if len(value) > MAX_EXTERNAL_LISTS:
        raise ValueError(f"at most {MAX_EXTERNAL_LISTS} [[rbl.external]] lists")
    entries = tuple(_external_entry(i, item) for i, item in enumerate(value))
    names = [e.name for e in entries]
    for e in entries:
        if names.count(e.name) > 1 or f"{e.name}_LOOKUP_FAILED" in names:
            raise ValueError(f"names used once each ({e.name} is repeated or is another "
                             "entry's failure symbol)")
    return entries


# -- sections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    """``[service]``: process-wide settings."""

    state_dir: str = _opt("/var/lib/spamwarden", doc="Redis data, models learned online, pidfiles")
    log_format: str = _opt("kv", check=_one_of("kv", "json"))
    log_level: str = _opt("info", check=_one_of("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class RedisConfig:
    """``[redis]``: the one shared store."""

    url: str | None = _opt(None, doc="unset: start a private redis-server under state_dir")
    timeout: float = _opt(0.5, duration=True, check=_positive)
    server_binary: str = _opt("redis-server")


@dataclass(frozen=True)
class DnsConfig:
    """``[dns]``: the resolver behind every lookup (SPF, DKIM, DMARC, blocklists)."""

    nameservers: tuple[str, ...] = _opt((), check=_nameservers, doc="empty: /etc/resolv.conf")
    timeout: float = _opt(2.0, duration=True, check=_positive)
    max_lookups_per_message: int = _opt(
        0, check=_not_negative,
        doc="deprecated and ignored (it never limited anything); still read so that "
        "files setting it load")


@dataclass(frozen=True)
class MilterConfig:
    """``[milter]``: the Postfix-facing filter."""

    listen: str = _opt("inet:127.0.0.1:8890", check=_milter_socket)
    socket_mode: str = _opt(
        "0660", check=_socket_mode,
        doc="mode of a unix:/PATH socket; connecting needs write permission",
    )
    socket_group: str = _opt(
        "", check=_socket_group,
        doc="group of a unix:/PATH socket; empty: the milter's own group",
    )
    authserv_id: str = _opt("", doc="empty: this host's FQDN")
    max_message_bytes: int = _opt(10_240_000, check=_positive)
    max_header_bytes: int = _opt(262_144, check=_positive)
    max_scan_bytes_in_flight: int = _opt(
        20_480_000, check=_positive,
        doc="message bytes scored at once in one milter process; a message over 1 MiB "
            "waits up to 60 s for room, then gets 451 4.3.2",
    )
    max_dkim_signatures: int = _opt(5, check=_positive)
    on_error: str = _opt("tempfail", check=_one_of("tempfail", "accept", "reject"))
    timeout: float = _opt(600.0, duration=True, check=_positive)
    reject_spf_fail: bool = _opt(False)
    lookup_url: str = _opt("", doc="printed in reject texts; empty: api.public_url + /lookup/")
    quarantine: str = _opt("hold", check=_one_of("hold", "tag"))
    tcp_nodelay: bool = _opt(
        True, doc="TCP_NODELAY on the inet listener: Postfix no longer waits for delayed "
                   "ACKs between libmilter's small replies",
    )
    tcp_quickack: bool = _opt(
        True, doc="acknowledge Postfix's packets at once on inet connections: Postfix no "
                   "longer waits for delayed ACKs between the commands it sends without "
                   "awaiting a reply",
    )
    trusted_networks: tuple[str, ...] = _opt(
        (), check=_networks,
        doc="clients (and SMTP AUTH users) whose mail is scored and tagged but never "
            "refused, held or tempfailed",
    )
    workers: int = _opt(
        1, check=_workers,
        doc="processes sharing the listening socket, each with libmilter's threads; "
            "0: one per CPU core",
    )
    cpu_affinity: str = _opt(
        "auto", check=_cpu_affinity,
        doc="each milter process's threads on one core: \"on\" (the cores it may use, "
            "one per process in turn), \"off\", the cores to take in turn (\"2,3\"), "
            "or \"auto\": \"on\" with [rules] enabled, else \"off\"",
    )
    dmarc_reject_action: str = _opt(
        "reject", check=_one_of("reject", "quarantine", "score"),
        doc="what a DMARC failure under p=reject does here: refuse (550 5.7.1), hold, "
            "or only add DMARC_REJECT's points",
    )
    arc_trusted_sealers: tuple[str, ...] = _opt(
        (), check=_every(lambda item: _domain_name(item), "domain names such as "
                         '"lists.example.org"'),
        doc="ARC sealers (d= of the newest ARC-Seal) whose recorded dmarc=pass overrides a "
            "DMARC p=reject/quarantine failure of a message that reached us through them",
    )

    def effective_workers(self) -> int:
        """The number of milter processes: ``workers``, or one per usable CPU core (at most 8)
        when it is 0."""
        if self.workers:
            return int(self.workers)
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        return max(1, min(cores, 8))

    def effective_authserv_id(self) -> str:
        """The authserv-id of Authentication-Results (RFC 8601 §2.5): ``authserv_id``, else this
        host's fully qualified name.
        """
        return self.authserv_id or socket.getfqdn()


@dataclass(frozen=True)
class PolicyConfig:
    """``[policy]``: thresholds and the points of each symbol."""

    tag_threshold: float = _opt(5.0)
    quarantine_threshold: float = _opt(10.0)
    reject_threshold: float = _opt(15.0)
    symbols: Mapping[str, float] = _opt(types.MappingProxyType({}), doc="overrides of default points")


@dataclass(frozen=True)
class IntakeConfig:
    """``[intake]``: the complaint server."""

    listen: str = _opt(
        "127.0.0.1:8025", check=_intake_listen,
        doc='"HOST:PORT", or "unix:/PATH" so that only the MTA can connect',
    )
    socket_mode: str = _opt(
        "0660", check=_socket_mode,
        doc="mode of a unix:/PATH socket; connecting needs write permission",
    )
    socket_group: str = _opt(
        "", check=_socket_group,
        doc="group of a unix:/PATH socket; empty: intake's own group",
    )
    lmtp: bool = _opt(False)
    local_domains: tuple[str, ...] = _opt(
        (), check=_every(_mail_domain, 'domain names such as "example.vn" or "ví-dụ.vn" '
                         '(or "localhost")'))
    report_address: str = _opt("report", doc="a local part (report@<each local domain>) or an address")
    ham_address: str = _opt("ham")
    optout_address: str = _opt("optout")
    require_auth: bool = _opt(
        True, doc="refuse reports whose sender is not identified (SASL login or trusted_networks)"
    )
    trusted_relays: tuple[str, ...] = _opt(("127.0.0.0/8", "::1/128"), check=_networks)
    max_message_bytes: int = _opt(10_240_000, check=_positive)
    reporter_rate: int = _opt(200, check=_positive, doc="reports per reporter per hour")
    max_urls: int = _opt(50, check=_positive)
    max_example_bytes: int = _opt(
        1_048_576, check=_positive, doc="reported originals kept as training examples: first N bytes"
    )
    max_sessions: int = _opt(100, check=_positive, doc="SMTP/LMTP sessions at once; more get 421")
    feedback_loops: tuple[str, ...] = _opt(
        (), check=_every(lambda item: _feedback_loop(item), '"domain" or "domain network ..." '
                         'entries such as "fbl.provider.example 192.0.2.0/24"'),
        doc="ARF senders believed about mail not delivered here (reputation/feedback_loops.py)",
    )
    max_data_in_flight: int = _opt(
        20_480_000, check=_positive,
        doc="DATA bytes received and being handled at once, across sessions; a DATA past "
        "it waits up to 30 s for room, then gets 451 4.3.2",
    )
    trusted_networks: tuple[str, ...] = _opt(
        (), check=_networks,
        doc="webmail/IMAP hosts whose submissions identify the reporter by envelope sender",
    )
    recipient_delimiter: str = _opt(
        "+", doc="address-extension delimiters folded away in reporter identities"
    )
    reinjection_hops: int = _opt(
        0, check=_not_negative,
        doc="Received fields our own after-queue content filter adds above the submission hop",
    )

    def expand_address(self, address: str) -> tuple[str, ...]:
        """The recipient addresses one intake address setting stands for, in
        :func:`~spamwarden.mail.canonical_address` form (lower case, the domain in
        IDNA: ``report@ví-dụ.vn`` is ``report@xn--v-d-rma6749a.vn``), so a recipient
        compared in that form matches however either side wrote the domain.

        :param address: a full address (itself), or a local part (that local part at each
            ``local_domains`` entry); empty: none.
        :returns: the addresses, in ``local_domains`` order, without repeats.
        """
        from .mail import canonical_address

        address = address.strip()
        if not address:
            return ()
        if "@" in address:
            return (canonical_address(address),)
        return tuple(dict.fromkeys(canonical_address(f"{address}@{d.strip()}")
                                   for d in self.local_domains if d.strip()))

    def addresses(self) -> frozenset[str]:
        """Every complaint-intake recipient: ``report_address``, ``ham_address`` and
        ``optout_address``, each through :meth:`expand_address`."""
        return frozenset(a for setting in (self.report_address, self.ham_address,
                                           self.optout_address)
                         for a in self.expand_address(setting))


@dataclass(frozen=True)
class ReputationConfig:
    """``[reputation]``: when complaints list a source."""

    min_reporters: int = _opt(3, check=_positive)
    min_complaint_rate: float = _opt(0.001, check=_fraction)
    window: float = _opt(604800.0, duration=True, check=_positive)
    listing_ttl: float = _opt(86400.0, duration=True, check=_positive)
    max_listing_ttl: float = _opt(2592000.0, duration=True, check=_positive)
    allow: tuple[str, ...] = _opt(
        (), check=_every(_domain_or_network, 'domain names, IP addresses or networks such as '
                         '"partner.example", "192.0.2.7" or "192.0.2.0/24"'),
        doc="never listed: domains (and their subdomains), addresses and networks")
    shared_domains: tuple[str, ...] = _opt(
        (
            "gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "hotmail.com",
            "live.com", "icloud.com", "aol.com", "gmx.com", "mail.ru", "yandex.ru",
            "yahoo.com.vn",
            # sending platforms: their signing and bounce domains are on every customer's
            # mail, and a replayed message keeps their DKIM signature
            "amazonses.com", "sendgrid.net", "mailgun.org", "mcsv.net", "rsgsv.net",
            "mcdlv.net", "mandrillapp.com", "sparkpostmail.com", "mailjet.com",
            "sendinblue.com", "mtasv.net", "exacttarget.com", "mktomail.com",
            "onmicrosoft.com", "gappssmtp.com", "googlegroups.com",
            # link platforms: open redirectors, shorteners, link rewriters and sites anyone
            # publishes on; a spammer's link through them must not list them whole
            "google.com", "youtube.com", "facebook.com", "instagram.com", "linkedin.com",
            "lnkd.in", "twitter.com", "x.com", "t.co", "bit.ly", "tinyurl.com", "ow.ly",
            "is.gd", "buff.ly", "rebrand.ly", "cutt.ly", "goo.gl", "forms.gle",
            "microsoft.com", "sharepoint.com", "dropbox.com", "urldefense.com",
            "mimecast.com",
        ),
        check=_domain_names,
        doc="freemail and shared sending platforms: never listed whole (the From address "
        "is), nor the client IP when SPF passed for them (their own outbound address); "
        "setting it replaces the whole list",
    )
    training_ttl: float = _opt(2592000.0, duration=True, check=_positive)
    require_delivered: bool = _opt(
        True, doc="a spam report counts only when it matches a message delivered here to the "
        "reporter; false trusts the report's own headers (dangerous: anyone can list anyone)"
    )


@dataclass(frozen=True)
class RblConfig:
    """``[rbl]``: the published blocklist."""

    zone: str = _opt("bl.example.net")
    listen: tuple[str, ...] = _opt(("127.0.0.1:5353",), check=_hostport_list)
    transfer_allow: tuple[str, ...] = _opt(("127.0.0.1", "::1"), check=_networks)
    lookup_url: str = _opt("", check=lambda v: _listing_lookup_url(v) if v else None,
                           doc="named in TXT answers; empty: api.public_url + /lookup/")
    soa_mname: str = _opt("", doc="empty: ns1.<zone>")
    soa_rname: str = _opt("", doc="empty: hostmaster.<zone>")
    ttl: int = _opt(300, check=_positive)
    negative_ttl: int = _opt(60, check=_positive)
    third_party_zones: tuple[str, ...] = _opt(
        (), doc="deprecated: extra DNSBLs, any 127.0.0.0/8 answer scores RBL_THIRD_PARTY; "
        "use [[rbl.external]]")
    external: tuple[ExternalList, ...] = _opt(
        (), parse=_external_lists, secret=True,
        doc="third-party DNSBLs as [[rbl.external]] tables: name, zone, kind, codes, dqs_key")
    external_max_names: int = _opt(
        5, check=_positive, doc="sender or URL domains one external list is asked per message")
    tcp_per_client: int = _opt(10, check=_positive, doc="concurrent TCP connections per IPv4 address / IPv6 /56")
    tcp_write_timeout: float = _opt(10.0, duration=True, check=_positive,
                                    doc="how long one answer may wait for a TCP client to read it")
    notify: tuple[str, ...] = _opt((), check=_hostport_list, doc="secondaries sent NOTIFY (RFC 1996)")
    notify_interval: float = _opt(1.0, duration=True, check=_positive,
                                  doc="at most one NOTIFY per zone per interval")
    ixfr_journal: int = _opt(10000, check=_positive, doc="changes kept per zone for IXFR (RFC 1995)")
    rate_limit: float = _opt(0.0, check=lambda v: None if v >= 0 else "0 (off) or answers per second",
                             doc="UDP answers/s per client /24 (IPv6 /56); 0: off")
    rate_limit_slip: int = _opt(2, check=lambda v: None if v >= 0 else "0 or more",
                                doc="over the rate: every Nth answer truncated (TC), the rest dropped")
    native: bool = _opt(True, doc="answer the common IPv4 query in C when the extension is built")
    workers: int = _opt(1, check=_positive,
                        doc="processes serving rbl.listen together (SO_REUSEPORT), under `serve`")


@dataclass(frozen=True)
class ApiConfig:
    """``[api]``: the HTTP API."""

    listen: str = _opt("127.0.0.1:8891", check=_hostport)
    public_url: str = _opt("http://127.0.0.1:8891", check=_api_root_url)
    operator_tokens: tuple[str, ...] = _opt(
        (), check=_operator_tokens, secret=True, doc="bearer tokens for operator endpoints"
    )
    delist_requests_per_hour: int = _opt(5, check=_positive, doc="public delisting requests per client IP")
    login_attempts_per_hour: int = _opt(
        20, check=_positive,
        doc="console sign-in attempts per client IP (an IPv6 client by ipv6_rate_prefix); "
        "past it even the right token gets 429",
    )
    max_pending_delist_requests: int = _opt(
        100_000, check=_positive,
        doc="delisting requests waiting for an operator, in all; past it new ones get 429",
    )
    max_pending_delist_requests_per_key: int = _opt(
        3, check=_positive,
        doc="delisting requests waiting for an operator per listed key; past it 429",
    )
    trusted_proxies: tuple[str, ...] = _opt((), check=_networks, doc="whose X-Forwarded-For is believed")
    ipv6_rate_prefix: int = _opt(
        64, check=_ipv6_prefix,
        doc="an IPv6 client is rate-limited by its network of this prefix length",
    )


@dataclass(frozen=True)
class ConsentConfig:
    """``[consent]``: the advertising rules (Decree 91/2020/ND-CP)."""

    enabled: bool = _opt(True)
    max_ads_per_day: int = _opt(3, check=_positive)
    labels: tuple[str, ...] = _opt(("QC", "ADV"))
    unsubscribe_base_url: str = _opt("http://127.0.0.1:8891/u/", check=_unsubscribe_base)
    token_key: str = _opt(
        "", check=_token_key, secret=True,
        doc="HMAC key for one-click tokens; empty: generated under state_dir",
    )
    language: str = _opt(
        "", check=_one_of("", "en", "vi"),
        doc="language of the consent texts; empty: i18n.language",
    )
    retention: float = _opt(31536000.0, duration=True, check=_positive)
    on_registry_error: str = _opt("accept", check=_one_of("accept", "tempfail"))
    unverified_action: str = _opt(
        "quarantine", check=_one_of("quarantine", "reject"),
        doc="an ad whose envelope names a registered advertiser that neither SPF nor "
        "aligned DKIM authenticates, to a recipient who refused, has no consent or is over "
        "the cap: \"quarantine\" holds it with the same reply as any other recipient's; "
        "\"reject\" refuses it at RCPT and end of message, which tells whoever wrote "
        "the advertiser's domain into MAIL FROM that recipient's choice",
    )
    rcpt_requires_consent: bool = _opt(
        True, doc="mail whose envelope sender is an advertiser's domain is advertising: "
        "recipients without consent are rejected at RCPT (when SPF passes for that sender; "
        "see unverified_action)"
    )
    confirmation_relay: str = _opt(
        "", check=lambda v: None if v == "" else _hostport(v),
        doc="SMTP relay (host:port) for the single refusal confirmation; empty: none sent",
    )
    confirmation_from: str = _opt("", doc="sender of refusal confirmations")
    max_all_requests_per_day: int = _opt(
        1000, check=_positive,
        doc="scope=all requests mailed per advertiser per UTC day; past it the page says to "
        "send ALL to the opt-out address and nothing is mailed",
    )


@dataclass(frozen=True)
class TrainingConfig:
    """``[training]``: the content classifier."""

    model: str = _opt("", doc="empty: the model shipped inside the package")
    strip_headers: tuple[str, ...] = _opt(
        (
            "X-Spam-*", "X-Barracuda-*", "X-Mozilla-*", "Received-SPF",
            "Authentication-Results", "ARC-*", "X-Virus-*", "X-Original-*",
            "Delivered-To", "X-UID", "Status", "X-Status", "X-Keywords", "Lines", "X-Gmail-*",
        )
    )
    corpus: tuple[str, ...] = _opt(
        (), doc="labelled corpora (ham/ + spam/ folders) that train --feedback starts from"
    )
    max_examples_per_reporter: int = _opt(
        5, check=_positive,
        doc="training examples one reporter may add per day (one per reported message)",
    )
    min_site_ham: int = _opt(
        200, check=_site_count,
        doc="ham of this site the classifier must have learned before its points count "
        "in full (like SpamAssassin's bayes_min_ham_num); below, it cannot tag by itself",
    )
    min_site_spam: int = _opt(
        200, check=_site_count,
        doc="spam of this site the classifier must have learned before its points count "
        "in full (like bayes_min_spam_num)",
    )


@dataclass(frozen=True)
class RulesConfig:
    """``[rules]``: SpamAssassin rule files run natively (spamwarden.rules)."""

    enabled: bool = _opt(False, doc="score SpamAssassin's rules in the milter")
    system_rules: bool = _opt(
        True, doc="load sa-update's rules, else /usr/share/spamassassin/*.cf"
    )
    paths: tuple[str, ...] = _opt(
        ("/etc/spamassassin/local.cf",), doc="more rule files or folders, read after the system rules"
    )
    cache_dir: str = _opt("", doc="compiled rule databases; empty: <state_dir>/rules-cache")
    unscored: str = _opt(
        "suggested", check=_one_of("suggested", "spamassassin"),
        doc="a rule no file scores: 'suggested' takes the score its file carries commented "
        "out (rules packaged without sa-update's scores), else 1 point; 'spamassassin' "
        "always 1 point (0.01 for T_ rules), as SpamAssassin does",
    )
    bayes_scores: bool = _opt(
        True, doc="while the rules run, the classifier's BAYES_* symbols take the scores "
        "the rule files give them (the score set the rules were fitted with) instead of "
        "the built-in ones; [policy.symbols] still wins",
    )
    processes: int = _opt(
        0, check=lambda v: None if 0 <= v <= 64 else "a number of processes from 0 to 64",
        doc="engine processes per milter process (matching off the milter's GIL); "
        "0: in the milter process",
    )
    timeout: float = _opt(
        15.0, duration=True, check=_positive,
        doc="seconds an engine process may take for one message before it is replaced "
        "(the message is then scored without the rules); longer than time_limit, so that "
        "a message matched up to its time limit is still answered",
    )
    time_limit: float = _opt(
        10.0, duration=True, check=_positive,
        doc="seconds a message's pattern matching in Python (the patterns Hyperscan "
        "cannot run exactly, and the counted ones) may take in all, a long text with a "
        "timeout; past it the matches left count as none and the message gets "
        "TIME_LIMIT_EXCEEDED, as SpamAssassin's time_limit",
    )
    slow_after: float = _opt(
        0.5, duration=True, check=_positive,
        doc="seconds of a message's matching in Python after which it needs a place in "
        "the slow lane to go on; one that finds none stops there with "
        "TIME_LIMIT_EXCEEDED, so hostile messages cannot hold every engine thread",
    )
    slow_lanes: int = _opt(
        1, check=lambda v: None if 0 <= v <= 64 else "a number of messages from 0 to 64",
        doc="messages matched past slow_after at a time (each on a thread, or engine "
        "process, of its own besides the others); 0: none, every message stops at "
        "slow_after",
    )
    costly_patterns: bool = _opt(
        True, doc="run SpamAssassin's unanchored __FILL_THIS_FORM_* patterns (about "
        "0.2 ms of CPU a message behind Hyperscan prefilters), else skip them",
    )


@dataclass(frozen=True)
class ArcConfig:
    """``[arc]``: ARC sealing (RFC 8617 §5.1) of the mail this host passes on."""

    sign: bool = _opt(False, doc="seal every message the milter lets through")
    selector: str = _opt("", doc="s= of the seal: the key is published at <selector>._domainkey.<domain>")
    domain: str = _opt("", check=lambda v: None if v == "" or _DOMAIN.match(v) else "a domain name",
                       doc="d= of the seal: the sealer name receivers may trust")
    key: str = _opt("", doc="path of the PEM RSA private key (readable by the milter)")


@dataclass(frozen=True)
class HistoryConfig:
    """``[history]``: the milter's record of every verdict (``spamwarden history``)."""

    max_entries: int = _opt(100_000, check=_positive, doc="verdicts kept (newest; capped stream)")
    ttl: float = _opt(7 * 86400.0, duration=True, check=_positive,
                      doc="verdicts older than this are dropped")
    subjects: bool = _opt(True, doc="keep the Subject of each message; false for privacy")


def _abs_path_or_empty(v: Any) -> str | None:
    return None if v == "" or str(v).startswith("/") else "an absolute path, or empty"


def _abs_path(v: Any) -> str | None:
    return None if str(v).startswith("/") else "an absolute path"


@dataclass(frozen=True)
class QuarantineConfig:
    """``[quarantine]``: the console's view of Postfix's hold queue (``/ui/quarantine``)."""

    postfix_config_dir: str = _opt("", check=_abs_path_or_empty,
                                   doc="passed as -c DIR; empty: Postfix's default")
    postqueue: str = _opt("/usr/sbin/postqueue", check=_abs_path)
    postsuper: str = _opt("/usr/sbin/postsuper", check=_abs_path)
    postcat: str = _opt("/usr/sbin/postcat", check=_abs_path)
    sudo: str = _opt("", check=_abs_path_or_empty,
                     doc="run postsuper and postcat as sudo -n PROGRAM; empty: directly")
    timeout: float = _opt(10.0, duration=True, check=_positive, doc="per Postfix command")
    max_messages: int = _opt(500, check=_positive, doc="held messages listed at most")
    learn_user: str = _opt("", doc="who a release-and-learn files the message as; "
                           "empty: postmaster@ the first intake.local_domains")


def _settings_entry(item: str) -> object:
    """An allow/deny entry (``kind:value`` or a bare IP, network, address or domain);
    the real parser is ``settings.model.parse_entry``, imported late so the
    configuration imports nothing above it."""
    from .settings.model import SettingsError, parse_entry

    try:
        return parse_entry(item)
    except SettingsError as exc:
        raise ValueError(str(exc)) from exc


_settings_entries = _every(_settings_entry, 'entries such as "dkim:partner.example", '
                           '"192.0.2.0/24", "domain:partner.example" or "alice@partner.example"')


@dataclass(frozen=True)
class SettingsConfig:
    """``[settings]``: per-recipient thresholds and the allow/deny lists (Redis, plus
    the static entries here)."""

    enabled: bool = _opt(True, doc="read recipient settings and allow/deny entries; split "
                         "recipients of differing settings with 452 4.5.3 at RCPT")
    refresh: float = _opt(5.0, duration=True, check=_positive,
                          doc="how often a milter checks Redis for changed settings")
    max_targets: int = _opt(10_000, check=_positive, doc="most recipient settings stored")
    max_entries: int = _opt(10_000, check=_positive, doc="most entries per list stored")
    allow: tuple[str, ...] = _opt((), check=_settings_entries,
                                  doc="static allow entries, added to those in Redis")
    deny: tuple[str, ...] = _opt((), check=_settings_entries,
                                 doc="static deny entries, added to those in Redis")


@dataclass(frozen=True)
class I18nConfig:
    """``[i18n]``: the language of human-facing texts (SMTP replies, API errors)."""

    language: str = _opt(
        "en", check=_one_of("en", "vi"),
        doc="SMTP reply texts of the milter and intake, API error messages",
    )


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``source`` names the file it came from."""

    service: ServiceConfig = field(default_factory=ServiceConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    milter: MilterConfig = field(default_factory=MilterConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    reputation: ReputationConfig = field(default_factory=ReputationConfig)
    rbl: RblConfig = field(default_factory=RblConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    arc: ArcConfig = field(default_factory=ArcConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    i18n: I18nConfig = field(default_factory=I18nConfig)
    quarantine: QuarantineConfig = field(default_factory=QuarantineConfig)
    settings: SettingsConfig = field(default_factory=SettingsConfig)
    source: str = "<defaults>"

    def __post_init__(self) -> None:
        # An empty rbl.lookup_url / milter.lookup_url means the API's own lookup page
        # (spamwarden.api.lookup), so a listed sender never gets a dead link.
        page = self.lookup_page_url()
        if not self.rbl.lookup_url:
            object.__setattr__(self, "rbl", dataclasses.replace(self.rbl, lookup_url=page))
        if not self.milter.lookup_url:
            object.__setattr__(self, "milter", dataclasses.replace(self.milter, lookup_url=page))
        # An empty consent.language follows i18n.language: one setting for a site.
        if not self.consent.language:
            object.__setattr__(self, "consent", dataclasses.replace(
                self.consent, language=self.i18n.language))

    def lookup_page_url(self) -> str:
        """The API's public lookup page: ``api.public_url`` + ``/lookup/``."""
        return self.api.public_url.rstrip("/") + "/lookup/"

    def state_path(self, *parts: str) -> Path:
        """A path under ``service.state_dir``."""
        return Path(self.service.state_dir, *parts)


# -- loading --------------------------------------------------------------------------------


def default_config_path() -> Path:
    """The configuration file to use when ``--config`` is not given."""
    env = os.environ.get("SPAMWARDEN_CONFIG")
    if env:
        return Path(env)
    etc = Path("/etc/spamwarden/spamwarden.toml")
    if etc.exists():
        return etc
    return Path("conf/spamwarden.toml")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if origin is tuple:
        return "a list of strings"
    if origin in (Mapping, dict, collections.abc.Mapping):
        return "a table of name = number"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return str(tp)


def _convert(value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """Convert one TOML value to the field's type; ValueError says what was expected."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, args[0], meta)
    if meta.get("duration"):
        return parse_duration(value)
    if meta.get("parse") is not None:
        return meta["parse"](value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, str):  # a single item where a list is allowed
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif origin in (Mapping, dict, collections.abc.Mapping):
        if isinstance(value, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        ):
            return types.MappingProxyType({str(k): float(v) for k, v in value.items()})
    raise ValueError(_type_name(tp))


def _build_section(cls: type, data: Mapping[str, Any], where: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key {where}.{key} (known keys: {known})")
        shown = "(secret, not shown)" if f.metadata.get("secret") else repr(value)
        try:
            converted = _convert(value, hints[key], f.metadata)
        except ValueError as exc:
            raise ConfigError(
                f"{source}: {where}.{key} = {shown}: expected {exc}"
            ) from exc
        check = f.metadata.get("check")
        if check is not None and converted is not None:
            problem = check(converted)
            if problem:
                raise ConfigError(f"{source}: {where}.{key} = {shown}: expected {problem}")
        kwargs[key] = converted
    return cls(**kwargs)


def config_from_mapping(data: Mapping[str, Any], *, source: str = "<mapping>") -> Config:
    """Build a :class:`Config` from parsed TOML (a dict of sections).

    :raises ConfigError: unknown section or key, wrong type, bad value.
    """
    hints = typing.get_type_hints(Config)
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name == "source" or name not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(Config) if f.name != "source")
            raise ConfigError(f"{source}: unknown section [{name}] (known sections: {known})")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{name}] must be a table of settings")
        sections[name] = _build_section(hints[name], value, name, source)
    cfg = Config(**sections, source=source)
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: Config) -> None:
    p = cfg.policy
    if not p.tag_threshold <= p.quarantine_threshold <= p.reject_threshold:
        raise ConfigError(
            f"{cfg.source}: policy thresholds must satisfy tag_threshold <= "
            f"quarantine_threshold <= reject_threshold (got {p.tag_threshold}, "
            f"{p.quarantine_threshold}, {p.reject_threshold})"
        )
    if cfg.arc.sign and not (cfg.arc.selector and cfg.arc.domain and cfg.arc.key):
        raise ConfigError(
            f"{cfg.source}: arc.sign = true needs arc.selector, arc.domain and arc.key"
        )
    if cfg.reputation.max_listing_ttl < cfg.reputation.listing_ttl:
        raise ConfigError(
            f"{cfg.source}: reputation.max_listing_ttl must be >= reputation.listing_ttl"
        )


def config_warnings(cfg: Config) -> list[str]:
    """What works but should change (deprecated settings), one sentence each, for
    ``config-check`` and the services' start-up log."""
    out: list[str] = []
    if cfg.dns.max_lookups_per_message:
        out.append(
            "dns.max_lookups_per_message is ignored and can be removed: no per-message "
            "cap on DNS lookups exists; SPF keeps its own limits (RFC 7208: 10 "
            "DNS-querying mechanisms, 2 void lookups) and each check its dns.timeout budget")
    if cfg.rbl.third_party_zones:
        out.append(
            "rbl.third_party_zones is deprecated: each zone still scores RBL_THIRD_PARTY for "
            "any 127.0.0.0/8 answer outside 127.255.255.0/24; replace it with one "
            "[[rbl.external]] table per zone (name, zone, kind = \"ip\", codes = "
            "{ \"127.0.0.2\" = 3.0, ... }) so that only the codes you list score "
            "(docs/operations.md, \"External blocklists\")")
    affinity = cfg.milter.cpu_affinity
    if affinity not in _CPU_AFFINITY_WORDS:
        from ._affinity import parse_cpus, usable_cpus
        usable = usable_cpus()
        missing = [c for c in parse_cpus(affinity) if c not in usable]
        if missing:
            usable_text = ",".join(str(c) for c in sorted(usable))
            out.append(
                f"milter.cpu_affinity names cores this process may not use here "
                f"({','.join(str(c) for c in missing)}; usable: {usable_text}): they are "
                "skipped, and with none left the milter's threads are not pinned")
    c = cfg.consent
    if c.enabled and c.unverified_action == "quarantine" and cfg.milter.quarantine == "tag":
        out.append(
            "consent.unverified_action = \"quarantine\" with milter.quarantine = \"tag\": an ad "
            "in a registered advertiser's name that neither SPF nor aligned DKIM authenticates "
            "is tagged and delivered to recipients who refused it; set milter.quarantine = "
            "\"hold\", or consent.unverified_action = \"reject\" (which tells whoever sent it "
            "each recipient's choice) (docs/decree.md, \"What a forged envelope sender learns\")")
    r = cfg.rules
    if r.processes > 0 and r.timeout <= r.time_limit:
        out.append(
            f"rules.timeout ({r.timeout:g} s) is not longer than rules.time_limit "
            f"({r.time_limit:g} s): an engine process whose message is matched up to its "
            "time limit is killed first and the message loses every rule point; make "
            "rules.timeout a few seconds longer (docs/rules.md, \"Time limits\")")
    return out


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the configuration file.

    :param path: the file; ``None`` uses :func:`default_config_path`.
    :raises ConfigError: the file is missing, not TOML, or has a bad setting.
    """
    p = Path(path) if path is not None else default_config_path()
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: configuration file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read configuration: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return config_from_mapping(data, source=str(p))
