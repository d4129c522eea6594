"""Patterns of the rule engine's evals and preparation that backtracked without bound on
text a sender writes, each replaced by code that does the same work in one pass. Each
test holds the new code to the old pattern on random short texts (where the old one is
quick), then runs the hostile text that took the old one seconds or minutes: the evals
and the preparation run outside the engine's time limit, holding the interpreter lock."""

from __future__ import annotations

import random
import re

import pytest

from spamwarden.rules import _freemail

# the patterns as they were
OLD_WELCOME = re.compile(
    r"^(?:abuse|support|sales|info|helpdesk|contact|kontakt|(?:post|host|domain)master"
    r"|undisclosed.*|request-[a-f0-9]{16}|bounced?-"
    r"|[a-f0-9]{8}(?:\.[a-f0-9]{8}|-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12})"
    r"|.+=.+=.+)@", re.IGNORECASE)
OLD_BULK = re.compile(
    r"(?:^(?:post|host|domain)master|^double-bounce|^(?:sentto|owner|return|(?:gr)?bounced?)-.+"
    r"|-(?:request|bounces?|admin|owner)|\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)|.+=.+)@",
    re.IGNORECASE)


def _texts(alphabet: str, n: int = 20_000, most: int = 12) -> list[str]:
    rnd = random.Random(7)
    return [("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, most))))
            for _ in range(n)]


def test_freemail_welcome_and_bulk_envelope_tests_answer_as_their_patterns() -> None:
    for text in _texts("a=@\n.-x", most=14) + ["a=b=c@d", "=a=b@c", "a==b@c", "a=b@c",
                                                "info@x", "x=y\nz@w", "bounce-1@x"]:
        assert _freemail._welcome(text) == (OLD_WELCOME.match(text) is not None), text
        assert _freemail._bulk_envfrom(text) == (OLD_BULK.search(text) is not None), text


@pytest.mark.parametrize("text", [
    "x@" + "a=" * 5000 + "a",  # 10 KB of a From/Reply-To address: hours before
    "epost@360" + "=" * 8000,
    "a" * 100_000 + "@b.c",  # an envelope sender without "=": quadratic before
])
def test_hostile_addresses_are_read_in_one_pass(text: str) -> None:
    assert not _freemail._welcome(text)
    assert _freemail._bulk_envfrom(text) == ("=" in text.split("@")[0][1:])


OLD_SENDMAIL = re.compile(
    r"^from .*?(?:\](?: \([^)]*\))?\)|\)\]) .*?\(.*?authenticated.*?\).*? by")


def test_the_sendmail_received_test_answers_as_its_pattern() -> None:
    from spamwarden.rules._relays import _sendmail_auth

    rnd = random.Random(11)
    words = ["from ", "]", ")", "(", " ", "authenticated", " by", "x", "\n", "] (", "))",
             ")]", "[1.2.3.4]"]
    texts = ["from " + "".join(rnd.choice(words) for _ in range(rnd.randint(0, 12)))
             for _ in range(30_000)]
    texts += ["from a (b [1.2.3.4]) (authenticated bits=0) by mx.example",
              "from a ([1.2.3.4] (may be forged)) (authenticated as x) by y",
              "from a (b )] (authenticated) by c", "from a (b [1.2.3.4]) by c"]
    for text in texts:
        assert _sendmail_auth(text) == (OLD_SENDMAIL.search(text) is not None), text


@pytest.mark.parametrize("text", [
    "from a (b [198.51.100.7]) " + "(authenticated) " * 5000,  # 80 KB: weeks before
    "from a " + "] (" * 30_000 + "authenticated) by",
])
def test_a_hostile_received_line_is_read_in_one_pass(text: str) -> None:
    from spamwarden.rules._relays import _sendmail_auth

    assert not _sendmail_auth(text)


def test_a_long_run_of_blanks_in_quoted_printable_is_read_in_one_pass() -> None:
    """Blanks at a line's end are deleted before decoding; a run of them not followed by
    a line end was tried again from each blank (11 s for 40 KB). The decoding is held to
    the pattern on random texts in test_rules_speed.py."""
    from spamwarden.rules._prepare import qp_decode

    data = b"a \nb" + b" " * 2_000_000 + b"c=3D \r\n"
    assert qp_decode(data) == b"a\nb" + b" " * 2_000_000 + b"c=\n"


def test_literal_elements_are_taken_out_as_before_and_an_unclosed_run_in_one_pass() -> None:
    """HTMLEval's tag list leaves out comments and literal elements' content. A run of
    ``<script `` with no ``>`` after it made the pattern scan to the part's end from each
    of them (12 s for 500 KB): the searches now stop at the last ``>``."""
    from spamwarden.rules import _htmleval
    from spamwarden.rules._html import matches_around_comments

    def before(html: bytes) -> bytes:
        out, pos = [], 0
        for m in matches_around_comments(html, _htmleval._NOT_TAGS,
                                         _htmleval._NOT_TAGS_NO_CLOSE):
            out += [html[pos:m.start()], m.group(1) or b""]
            pos = m.end()
        return b"".join(out) + html[pos:]

    rnd = random.Random(5)
    words = [b"<script", b" ", b">", b"</script>", b"<!--", b"-->", b"--", b"<a>", b"x",
             b"<style>", b"</style >", b"<", b"/", b"<title x", b"</title>"]
    for _ in range(20_000):
        html = b"".join(rnd.choice(words) for _ in range(rnd.randint(0, 14)))
        assert _htmleval._without_not_tags(html) == before(html), html
    hostile = b"<p>a</p>" + b"<script " * 200_000
    assert _htmleval._without_not_tags(hostile) == hostile
    hostile = b"<b>" + b"<script " * 200_000 + b"<!-- x <a href=y"
    assert _htmleval._without_not_tags(hostile) == b"<b>" + b"<script " * 200_000


@pytest.mark.parametrize("charset", ["punycode", "PUNYCODE", "idna"])
def test_a_part_in_a_codec_that_is_no_charset_is_read_as_an_unknown_charset(
        charset: str) -> None:
    """Python's punycode decoder rebuilds the text for every character it inserts: a 1 MB
    part declaring charset=punycode took 45 s to decode, before any check ran."""
    from spamwarden.mail import decode_with_charset, parse_message

    body = b"Cheap pills " + b"a" * 1_000_000 + b"-" + b"b" * 200_000
    assert decode_with_charset(body, charset) == body.decode()
    raw = (b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n\r\n" + body)
    assert parse_message(raw).text.startswith("Cheap pills aaa")


def test_relayevals_hostname_test_answers_as_its_pattern() -> None:
    """RelayEval's ``by`` host pattern is exponential on a host of dots without letters
    (6.6 s for 40): reached by __FORGED_RCVD_TRAIL, which a site's rule may score."""
    from spamwarden.rules._relayeval import _hostname_like

    old = re.compile(r"^\w+(?:[\w.-]+\.)+\w+$")
    for text in _texts("a.-_\n é0", most=10) + ["a.b", "ab.c", "a..b", "mx.example.com\n"]:
        assert _hostname_like(text) == (old.match(text) is not None), text
    assert not _hostname_like("0" + "." * 100_000 + "-")
