"""Where recipient settings and allow/deny entries live: Redis, read by every milter.

Keys (one hash tag, like every spamwarden key; none has a TTL: they are the
operator's configuration, kept until removed, and belong in Redis backups):

=================================  ======  =================================================
key                                type    holds
=================================  ======  =================================================
``sw:{sw}:settings:policies``      hash    target (address or domain) → JSON of the
                                           overridden thresholds (:class:`~.model.Overrides`)
``sw:{sw}:settings:allow``         hash    ``kind:value`` → JSON ``{"note", "added"}``
``sw:{sw}:settings:deny``          hash    ``kind:value`` → JSON ``{"note", "added"}``
``sw:{sw}:settings:version``       string  integer, incremented by every change; the milters
                                           poll it (``settings.refresh``) and reload on change
=================================  ======  =================================================

Each write is one Lua script (``lua/settings_put.lua``, ``lua/settings_remove.lua``)
that bounds the hash (``settings.max_targets``, ``settings.max_entries``), writes
and bumps the version together.  Each operation is written once, as a generator of
Redis steps, and run by a sync driver (:class:`SettingsStore`: CLI, milter) and an
async one (:class:`AsyncSettingsStore`: API).

:class:`SettingsCache` is the milter's view: a :class:`~.model.SettingsSnapshot`
reloaded when the version changed, checked at most every ``settings.refresh``
seconds by one thread while the others keep using the snapshot they have.  When
Redis cannot be reached the last snapshot read stays in use (before the first
successful read: the static ``settings.allow`` / ``settings.deny`` entries and
``[policy]`` alone), so mail keeps flowing under the last known settings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from .._lua import lua_script
from ..config import Config
from ..errors import StoreError
from ..i18n import Message
from ..logs import event
from .model import (
    LISTS,
    MAX_NOTE,
    Overrides,
    SettingsError,
    SettingsSnapshot,
    entry_text,
    parse_entry,
    parse_overrides,
    parse_target,
)

__all__ = [
    "ALLOW_KEY",
    "DENY_KEY",
    "POLICIES_KEY",
    "VERSION_KEY",
    "AsyncSettingsStore",
    "ListEntry",
    "SettingsCache",
    "SettingsStore",
    "SnapshotSource",
    "list_key",
    "settings_json",
]

log = logging.getLogger("spamwarden.settings")

POLICIES_KEY = "sw:{sw}:settings:policies"
ALLOW_KEY = "sw:{sw}:settings:allow"
DENY_KEY = "sw:{sw}:settings:deny"
VERSION_KEY = "sw:{sw}:settings:version"

_SCRIPTS = {"put": lua_script("spamwarden.settings", "settings_put"),
            "remove": lua_script("spamwarden.settings", "settings_remove")}

T = TypeVar("T")


def list_key(which: str) -> str:
    """The hash of the ``allow`` or ``deny`` list.

    :raises SettingsError: neither.
    """
    if which not in LISTS:
        raise SettingsError(Message("settings.list_name"))
    return ALLOW_KEY if which == "allow" else DENY_KEY


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One stored allow/deny entry."""

    entry: str
    note: str
    added: float

    def to_json(self) -> dict[str, Any]:
        """``{"entry", "kind", "value", "note", "added"}``."""
        kind, _, value = self.entry.partition(":")
        return {"entry": self.entry, "kind": kind, "value": value, "note": self.note,
                "added": self.added}


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


# -- operations: generators of Redis steps ----------------------------------------------------

# A step is ("cmd", name, args) or ("script", name, keys, args); the driver sends back
# the result.
_Step = tuple[Any, ...]
_Op = Generator[_Step, Any, T]


