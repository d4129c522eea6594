"""The quarantine: messages the milter held (action ``quarantine``, Postfix's hold
queue), listed, released or deleted with Postfix's own commands.

The core is pure: :func:`parse_postqueue_json` reads the output of ``postqueue -j``
(one JSON object per line, Postfix 3.1 and later: ``queue_name``, ``queue_id``,
``arrival_time``, ``message_size``, ``sender``, ``recipients``), keeping only
``hold`` entries, skipping what does not parse and stopping at a count;
:func:`check_queue_id` admits only a Postfix queue id, short (upper-case hex) or
long (``enable_long_queue_ids``: the 52-character alphabet without vowels, with a
``z`` separator), so that nothing else — ``ALL``, an option, a path — ever reaches
a command line.

:class:`PostfixQueue` is the adapter: it runs ``postqueue -j``, ``postsuper -H`` (then
``postqueue -i``), ``postsuper -d`` and ``postcat -bh -q`` as argv lists (never through a shell) with
``-c [quarantine] postfix_config_dir``, a timeout and bounded output, optionally
through ``sudo -n`` (postsuper and postcat need root: docs/operations.md,
"Quarantine").  Its failures are :class:`QuarantineError`;
:class:`QuarantineUnavailable` when Postfix is not there at all.

What the console's page and ``spamwarden quarantine`` both do is here, once:
:func:`release_as_ham` (read, learn as not spam, then release), :func:`learn_user` and
:func:`ham_learner` (who files it, over which intake), and :func:`holds_mail` (whether
the milter's policy can hold mail at all, for ``spamwarden doctor``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .config import QuarantineConfig
from .errors import QuarantineError, QuarantineUnavailable

if TYPE_CHECKING:
    from .config import Config
    from .reputation.intake import ComplaintIntake, LearnOutcome

__all__ = [
    "HeldMessage",
    "HoldQueue",
    "LearnHam",
    "PostfixQueue",
    "QuarantineError",
    "QuarantineUnavailable",
    "check_queue_id",
    "ham_learner",
    "holds_mail",
    "is_queue_id",
    "learn_user",
    "parse_postqueue_json",
    "release_as_ham",
]

#: a Postfix short queue id: upper-case hex (microseconds and inode number)
_SHORT_ID = re.compile(r"[0-9A-F]{6,20}")
#: a long queue id: seconds and microseconds, "z", the inode number, in Postfix's
#: 52-character alphabet (digits and consonants; "z" is only the separator)
_LONG_CHARS = "0-9BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy"
_LONG_ID = re.compile(f"[{_LONG_CHARS}]{{10,20}}z[{_LONG_CHARS}Z]{{1,20}}")
#: characters of one address or delay reason kept
_MAX_FIELD = 500
#: recipients kept per held message
MAX_RCPTS = 50
#: bytes of Postfix command output read at most (postqueue -j for max_messages lines)
MAX_OUTPUT = 8 * 1024 * 1024


def is_queue_id(text: str) -> bool:
    """True when ``text`` is a Postfix queue id (short or long form), nothing else."""
    return bool(_SHORT_ID.fullmatch(text) or _LONG_ID.fullmatch(text))


def check_queue_id(text: str) -> str:
    """``text`` when it is a Postfix queue id.

    :raises QuarantineError: it is anything else (``ALL``, ``-d``, ``../x``, spaces …).
    """
    if not isinstance(text, str) or not is_queue_id(text):
        raise QuarantineError("not a Postfix queue id")
    return text


@dataclass(frozen=True)
class HeldMessage:
    """One message in the hold queue.

    :ivar queue_id: Postfix's queue id (checked by :func:`is_queue_id`).
    :ivar arrival_time: Unix seconds.
    :ivar size: bytes (``message_size``).
    :ivar sender: the envelope sender (``""`` for the null sender).
    :ivar recipients: the envelope recipients still to deliver (at most :data:`MAX_RCPTS`).
    :ivar rcpt_count: how many there were.
    """

    queue_id: str
    arrival_time: float
    size: int
    sender: str
    recipients: tuple[str, ...]
    rcpt_count: int


def _text(v: object) -> str:
    s = v if isinstance(v, str) else ""
    return s[:_MAX_FIELD]


def _number(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return 0.0
    f = float(v)
    return f if f == f and 0 <= f < 1e13 else 0.0


def parse_postqueue_json(lines: Iterable[bytes | str], *, limit: int) -> list[HeldMessage]:
    """The held messages in ``postqueue -j`` output, in its order.

    Only ``queue_name == "hold"`` entries count; a line that is not a JSON object,
    or whose ``queue_id`` is not a queue id, is skipped; at most ``limit`` are returned.
    Postfix writes the null sender as ``MAILER-DAEMON``; it is given as ``""``.

    :param lines: the output, one JSON object per line (Postfix >= 3.1, postqueue(1)).
    :param limit: held messages returned at most.
    :returns: the held messages.
    """
    out: list[HeldMessage] = []
    for line in lines:
        if len(out) >= limit:
            break
        try:
            entry = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(entry, dict) or entry.get("queue_name") != "hold":
            continue
        qid = entry.get("queue_id")
        if not isinstance(qid, str) or not is_queue_id(qid):
            continue
        raw_rcpts = entry.get("recipients")
        rcpts = [r.get("address") for r in raw_rcpts if isinstance(r, dict)] \
            if isinstance(raw_rcpts, list) else []
        addrs = tuple(_text(a) for a in rcpts if isinstance(a, str))
        sender = _text(entry.get("sender"))
        out.append(HeldMessage(
            queue_id=qid, arrival_time=_number(entry.get("arrival_time")),
            size=int(_number(entry.get("message_size"))),
            sender="" if sender == "MAILER-DAEMON" else sender,
            recipients=addrs[:MAX_RCPTS], rcpt_count=len(addrs)))
    return out


class HoldQueue(Protocol):
    """What the console's quarantine page drives (:class:`PostfixQueue` in production)."""

    async def held(self) -> list[HeldMessage]:
        """The messages on hold (bounded).

        :raises QuarantineError: the listing failed (:class:`QuarantineUnavailable`: no Postfix).
        """
        ...

    async def release(self, queue_id: str) -> None:
        """Take one message off hold, so that Postfix delivers it.

        :raises QuarantineError: a bad queue id, the message is not on hold, or the command failed.
        """
        ...

    async def delete(self, queue_id: str) -> None:
        """Delete one held message.

        :raises QuarantineError: a bad queue id, the message is not on hold, or the command failed.
        """
        ...

    async def read(self, queue_id: str, *, max_bytes: int) -> bytes:
        """The held message's header and body (as Postfix queued it).

        :raises QuarantineError: a bad queue id, no such message, the command failed,
            or the message is larger than ``max_bytes``.
        """
        ...

    async def head(self, queue_id: str, *, max_bytes: int) -> bytes:
        """The first ``max_bytes`` bytes of the message (header first): what is shown
        of it; a longer message is cut, not refused.

        :raises QuarantineError: a bad queue id, no such message, or the command failed.
        """
        ...


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the command and whatever it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_COUNT = re.compile(rb"(Released from hold|Deleted): (\d+) message")
#: a queue id that stands for any when asking sudo what it allows
_EXAMPLE_ID = "ABCDEF0123"


