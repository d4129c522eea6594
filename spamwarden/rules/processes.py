"""The rule engine in processes of its own: matching off the milter's GIL.

The milter is one Python process whose libmilter threads take turns holding the GIL.
The rule engine makes dozens of Hyperscan scans per message, and the binding lets go
of the GIL around every scan and takes it back for every match it reports: with ten
Postfix connections waiting for the GIL, each of those hand-offs is a thread switch.
Run in its own process, the engine holds its GIL alone and the milter process waits
for one answer per message.

:class:`EngineProcesses` forks ``processes`` children from the process that built the
engine (the milter builds its checks before libmilter starts its threads), so the
compiled databases are shared copy-on-write and nothing is loaded twice.  Each child
owns one end of a private ``socketpair``: the milter sends a
:class:`~spamwarden.rules.PreparedMessage` (pickled: the pipe is never reachable by
anyone but this process and its child, and both run the same code), the child answers
with the hits.  A child that dies or does not answer within ``timeout`` seconds is
killed and forked again; that message is scored without the rules (the caller's
error path), the next one is not.  One found dead while idle is replaced before it is
given a message.  Children die with their parent
(``PR_SET_PDEATHSIG``) and on end of file on their pipe.

The engine's slow lane (:class:`~spamwarden.rules.SlowLane`) is kept by the parent: a
child whose message has taken the lane's ``after`` asks for a place over its pipe and
waits for the answer, and the parent gives the place back when the message's answer
comes or the child is replaced, so a killed child holds none.  There are as many more
children as the lane has places, so the messages in it leave ``processes`` children to
the rest of the mail.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import pickle
import queue
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe

from ..logs import event
from ..mail import MessageView
from ._authfacts import AuthFacts
from ._engine import Hit, RuleEngine, RulesError
from ._prepare import prepare_message

__all__ = ["EngineProcesses"]

log = logging.getLogger("spamwarden.rules")

_PR_SET_PDEATHSIG = 1


@dataclass
class _Child:
    pid: int
    conn: Connection


#: what a child sends instead of an answer when its message needs the slow lane; the
#: parent answers True (a place) or False
_LANE_REQUEST = ("slow_lane",)


class _ParentLane:
    """A child's view of the parent's slow lane (a :class:`~._bounded.Lane`): a place is
    asked for over the pipe; the parent takes it back (:meth:`EngineProcesses.check`)."""

    def __init__(self, conn: Connection, after: float, width: int) -> None:
        self.after = after
        self.width = width
        self.conn = conn

    def enter(self) -> bool:
        self.conn.send_bytes(pickle.dumps(_LANE_REQUEST, protocol=pickle.HIGHEST_PROTOCOL))
        return bool(pickle.loads(self.conn.recv_bytes()))  # noqa: S301 - own pipe

    def leave(self) -> None:
        pass


def _serve(engine: RuleEngine, conn: Connection) -> None:
    """The child's loop: a pickled prepared message in, its hits out, until end of file."""
    lane = engine.slow_lane
    if lane is not None:
        engine.slow_lane = _ParentLane(conn, lane.after, lane.width)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            msg = pickle.loads(data)  # noqa: S301 - own pipe, own code
            # the parent read the URIs with this engine's top-level domains and sent the
            # message without them (a pickled copy of the set costs 0.15 ms)
            msg.tlds = engine.tlds
            hits = engine.check_prepared(msg)
            reply: object = [(h.name, h.score, h.description) for h in hits]
        except Exception as exc:  # noqa: BLE001 - reported to the caller, child lives on
            reply = f"{type(exc).__name__}: {exc}"
        try:
            conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            return


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


