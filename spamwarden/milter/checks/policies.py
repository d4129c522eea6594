"""Message policies (:class:`~spamwarden.milter.interfaces.MessagePolicy`, e.g. the
advertising-consent rules): their symbols at end of message, their counts after
delivery.  A policy's symbols are declared by its own check module (``consent``);
``[policy.symbols]`` applies to them like to any other.

RCPT-time decisions are not a phase of this registry: the scanner asks each policy
directly (:meth:`~spamwarden.milter.scanner.Scanner.check_rcpt`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ...logs import event
from ..interfaces import HoldsPlaces, Symbol
from ..registry import CheckBase, CheckDecl, Components, Delivered, MessageContext, Phase

__all__ = ["CHECK", "PoliciesCheck"]

log = logging.getLogger("spamwarden.milter")


class PoliciesCheck(CheckBase):
    """Every configured policy, in order."""

    def __init__(self, parts: Components) -> None:
        self.policies = parts.policies
        self.points = parts.points
        self._holding = tuple(p for p in parts.policies if isinstance(p, HoldsPlaces))

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        apply = self.points.apply
        out: list[Symbol] = []
        for policy in self.policies:
            out.extend(apply(s) for s in policy.check_message(msg.view, msg.env, msg.auth))
        return out

    def finish(self, msg: MessageContext) -> None:
        """A message that will not be delivered gives back what its policies took
        (accepted and quarantined mail is delivered: its count replaces the hold)."""
        if msg.action in ("accept", "tag", "quarantine"):
            return
        for policy in self._holding:
            try:
                policy.released(msg.view, msg.env, msg.auth)
            except Exception as exc:  # noqa: BLE001 - a hold left behind ends by itself
                event(log, "policy_release_failed", logging.ERROR,
                      queue_id=msg.env.queue_id or None, error=f"{type(exc).__name__}: {exc}")

    def delivered(self, batch: Sequence[Delivered]) -> None:
        for item in batch:
            try:
                for policy in self.policies:
                    policy.delivered(item.view, item.env, item.verdict.auth)
            except Exception as exc:  # noqa: BLE001 - one message's count must not stop the rest
                event(log, "delivery_count_failed", logging.ERROR,
                      queue_id=item.env.queue_id or None, error=f"{type(exc).__name__}: {exc}")


def _build(parts: Components) -> PoliciesCheck | None:
    return PoliciesCheck(parts) if parts.policies else None


CHECK = CheckDecl(
    name="policies",
    order=50,
    symbols=(),
    phases=frozenset({Phase.MESSAGE, Phase.DELIVERED}),
    build=_build,
)
