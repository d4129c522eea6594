"""An in-memory delivery ledger for unit tests: both Protocols of
:mod:`spamwarden.reputation.deliveries` (the milter's DeliveryLedger, intake's
DeliveryLookup), answering with the same pure :func:`decide_among` as Redis."""

from __future__ import annotations

from collections.abc import Sequence

from spamwarden.reputation.deliveries import (
    MAX_CANDIDATES,
    CopyEvidence,
    Delivery,
    Match,
    clean_message_id,
    decide_among,
)


class MemoryDeliveryLedger:
    """Keeps deliveries in a list; the newest :data:`MAX_CANDIDATES` deliveries of a
    content / Message-ID to a recipient are the candidates, as with the Redis lists."""

    def __init__(self, deliveries: Sequence[Delivery] = ()) -> None:
        self.deliveries: list[Delivery] = list(deliveries)
        self.batches: list[int] = []

    def record_many(self, deliveries: Sequence[Delivery]) -> None:
        self.batches.append(len(deliveries))
        self.deliveries.extend(deliveries)

    async def match(self, reporter: str, *, fingerprint: str | None,
                    message_id: str | None, copy: CopyEvidence | None = None) -> Match:
        mid = clean_message_id(message_id)

        def newest(pred: object) -> list[Delivery]:
            found = [d for d in self.deliveries if pred(d)]  # type: ignore[operator]
            return found[-MAX_CANDIDATES:]

        by_content = newest(lambda d: d.has_content(fingerprint) and reporter in d.recipients)
        by_mid = newest(lambda d: mid and d.message_id == mid and reporter in d.recipients)
        anyone = any(d.has_content(fingerprint) or (mid and d.message_id == mid)
                     for d in self.deliveries)
        return decide_among(fingerprint=fingerprint, message_id=message_id,
                            by_content=by_content, by_message_id=by_mid, any_recipient=anyone,
                            copy=copy)