def _postsuper_args(flag: str, qid: str) -> list[str]:
    """``-H ID`` (release) or ``-d ID hold`` (delete, only from the hold queue)."""
    return [flag, qid, "hold"] if flag == "-d" else [flag, qid]


def _postcat_args(qid: str) -> list[str]:
    """``-bh -q ID``: header and body of a queued message, without Postfix's records."""
    return ["-bh", "-q", qid]


class PostfixQueue:
    """:class:`HoldQueue` over Postfix's commands (see the module docstring).

    :param cfg: ``[quarantine]``.
    """

    def __init__(self, cfg: QuarantineConfig) -> None:
        self.cfg = cfg

    def _argv(self, program: str, args: Sequence[str], *, privileged: bool) -> list[str]:
        conf = ["-c", self.cfg.postfix_config_dir] if self.cfg.postfix_config_dir else []
        sudo = [self.cfg.sudo, "-n"] if privileged and self.cfg.sudo else []
        return [*sudo, program, *conf, *args]

    async def _run(self, argv: list[str], *, limit: int = MAX_OUTPUT, cut: bool = False,
                   name: str = "") -> tuple[bytes, bytes]:
        """Run ``argv``; its standard output (at most ``limit`` bytes) and error.

        :param cut: output past ``limit`` is cut there (the command is stopped) instead
            of being an error.
        :param name: what errors call the command (default: the Postfix program's name).
        :raises QuarantineUnavailable: the program is missing, or Postfix's configuration is.
        :raises QuarantineError: it timed out, failed or wrote more than ``limit`` bytes.
        """
        shown = argv[1:] if self.cfg.sudo and argv[0] == self.cfg.sudo else argv
        name = name or os.path.basename(next((a for a in shown if not a.startswith("-")),
                                             argv[0]))
        if self.cfg.postfix_config_dir and not os.path.isfile(
                os.path.join(self.cfg.postfix_config_dir, "main.cf")):
            raise QuarantineUnavailable(
                f"no main.cf in quarantine.postfix_config_dir {self.cfg.postfix_config_dir}")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except (FileNotFoundError, PermissionError) as exc:
            raise QuarantineUnavailable(f"cannot run {argv[0]}: {exc.strerror}") from exc
        except OSError as exc:
            raise QuarantineError(f"cannot run {argv[0]}: {exc}") from exc
        # on timeout the process is killed, which ends its pipes and so the reading task
        task = asyncio.ensure_future(self._collect(proc, limit))
        done, _ = await asyncio.wait({task}, timeout=self.cfg.timeout)
        if not done:
            _kill(proc)
            done, _ = await asyncio.wait({task}, timeout=5.0)
            if not done:  # a child of it still holds the pipes
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise QuarantineError(f"{name} did not finish within {self.cfg.timeout:g} s")
        out, err = task.result()
        if len(out) > limit and cut:
            return out[:limit], err
        if len(out) > limit:
            raise QuarantineError(f"{name} wrote more than {limit} bytes")
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace").strip().splitlines()
            detail = text[-1][:300] if text else f"exit status {proc.returncode}"
            if "main.cf" in detail and "No such file" in detail:
                raise QuarantineUnavailable(f"{name}: {detail}")
            raise QuarantineError(f"{name} failed: {detail}")
        return out, err

    @staticmethod
    async def _collect(proc: asyncio.subprocess.Process, limit: int) -> tuple[bytes, bytes]:
        """Standard output up to just past ``limit`` bytes (then the process is killed),
        and standard error; both pipes are read to their end and closed."""
        assert proc.stdout is not None
        out = bytearray()
        while len(out) <= limit:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                break
            out += chunk
        if len(out) > limit:
            _kill(proc)
        _, err = await proc.communicate()
        return bytes(out), err

    async def held(self) -> list[HeldMessage]:
        """See :meth:`HoldQueue.held` (``postqueue -j``)."""
        out, _ = await self._run(self._argv(self.cfg.postqueue, ["-j"], privileged=False))
        return parse_postqueue_json(out.splitlines(), limit=self.cfg.max_messages)

    async def _postsuper(self, flag: str, queue_id: str, what: str) -> None:
        qid = check_queue_id(queue_id)
        _, err = await self._run(self._argv(self.cfg.postsuper, _postsuper_args(flag, qid),
                                            privileged=True))
        m = _COUNT.search(err)
        if m is None or int(m.group(2)) < 1:
            raise QuarantineError(f"{qid} is not in the hold queue (nothing {what})")

    async def release(self, queue_id: str) -> None:
        """See :meth:`HoldQueue.release`: ``postsuper -H ID`` moves it to the deferred
        queue, then ``postqueue -i ID`` has it delivered now rather than at the next
        queue run (if that fails, the next queue run delivers it)."""
        await self._postsuper("-H", queue_id, "released")
        try:
            await self._run(self._argv(self.cfg.postqueue, ["-i", queue_id],
                                       privileged=False))
        except QuarantineError:
            pass  # released all the same; the queue manager picks it up later

    async def delete(self, queue_id: str) -> None:
        """See :meth:`HoldQueue.delete` (``postsuper -d ID hold``: only from the hold queue)."""
        await self._postsuper("-d", queue_id, "deleted")

    async def read(self, queue_id: str, *, max_bytes: int) -> bytes:
        """See :meth:`HoldQueue.read` (``postcat -bh -q ID``)."""
        qid = check_queue_id(queue_id)
        out, _ = await self._run(self._argv(self.cfg.postcat, _postcat_args(qid),
                                            privileged=True), limit=max_bytes)
        return out

    async def head(self, queue_id: str, *, max_bytes: int) -> bytes:
        """See :meth:`HoldQueue.head`: the same ``postcat -bh -q ID`` as :meth:`read`
        (so the one sudoers rule covers both), stopped after ``max_bytes``."""
        qid = check_queue_id(queue_id)
        out, _ = await self._run(self._argv(self.cfg.postcat, _postcat_args(qid),
                                            privileged=True), limit=max_bytes, cut=True)
        return out

    async def sudo_refusals(self) -> list[str]:
        """The privileged command lines this queue runs that ``sudo -n -l`` does not allow
        (as ``quarantine.sudo``'s user; an example queue id stands for the real ones).

        :returns: one line per refused command (empty: sudo allows them all, or
            ``quarantine.sudo`` is empty and nothing goes through sudo).
        :raises QuarantineUnavailable: sudo is missing, or Postfix's configuration is.
        """
        if not self.cfg.sudo:
            return []
        refused = []
        for program, args in ((self.cfg.postsuper, _postsuper_args("-H", _EXAMPLE_ID)),
                              (self.cfg.postsuper, _postsuper_args("-d", _EXAMPLE_ID)),
                              (self.cfg.postcat, _postcat_args(_EXAMPLE_ID))):
            argv = self._argv(program, args, privileged=True)
            try:
                await self._run([argv[0], "-l", *argv[1:]], name="sudo -l")
            except QuarantineUnavailable:
                raise
            except QuarantineError as exc:
                refused.append(f"{' '.join(argv)} ({exc})")
        return refused


