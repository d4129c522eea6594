"""The start banner's line on how to send intake a report."""

from __future__ import annotations

from spamwarden.config import config_from_mapping
from spamwarden.supervisor import _report_hint, service_addresses


def test_with_require_auth_the_banner_points_at_postfix() -> None:
    """A report sent straight to intake carries no login its Postfix recorded and is
    refused: the banner must not suggest one."""
    hint = _report_hint(config_from_mapping({"intake": {"local_domains": ["example.net"]}}))
    assert hint.startswith("forward spam to report@example.net through your Postfix as a "
                           "logged-in user")
    assert "swaks" not in hint


def test_without_require_auth_a_command_that_reaches_intake() -> None:
    cfg = config_from_mapping({"intake": {"require_auth": False, "listen": "127.0.0.1:2525"}})
    assert _report_hint(cfg) == (
        "swaks --server 127.0.0.1:2525 --from user@localhost --to report@localhost "
        "--attach-type message/rfc822 --attach @spam.eml")
    cfg = config_from_mapping({"intake": {"require_auth": False, "lmtp": True,
                                          "listen": "unix:/run/sw/intake.sock"}})
    assert _report_hint(cfg).startswith("swaks --socket /run/sw/intake.sock --protocol LMTP ")
    assert service_addresses(cfg)["intake"] == "unix:/run/sw/intake.sock (LMTP)"
