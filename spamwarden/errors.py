"""The exception tree of spamwarden.

Every error the package raises on purpose derives from :class:`SpamwardenError`;
third-party errors are caught at the boundary and re-raised as one of these with
``raise Ours(...) from exc`` so callers need to know one tree::

    SpamwardenError
    ├── ConfigError              the configuration file is unusable
    ├── MessageError             a message cannot be parsed into anything useful
    ├── DnsError                 a DNS lookup could not be answered
    │   └── DnsTimeout           ... because no server answered in time
    ├── StoreError               the shared store (Redis) failed
    │   └── StoreUnavailable     ... because it cannot be reached
    ├── DelistQueueFull          too many delisting requests are waiting (all, or one key's)
    ├── ModelError               a model file is missing, corrupt or incompatible
    ├── ReportError              a complaint report has no usable original
    ├── DnsFormatError           a DNS packet is malformed (answered FORMERR)
    ├── ServiceError             a daemon could not start or stopped badly
    └── QuarantineError          a Postfix hold-queue command failed
        └── QuarantineUnavailable ... because Postfix is not there or not configured

A class's docstring is its message when no other text is given.
"""

from __future__ import annotations

__all__ = [
    "SpamwardenError",
    "ConfigError",
    "MessageError",
    "DnsError",
    "DnsTimeout",
    "StoreError",
    "StoreUnavailable",
    "DelistQueueFull",
    "ModelError",
    "ReportError",
    "DnsFormatError",
    "ServiceError",
    "QuarantineError",
    "QuarantineUnavailable",
]


class SpamwardenError(Exception):
    """spamwarden failed."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (self.__doc__ or type(self).__name__,)))


class ConfigError(SpamwardenError):
    """The configuration is invalid."""


class MessageError(SpamwardenError):
    """The message cannot be parsed."""


class DnsError(SpamwardenError):
    """A DNS lookup failed temporarily."""


class DnsTimeout(DnsError):
    """No DNS server answered in time."""


class StoreError(SpamwardenError):
    """The store (Redis) failed."""


class StoreUnavailable(StoreError):
    """The store (Redis) cannot be reached."""


class DelistQueueFull(SpamwardenError):
    """Too many delisting requests are waiting for an operator.

    :param key: the listed key whose own bound was reached; empty: the bound of all
        pending requests was.
    :param mine: the requester's own request of ``key`` is pending already (one each).
    """

    def __init__(self, *args: object, key: str = "", mine: bool = False) -> None:
        super().__init__(*args)
        self.key = key
        self.mine = mine


class DelistRequestStale(SpamwardenError):
    """A delisting request cannot be approved: the listing it was filed against ended,
    and its key has been listed again since (a new offence the request never spoke of).

    :param key: the listed key.
    :param listed_at: when the listing in force began (Unix seconds).
    """

    def __init__(self, *args: object, key: str = "", listed_at: float = 0.0) -> None:
        super().__init__(*args)
        self.key = key
        self.listed_at = listed_at


class ModelError(SpamwardenError):
    """The model file cannot be used."""


class ReportError(SpamwardenError):
    """The report contains no usable original message."""


class DnsFormatError(SpamwardenError):
    """The DNS packet is malformed."""


class ServiceError(SpamwardenError):
    """A service could not start or stopped unexpectedly."""


class QuarantineError(SpamwardenError):
    """A Postfix hold-queue command failed, or the message is not on hold."""


class QuarantineUnavailable(QuarantineError):
    """The quarantine is not configured: Postfix's commands or configuration are missing."""