class _Ops:
    """Every operation once; :class:`SettingsStore` and :class:`AsyncSettingsStore` run them."""

    def __init__(self, *, max_targets: int, max_entries: int) -> None:
        self.max_targets = max_targets
        self.max_entries = max_entries

    def put_setting(self, target: str, over: Overrides) -> _Op[bool]:
        t = parse_target(target)
        if over.empty:
            raise SettingsError(Message("settings.no_threshold"))
        n = yield ("script", "put", [POLICIES_KEY, VERSION_KEY],
                   [t, json.dumps(over.to_json(), sort_keys=True), self.max_targets])
        if int(n) < 0:
            raise SettingsError(Message("settings.max_targets", {"limit": self.max_targets}))
        return int(n) == 1

    def remove_setting(self, target: str) -> _Op[bool]:
        n = yield ("script", "remove", [POLICIES_KEY, VERSION_KEY], [parse_target(target)])
        return int(n) == 1

    def put_entry(self, which: str, entry: str, *, note: str, now: float) -> _Op[str]:
        key = list_key(which)
        kind, value = parse_entry(entry)
        if len(note) > MAX_NOTE:
            raise SettingsError(Message("settings.note_too_long", {"limit": MAX_NOTE}))
        field = entry_text(kind, value)
        n = yield ("script", "put", [key, VERSION_KEY],
                   [field, json.dumps({"note": note, "added": round(now, 3)}),
                    self.max_entries])
        if int(n) < 0:
            raise SettingsError(Message("settings.list_full",
                                        {"which": which, "limit": self.max_entries}))
        return field

    def remove_entry(self, which: str, entry: str) -> _Op[bool]:
        kind, value = parse_entry(entry)
        n = yield ("script", "remove", [list_key(which), VERSION_KEY], [entry_text(kind, value)])
        return int(n) == 1

    def settings(self) -> _Op[dict[str, Overrides]]:
        raw = yield ("cmd", "hgetall", [POLICIES_KEY])
        out: dict[str, Overrides] = {}
        for k, v in sorted((_text(k), _text(v)) for k, v in (raw or {}).items()):
            try:
                out[k] = parse_overrides(json.loads(v))
            except (SettingsError, ValueError):
                continue
        return out

    def entries(self, which: str) -> _Op[list[ListEntry]]:
        raw = yield ("cmd", "hgetall", [list_key(which)])
        out: list[ListEntry] = []
        for k, v in sorted((_text(k), _text(v)) for k, v in (raw or {}).items()):
            try:
                meta = json.loads(v)
                out.append(ListEntry(k, str(meta.get("note", ""))[:MAX_NOTE],
                                     float(meta.get("added", 0))))
            except (ValueError, TypeError, AttributeError):
                out.append(ListEntry(k, "", 0.0))
        return out

    def version(self) -> _Op[int]:
        raw = yield ("cmd", "get", [VERSION_KEY])
        return int(raw or 0)

    def snapshot(self, *, static_allow: Iterable[str] = (),
                 static_deny: Iterable[str] = ()) -> _Op[tuple[SettingsSnapshot, int]]:
        # The version is read first: a change landing during the reads bumps it past what
        # this snapshot records, so the next poll reads again.
        version = yield from self.version()
        pol = yield ("cmd", "hgetall", [POLICIES_KEY])
        allow = yield ("cmd", "hkeys", [ALLOW_KEY])
        deny = yield ("cmd", "hkeys", [DENY_KEY])
        return SettingsSnapshot.from_raw(
            {_text(k): _text(v) for k, v in list((pol or {}).items())[: self.max_targets]},
            [_text(x) for x in (allow or [])[: self.max_entries]],
            [_text(x) for x in (deny or [])[: self.max_entries]],
            version=version, static_allow=static_allow, static_deny=static_deny)


def _wrap(exc: Exception) -> StoreError:
    return StoreError(f"settings store: {type(exc).__name__}: {exc}")


class _Base:
    """What both drivers hold: the client, the operations and the registered scripts.

    :param client: a ``redis.Redis`` or ``redis.asyncio.Redis`` (or cluster) client.
    :param max_targets: most recipient settings (``settings.max_targets``).
    :param max_entries: most entries per list (``settings.max_entries``).
    """

    def __init__(self, client: Any, *, max_targets: int = 10_000,
                 max_entries: int = 10_000) -> None:
        self.redis = client
        self._ops = _Ops(max_targets=max_targets, max_entries=max_entries)
        self._scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}

    @classmethod
    def from_config(cls, cfg: Config, client: Any) -> Self:
        """The store with ``[settings]``'s bounds."""
        return cls(client, max_targets=cfg.settings.max_targets,
                   max_entries=cfg.settings.max_entries)


