"""The delivery ledger: every accepted message is recorded after the reply (client IP,
authenticated names, link domains, recipients), so that a later complaint lists only
what this server really delivered (``reputation.deliveries``).  Intake addresses are
never recorded as recipients.  No symbols: it only counts."""

from __future__ import annotations

from collections.abc import Sequence

from ..interfaces import RecordsDeliveries
from ..registry import CheckBase, CheckDecl, Components, Delivered, Phase

__all__ = ["CHECK", "LedgerCheck"]


class LedgerCheck(CheckBase):
    """Records each batch of accepted messages with one ledger call."""

    def __init__(self, deliveries: RecordsDeliveries, *, skip_recipients: frozenset[str]
                 ) -> None:
        self.deliveries = deliveries
        self.skip_recipients = skip_recipients

    def delivered(self, batch: Sequence[Delivered]) -> None:
        self.deliveries.record_delivered([(item.verdict, item.env) for item in batch],
                                         skip_recipients=self.skip_recipients)


def _build(parts: Components) -> LedgerCheck | None:
    if parts.deliveries is None:
        return None
    return LedgerCheck(parts.deliveries, skip_recipients=parts.cfg.intake.addresses())


CHECK = CheckDecl(
    name="ledger",
    order=95,
    symbols=(),
    phases=frozenset({Phase.DELIVERED}),
    build=_build,
)
