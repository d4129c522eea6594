"""The intake's protocol replies (the ones aiosmtpd writes itself) in ``i18n.language``.

aiosmtpd answers a command out of sequence, a syntax error, an oversized message and
the like with fixed English lines (``503 Error: need RCPT command``, ``552 Error: Too much
mail data``) from inside its command handlers, with no hook to change them. The intake's
protocol class passes every line it sends through :func:`localize`, which recognises
those lines by code and text and puts the catalogue's ``intake.smtp.*`` text in their
place (folded to ASCII, :func:`spamwarden.i18n.smtp_text`). The reply code and the
enhanced status code (RFC 3463), when aiosmtpd gives one, are kept as they are; a line
that is not one of :data:`PROTOCOL_LINES` (the intake's own replies, the greeting, the
EHLO keywords, a text a later aiosmtpd words differently) goes out unchanged, so an
upgrade can only leave a text in English, never break a reply.

The lines are those of aiosmtpd 1.4 (``aiosmtpd/smtp.py``, ``lmtp.py``); a unit test reads
the installed aiosmtpd and fails on a human-facing line this table does not know.
"""

from __future__ import annotations

import re

from ..i18n import smtp_text

__all__ = ["PROTOCOL_LINES", "localize"]

_CODE = r"(?P<code>[2-5]\d\d(?: [2-5]\.\d{1,3}\.\d{1,3})?)"

#: (the text after the code(s) as aiosmtpd writes it, a regular expression whose named
#: groups are the catalogue placeholders; the catalogue id of its text); the first that
#: matches wins
PROTOCOL_LINES: tuple[tuple[str, str], ...] = (
    # HELP <command> answers 250 with the same words as a 501 syntax error
    (r"(?<=^250 )Syntax: (?P<syntax>.+)", "intake.smtp.help_syntax"),
    (r"OK", "intake.smtp.ok"),
    (r"Bye", "intake.smtp.bye"),
    (r"End data with <CR><LF>\.<CR><LF>", "intake.smtp.start_data"),
    (r"Syntax: (?P<syntax>[A-Z]{4,8}\b.*)", "intake.smtp.syntax"),
    (r"Supported commands: (?P<commands>[A-Z ]*)", "intake.smtp.help"),
    (r"Error: bad syntax", "intake.smtp.bad_syntax"),
    (r"Command line too long", "intake.smtp.line_too_long"),
    (r"Line too long \(see RFC5321 4\.5\.3\.1\.6\)", "intake.smtp.data_line_too_long"),
    (r"Error: strict ASCII mode", "intake.smtp.ascii_only"),
    (r"Error: command [\"'](?P<command>[^\"']*)[\"'] not recognized",
     "intake.smtp.unknown_command"),
    (r"Too many unrecognized commands, goodbye\.", "intake.smtp.too_many_unknown"),
    (r"(?P<command>\S+) sent too many times", "intake.smtp.too_many_calls"),
    (r"Error: send (?P<helo>\S+) first", "intake.smtp.helo_first"),
    (r"Error: need MAIL command", "intake.smtp.mail_first"),
    (r"Error: need RCPT command", "intake.smtp.rcpt_first"),
    (r"Error: nested MAIL command", "intake.smtp.nested_mail"),
    (r"Error: malformed address", "intake.smtp.malformed_address"),
    (r"Error: BODY can only be one of 7BIT, 8BITMIME", "intake.smtp.body_param"),
    (r"Error: SMTPUTF8 takes no arguments", "intake.smtp.smtputf8_arg"),
    (r"Error: SMTPUTF8 disabled", "intake.smtp.smtputf8_disabled"),
    (r"Error: message size exceeds fixed maximum message size", "intake.smtp.size_exceeded"),
    (r"Error: Too much mail data", "intake.smtp.too_much_data"),
    (r"(?P<command>MAIL FROM|RCPT TO) parameters not recognized or not implemented",
     "intake.smtp.params_unknown"),
    (r"Could not VRFY (?P<address>.*)", "intake.smtp.vrfy_failed"),
    (r"Cannot VRFY user, but will accept message and attempt delivery",
     "intake.smtp.vrfy_unknown"),
    (r"EXPN not implemented", "intake.smtp.expn"),
    (r"Authentication required", "intake.smtp.auth_required"),
    (r"Encryption required for requested authentication mechanism",
     "intake.smtp.auth_encryption"),
    (r"Already authenticated", "intake.smtp.already_authenticated"),
    (r"Must issue a STARTTLS command first", "intake.smtp.starttls_first"),
    (r"TLS not available", "intake.smtp.tls_unavailable"),
    (r"Command refused due to lack of security", "intake.smtp.insecure"),
)

_COMPILED = tuple((re.compile(rf"{_CODE} {pattern}", re.DOTALL), msg_id)
                  for pattern, msg_id in PROTOCOL_LINES)


def localize(language: str, line: str) -> str:
    """``line`` (one reply line as aiosmtpd would send it, without CRLF) with its text in
    ``language`` (RFC 5321 §4.2: the code, and the enhanced status code of RFC 3463 §2,
    unchanged).

    :param language: ``i18n.language``; for ``en`` the line is returned as it is.
    :param line: the reply line.
    :returns: the line with the catalogue's text, ASCII; ``line`` itself when it is not
        one of :data:`PROTOCOL_LINES` (or the language is English).
    """
    if language == "en" or len(line) > 1000:
        return line
    for rx, msg_id in _COMPILED:
        m = rx.fullmatch(line)
        if m is not None:
            values = {k: v for k, v in m.groupdict().items() if k != "code"}
            return f"{m.group('code')} {smtp_text(language, msg_id, **values)}"
    return line