class SettingsStore(_Base):
    """The settings in Redis, synchronously (CLI, milter).

    :param client: a ``redis.Redis`` (or cluster) client.
    :param max_targets: most recipient settings (``settings.max_targets``).
    :param max_entries: most entries per list (``settings.max_entries``).
    """

    def _run(self, op: _Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if step[0] == "script":
                    result = self._scripts[step[1]](keys=step[2], args=step[3])
                else:
                    result = getattr(self.redis, step[1])(*step[2])
                step = op.send(result)
        except StopIteration as done:
            value: T = done.value
            return value
        except SettingsError:
            raise
        except Exception as exc:
            raise _wrap(exc) from exc

    def put_setting(self, target: str, over: Overrides) -> bool:
        """Set ``target``'s overrides (replacing earlier ones).

        :returns: ``True`` when the target is new.
        :raises SettingsError: bad target, nothing set, or ``max_targets`` reached.
        :raises StoreError: Redis failed.
        """
        return self._run(self._ops.put_setting(target, over))

    def remove_setting(self, target: str) -> bool:
        """Remove ``target``'s overrides; ``False`` when it had none.

        :raises SettingsError: bad target.  :raises StoreError: Redis failed.
        """
        return self._run(self._ops.remove_setting(target))

    def put_entry(self, which: str, entry: str, *, note: str = "",
                  now: float | None = None) -> str:
        """Add ``entry`` (``kind:value`` or a bare value) to the ``allow`` or ``deny`` list.

        :returns: the canonical ``kind:value`` stored.
        :raises SettingsError: bad list, entry or note, or ``max_entries`` reached.
        :raises StoreError: Redis failed.
        """
        return self._run(self._ops.put_entry(which, entry, note=note,
                                             now=time.time() if now is None else now))

    def remove_entry(self, which: str, entry: str) -> bool:
        """Remove ``entry`` from the list; ``False`` when it was not there.

        :raises SettingsError: bad list or entry.  :raises StoreError: Redis failed.
        """
        return self._run(self._ops.remove_entry(which, entry))

    def settings(self) -> dict[str, Overrides]:
        """Every target's overrides, by target.  :raises StoreError: Redis failed."""
        return self._run(self._ops.settings())

    def entries(self, which: str) -> list[ListEntry]:
        """The entries of one list, sorted.  :raises StoreError: Redis failed."""
        return self._run(self._ops.entries(which))

    def version(self) -> int:
        """The change counter (0 before the first change).  :raises StoreError: Redis failed."""
        return self._run(self._ops.version())

    def snapshot(self, *, static_allow: Iterable[str] = (),
                 static_deny: Iterable[str] = ()) -> tuple[SettingsSnapshot, int]:
        """Everything, with the static entries added; and how many stored items were
        invalid and skipped.  :raises StoreError: Redis failed."""
        return self._run(self._ops.snapshot(static_allow=static_allow,
                                            static_deny=static_deny))


class AsyncSettingsStore(_Base):
    """:class:`SettingsStore` for asyncio (the API); the same operations and errors.

    :param client: a ``redis.asyncio.Redis`` (or cluster) client.
    """

    async def _run(self, op: _Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if step[0] == "script":
                    result = await self._scripts[step[1]](keys=step[2], args=step[3])
                else:
                    result = await getattr(self.redis, step[1])(*step[2])
                step = op.send(result)
        except StopIteration as done:
            value: T = done.value
            return value
        except SettingsError:
            raise
        except Exception as exc:
            raise _wrap(exc) from exc

    async def put_setting(self, target: str, over: Overrides) -> bool:
        """See :meth:`SettingsStore.put_setting`."""
        return await self._run(self._ops.put_setting(target, over))

    async def remove_setting(self, target: str) -> bool:
        """See :meth:`SettingsStore.remove_setting`."""
        return await self._run(self._ops.remove_setting(target))

    async def put_entry(self, which: str, entry: str, *, note: str = "",
                        now: float | None = None) -> str:
        """See :meth:`SettingsStore.put_entry`."""
        return await self._run(self._ops.put_entry(which, entry, note=note,
                                                   now=time.time() if now is None else now))

    async def remove_entry(self, which: str, entry: str) -> bool:
        """See :meth:`SettingsStore.remove_entry`."""
        return await self._run(self._ops.remove_entry(which, entry))

    async def settings(self) -> dict[str, Overrides]:
        """See :meth:`SettingsStore.settings`."""
        return await self._run(self._ops.settings())

    async def entries(self, which: str) -> list[ListEntry]:
        """See :meth:`SettingsStore.entries`."""
        return await self._run(self._ops.entries(which))


class SnapshotSource(Protocol):
    """What :class:`SettingsCache` reads: :class:`SettingsStore`, or a fake in tests."""

    def version(self) -> int:
        """The change counter.  :raises StoreError: the store failed."""
        ...

    def snapshot(self, *, static_allow: Iterable[str] = (),
                 static_deny: Iterable[str] = ()) -> tuple[SettingsSnapshot, int]:
        """Everything, and how many stored items were invalid.
        :raises StoreError: the store failed."""
        ...


class SettingsCache:
    """The milter's settings: a snapshot, reloaded when the store's version changes.

    Thread-safe; :meth:`current` never blocks on another thread and costs one clock
    read between polls.

    :param store: the Redis store, or ``None`` (static entries only).
    :param refresh: seconds between version polls (``settings.refresh``).
    :param static_allow: / ``static_deny``: ``settings.allow`` / ``settings.deny``.
    :param clock: monotonic seconds.
    """

    def __init__(self, store: SnapshotSource | None, *, refresh: float,
                 static_allow: Iterable[str] = (), static_deny: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._refresh = refresh
        self._static = (tuple(static_allow), tuple(static_deny))
        self._clock = clock
        self._lock = threading.Lock()
        snap, bad = SettingsSnapshot.from_raw({}, (), (), version=-1,
                                              static_allow=self._static[0],
                                              static_deny=self._static[1])
        if bad:
            raise SettingsError("settings.allow or settings.deny holds an invalid entry")
        self._snap = snap
        self._next = 0.0
        self._failing = False

    @classmethod
    def from_config(cls, cfg: Config, client: Any) -> SettingsCache:
        """The cache over ``client`` (``None``: static entries only) with ``[settings]``."""
        s = cfg.settings
        return cls(SettingsStore.from_config(cfg, client) if client is not None else None,
                   refresh=s.refresh, static_allow=s.allow, static_deny=s.deny)

    def current(self) -> SettingsSnapshot:
        """The settings to use now (see the module documentation for Redis trouble)."""
        if self._store is None or self._clock() < self._next:
            return self._snap
        if not self._lock.acquire(blocking=False):
            return self._snap  # another thread is polling; this one does not wait
        try:
            self._next = self._clock() + self._refresh
            self._poll(self._store)
        finally:
            self._lock.release()
        return self._snap

    def _poll(self, store: SnapshotSource) -> None:
        try:
            if store.version() != self._snap.version:
                snap, bad = store.snapshot(static_allow=self._static[0],
                                           static_deny=self._static[1])
                self._snap = snap
                event(log, "settings_loaded", version=snap.version,
                      targets=len(snap.policies), allow=len(snap.entries("allow")),
                      deny=len(snap.entries("deny")), invalid=bad or None)
            if self._failing:
                self._failing = False
                event(log, "settings_store_back", version=self._snap.version)
        except StoreError as exc:
            if not self._failing:  # once per outage, not once per poll
                self._failing = True
                event(log, "settings_store_failed", logging.WARNING, error=str(exc)[:300],
                      using_version=self._snap.version)


def settings_json(settings: Mapping[str, Overrides]) -> list[dict[str, Any]]:
    """``[{"target", <thresholds>}]`` for the CLI's and the API's listings."""
    return [{"target": t, **o.to_json()} for t, o in settings.items()]