class EngineProcesses:
    """``processes`` forked children running ``engine``; :meth:`check` as the engine's.

    Thread-safe: a caller takes a free child (waiting while all are busy), so at most
    ``processes`` messages are matched at once, and the messages in the engine's slow
    lane besides.

    :param engine: the built engine (forked into each child).
    :param processes: children, at least 1 (and one more for each place in the
        engine's slow lane).
    :param timeout: seconds a child may take for one message before it is replaced.
    :raises RulesError: a child cannot be started.
    """

    def __init__(self, engine: RuleEngine, *, processes: int, timeout: float) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.engine = engine
        self.timeout = timeout
        self._lock = threading.Lock()
        self._free: queue.Queue[_Child] = queue.Queue()
        self._children: list[_Child] = []
        self._closed = False
        #: the engine's slow lane, kept here for every child
        self.lane = engine.slow_lane
        for _ in range(processes + (self.lane.width if self.lane is not None else 0)):
            child = self._start()
            self._children.append(child)
            self._free.put(child)

    def _start(self) -> _Child:
        parent_end, child_end = Pipe(duplex=True)
        try:
            pid = os.fork()
        except OSError as exc:
            parent_end.close()
            child_end.close()
            raise RulesError(f"rules: cannot start an engine process: {exc}") from exc
        if pid == 0:  # the child: never returns into the caller's code
            status = 0
            try:
                parent_end.close()
                for other in self._children:
                    other.conn.close()
                _die_with_parent()
                # the milter blocks SIGTERM for libmilter's sigwait thread; a child
                # stops on SIGTERM and leaves SIGINT (a terminal's ^C) to its parent
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                _serve(self.engine, child_end)
            except BaseException:  # noqa: BLE001 - a child must not run its parent's code
                status = 1
            finally:
                os._exit(status)
        child_end.close()
        event(log, "rules_process_started", logging.INFO, pid=pid)
        return _Child(pid, parent_end)

    def _replace(self, child: _Child, why: str) -> None:
        """Kill ``child`` and put a new one in its place (or none, when that fails)."""
        event(log, "rules_process_replaced", logging.ERROR, pid=child.pid, reason=why)
        child.conn.close()
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(child.pid, 0)
        except ChildProcessError:
            pass
        with self._lock:
            self._children.remove(child)
            if self._closed:
                return
            try:
                new = self._start()
            except RulesError as exc:
                event(log, "rules_process_error", logging.ERROR, error=str(exc))
                return
            self._children.append(new)
        self._free.put(new)

    def _take(self) -> _Child:
        """A free child; one that died while idle (its pipe at end of file: readable with
        nothing asked) is replaced first, so no message is lost to it."""
        for _ in range(len(self._children) + 1):
            try:
                child = self._free.get(timeout=self.timeout)
            except queue.Empty:
                break
            try:
                idle_ok = not child.conn.poll(0)
            except OSError:
                idle_ok = False
            if idle_ok:
                return child
            self._replace(child, "exited while idle")
        raise RulesError(f"rules: no engine process free within {self.timeout:g} s")

    def check(self, view: MessageView, raw: bytes, *,
              envelope_from: str | None = None, received: str | None = None,
              auth: AuthFacts | None = None) -> list[Hit]:
        """:meth:`RuleEngine.check <spamwarden.rules.RuleEngine.check>`, in a child.

        :raises RulesError: no child answered (died, timed out or failed on this
            message); the child is replaced for the next message.
        """
        msg = prepare_message(view, raw, envelope_from=envelope_from, received=received,
                              auth=auth, tlds=self.engine.tlds)
        msg.tlds = None  # the child's engine has the same set (_serve)
        payload = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        if self._closed:
            raise RulesError("rules: engine processes are stopped")
        child = self._take()
        in_lane = False
        try:
            child.conn.send_bytes(payload)
            deadline = time.monotonic() + self.timeout
            while True:
                if not child.conn.poll(max(0.0, deadline - time.monotonic())):
                    self._replace(child, f"no answer within {self.timeout:g} s")
                    raise RulesError(f"rules: no answer within {self.timeout:g} s")
                reply = pickle.loads(child.conn.recv_bytes())  # noqa: S301 - own child
                if reply != _LANE_REQUEST:
                    break
                # the message has taken the lane's ``after``: a place, if one is free
                if not in_lane and self.lane is not None:
                    in_lane = self.lane.enter()
                child.conn.send_bytes(pickle.dumps(in_lane, protocol=pickle.HIGHEST_PROTOCOL))
        except (EOFError, OSError) as exc:
            self._replace(child, f"{type(exc).__name__}: {exc}")
            raise RulesError(f"rules: engine process lost: {type(exc).__name__}") from exc
        finally:
            if in_lane:
                assert self.lane is not None
                self.lane.leave()
        self._free.put(child)
        if isinstance(reply, str):
            raise RulesError(f"rules: {reply}")
        return [Hit(name, score, description) for name, score, description in reply]

    def pids(self) -> list[int]:
        """The children's process ids (for tests and ``doctor``)."""
        with self._lock:
            return [c.pid for c in self._children]

    def close(self) -> None:
        """Stop every child: end of file on its pipe, SIGKILL after 2 s; all reaped."""
        with self._lock:
            self._closed = True
            children = list(self._children)
            self._children.clear()
        for c in children:
            c.conn.close()
        deadline = time.monotonic() + 2.0
        for c in children:
            while True:
                try:
                    pid, _ = os.waitpid(c.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    break
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(c.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(c.pid, 0)
                    break
                time.sleep(0.02)