#: files a raw message as not spam (the ``spamwarden learn --ham`` path): raw -> outcome
LearnHam = Callable[[bytes], Awaitable["LearnOutcome"]]


def learn_user(cfg: Config) -> str:
    """Who a release-and-learn files the message as: ``quarantine.learn_user``, else
    ``postmaster@`` the first of ``intake.local_domains`` ("" when there is none)."""
    if cfg.quarantine.learn_user.strip():
        return cfg.quarantine.learn_user.strip()
    domains = [d.strip().rstrip(".") for d in cfg.intake.local_domains if d.strip()]
    return f"postmaster@{domains[0]}" if domains else ""


def ham_learner(cfg: Config, make_intake: Callable[[], ComplaintIntake]) -> LearnHam:
    """The learning of a held message as not spam, as :func:`learn_user`, through the
    intake policy ``make_intake()`` builds on first use
    (:meth:`~spamwarden.reputation.intake.ComplaintIntake.learn`, as ``spamwarden learn
    --ham`` and ``POST /v1/learn`` store a mailbox move).

    :param cfg: the configuration (``quarantine.learn_user``, ``intake.local_domains``).
    :param make_intake: builds the intake policy (called at most once).
    :returns: the learn function; with no user to file as, its outcome is ``refused``.
    """
    made: list[ComplaintIntake] = []

    async def learn(raw: bytes) -> LearnOutcome:
        from .reputation.intake import LearnOutcome

        user = learn_user(cfg)
        if not user:
            return LearnOutcome("refused", message="set quarantine.learn_user (or "
                                "intake.local_domains) to learn from the quarantine")
        if not made:
            made.append(make_intake())
        # the message is in our own hold queue: it arrived here, to whoever it was for
        out: LearnOutcome = await made[0].learn("ham", user, raw, held_here=True)
        return out

    return learn


async def release_as_ham(queue: HoldQueue, queue_id: str, *, learn: LearnHam,
                         max_bytes: int) -> str | None:
    """Learn a held message as not spam, then release it; nothing is released when
    learning did not store it.

    :param queue: the hold queue.
    :param queue_id: the message (checked by :func:`check_queue_id` first).
    :param learn: files the raw message as not spam (:func:`ham_learner`).
    :param max_bytes: the message is read up to this size (``intake.max_message_bytes``).
    :returns: ``None`` when learned and released, else why learning refused it.
    :raises QuarantineError: a bad queue id, the message is not on hold (only held
        messages are read), or a Postfix command failed.
    """
    qid = check_queue_id(queue_id)
    if qid not in {m.queue_id for m in await queue.held()}:
        raise QuarantineError(f"{qid} is not in the hold queue")
    raw = await queue.read(qid, max_bytes=max_bytes)
    out = await learn(raw)
    if not out.stored:
        return out.message or out.status
    await queue.release(qid)
    return None


def holds_mail(cfg: Config) -> tuple[bool, str]:
    """Whether the milter can hold mail (action ``quarantine``) under this configuration,
    and why: what decides whether ``spamwarden doctor`` checks the quarantine by default.

    With ``milter.quarantine = "tag"`` nothing is ever held.  With ``"hold"`` mail is
    held by score when ``policy.quarantine_threshold`` is below ``reject_threshold``, and
    whatever the thresholds by a DMARC ``p=quarantine`` failure (``DMARC_QUARANTINE``
    holds, RFC 7489 §6.3), so the answer is then always yes.

    :returns: (can hold, one line saying why).
    """
    if cfg.milter.quarantine != "hold":
        return False, (f'milter.quarantine is "{cfg.milter.quarantine}": the milter tags '
                       "what it would hold, so nothing waits in the hold queue")
    p = cfg.policy
    if p.quarantine_threshold < p.reject_threshold:
        return True, (f"the milter holds scores from policy.quarantine_threshold "
                      f"{p.quarantine_threshold:g} up to reject_threshold "
                      f"{p.reject_threshold:g}, and DMARC p=quarantine failures")
    return True, ("the milter holds DMARC p=quarantine failures (no score alone holds: "
                  "policy.quarantine_threshold is not below reject_threshold)")
