"""spamwarden.rules: message preparation and evals that SpamAssassin 4.0 does differently
from a naive reading (found by bench/rules/parity against Debian's spamassassin)."""

from __future__ import annotations

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import HAVE_HYPERSCAN, RuleEngine, parse_rule_text, prepare_message

BOTH = [False, True] if HAVE_HYPERSCAN else [False]


def names(rules: str, raw: bytes, *, use_hyperscan: bool = False) -> set[str]:
    engine = RuleEngine(parse_rule_text(rules), use_hyperscan=use_hyperscan)
    return set(engine.counts(prepare_message(parse_message(raw), raw)))


HEAD = (b"From: alice@example.org\n"
        b"Subject: hello\n"
        b"Date: Thu, 22 Aug 2002 18:26:25 +0700\n"
        b"Message-Id: <1@example.org>\n")


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_exists_tocc_is_the_pseudo_header(use_hyperscan: bool) -> None:
    """``exists:ToCc`` asks whether To or Cc is there (REPLYTO_WITHOUT_TO_CC relies on
    it); ``exists:MessageID`` is a header of that name, not the MESSAGEID pseudo-header."""
    rules = ("header __TOCC exists:ToCc\nheader __MID exists:MessageID\n"
             "header __MID2 exists:MESSAGEID\n")
    with_to = HEAD + b"To: bob@example.net\n\nhi\n"
    with_cc = HEAD + b"Cc: bob@example.net\n\nhi\n"
    without = HEAD + b"\nhi\n"
    assert names(rules, with_to, use_hyperscan=use_hyperscan) == {"__TOCC", "__MID2"}
    assert names(rules, with_cc, use_hyperscan=use_hyperscan) == {"__TOCC", "__MID2"}
    assert names(rules, without, use_hyperscan=use_hyperscan) == {"__MID2"}


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_rawbody_reads_text_attachments(use_hyperscan: bool) -> None:
    """SpamAssassin's rawbody is every text/* or message/* leaf, attachments included."""
    raw = (HEAD + b"To: b@example.net\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\n"
           b"Content-Type: text/plain\n\nhello\n--XX\n"
           b"Content-Type: text/plain; name=a.txt\nContent-Disposition: attachment\n\n"
           b"secret words\n--XX--\n")
    assert names("rawbody __ATT /secret words/\n", raw, use_hyperscan=use_hyperscan) == {"__ATT"}


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_uri_list_has_mailto_for_addresses_in_the_text(use_hyperscan: bool) -> None:
    """SpamAssassin's URI list has ``mailto:`` for each address in the text and each
    mailto link: __UNSUB_LINK sees list footers, so KHOP_UNSUB_EMAIL does not hit."""
    rules = (
        "body __UNSUB_EMAIL /\\bunsubscribe\\b[-a-z_0-9.+=]{0,60}\\@[a-z0-9][-a-z_0-9.]{4,20}/i\n"
        "uri __UNSUB_LINK /\\bunsubscribe\\b/i\n"
        "uri __URI_MAILTO /^mailto:/i\n"
        "meta KHOP_UNSUB_EMAIL !__UNSUB_LINK && __UNSUB_EMAIL\n"
    )
    raw = (HEAD + b"To: b@example.net\n\nhello\n\nTo leave, write to "
           b"list-unsubscribe@lists.example.com.\n")
    assert names(rules, raw, use_hyperscan=use_hyperscan) == {
        "__UNSUB_EMAIL", "__UNSUB_LINK", "__URI_MAILTO"}
    html = (HEAD + b"To: b@example.net\nContent-Type: text/html\n\n"
            b"<p><a href=\"mailto:news@example.com?subject=unsubscribe\">leave</a></p>\n")
    assert names(rules, html, use_hyperscan=use_hyperscan) == {"__UNSUB_LINK", "__URI_MAILTO"}
    assert names(rules, HEAD + b"To: b@example.net\n\nVi@gra now\n",
                 use_hyperscan=use_hyperscan) == set()


DATE_RULES = ("header DATE_IN_PAST_12_24 eval:check_for_shifted_date('-24', '-12')\n"
              "header DATE_IN_PAST_03_06 eval:check_for_shifted_date('-6', '-3')\n"
              "header DATE_OK eval:check_for_shifted_date('-3', '3')\n")


def test_shifted_date_takes_the_nearest_received_date() -> None:
    """HeaderEval compares Date with every Received date and keeps the smallest
    difference: a relay with a wrong clock on top does not make the Date look old."""
    raw = (b"Received: from a by mx.example.net; Fri, 23 Aug 2002 14:30:00 +0000\n"
           b"Received: from b by relay.example.org; Thu, 22 Aug 2002 11:27:00 +0000\n"
           + HEAD + b"To: b@example.net\n\nhi\n")
    assert names(DATE_RULES, raw) == {"DATE_OK"}


def test_shifted_date_prefers_resent_date_and_skips_local_hop() -> None:
    raw = (b"Received: from localhost (localhost [127.0.0.1]) by h; "
           b"Sat, 24 Aug 2002 09:00:00 +0000\n"
           b"Received: from b by relay.example.org; Thu, 22 Aug 2002 16:27:00 +0000\n"
           b"Resent-Date: Thu, 22 Aug 2002 11:27:00 +0000\n"
           + HEAD + b"To: b@example.net\n\nhi\n")
    assert names(DATE_RULES, raw) == {"DATE_IN_PAST_03_06"}


MIME_RULES = ("rawbody __MIME_QP eval:check_for_mime('mime_qp_count')\n"
              "rawbody __MIME_ATT eval:check_for_mime('mime_attachment')\n"
              "rawbody MIME_BASE64_TEXT eval:check_for_mime('mime_base64_encoded_text')\n"
              "rawbody __QP_LONG eval:check_for_mime('mime_qp_long_line')\n")


def test_mime_qp_count_counts_needless_escapes_only() -> None:
    """MIMEEval's mime_qp_count ends up as the number of needlessly QP-encoded characters
    (``=41`` for ``A``), not the number of QP parts; ``=3D`` and trailing ``=20`` are fine."""
    qp = HEAD + b"To: b@example.net\nContent-Transfer-Encoding: quoted-printable\n\n"
    assert names(MIME_RULES, qp + b"a=3Db caf=E9 x=20\n") == set()
    assert names(MIME_RULES, qp + b"=46ree offer\n") == {"__MIME_QP"}
    assert names(MIME_RULES, qp + b"x" * 78 + b"\n") == set()
    assert names(MIME_RULES, qp + b"x" * 79 + b"\n") == {"__QP_LONG"}


def test_mime_attachment_and_base64_text_follow_the_disposition() -> None:
    """A file name alone is no attachment; base64 text in an ``inline`` part or with a
    non-ASCII charset is not MIME_BASE64_TEXT."""
    head = HEAD + b"To: b@example.net\nMIME-Version: 1.0\n"
    named = head + b"Content-Type: text/plain; name=a.txt\n\nhello\n"
    assert names(MIME_RULES, named) == set()
    att = head + b"Content-Type: text/plain\nContent-Disposition: attachment\n\nhello\n"
    assert names(MIME_RULES, att) == {"__MIME_ATT"}
    b64 = head + b"Content-Transfer-Encoding: base64\n"
    assert names(MIME_RULES, b64 + b"Content-Type: text/plain\n\naGVsbG8K\n") == {
        "MIME_BASE64_TEXT"}
    assert names(MIME_RULES, b64 + b"Content-Type: text/plain; charset=utf-8\n\naGVsbG8K\n"
                 ) == set()
    assert names(MIME_RULES, b64 + b"Content-Type: text/plain\nContent-Disposition: inline\n\n"
                 b"aGVsbG8K\n") == set()


FREEMAIL_RULES = ("freemail_domains gmail.com yahoo.* hotmail.com\n"
                  "header FREEMAIL_FROM eval:check_freemail_from()\n"
                  "header __freemail_replyto eval:check_freemail_replyto('replyto')\n")


def test_freemail_from_reads_resent_from_first_and_skips_role_addresses() -> None:
    """all_from_addrs: a list's Resent-From replaces From; support@ and the like are
    never freemail (FreeMail's default welcomelist); ``yahoo.*`` is one label."""
    base = b"To: b@example.net\nSubject: x\n"
    assert names(FREEMAIL_RULES, b"From: a@yahoo.co\n" + base + b"\nhi\n") == {"FREEMAIL_FROM"}
    assert names(FREEMAIL_RULES, b"From: a@yahoo.co.uk\n" + base + b"\nhi\n") == set()
    resent = (b"From: a@gmail.com\nResent-From: list@lists.example.org\n" + base + b"\nhi\n")
    assert names(FREEMAIL_RULES, resent) == set()
    assert names(FREEMAIL_RULES, b"From: support@gmail.com\n" + base + b"\nhi\n") == set()


def test_freemail_replyto_follows_freemail_plugin() -> None:
    """A freemail Reply-To differing from a freemail From hits; a company From with a
    freemail Reply-To only hits when the body names another freemail address; a bulk
    envelope sender (a list's -bounces@) skips the test."""
    base = b"To: b@example.net\nSubject: x\n"
    two_free = b"From: a@gmail.com\nReply-To: b@hotmail.com\n" + base + b"\nhi\n"
    assert names(FREEMAIL_RULES, two_free) == {"FREEMAIL_FROM", "__freemail_replyto"}
    company = b"From: a@example.com\nReply-To: b@hotmail.com\n" + base
    assert names(FREEMAIL_RULES, company + b"\nhi\n") == set()
    assert names(FREEMAIL_RULES, company + b"\nwrite to c@gmail.com now\n") == {
        "__freemail_replyto"}
    assert names(FREEMAIL_RULES, company + b"\n<c@gmail.com> wrote:\n") == set()
    bulk = b"Return-Path: <list-bounces@lists.example.org>\n" + two_free
    assert names(FREEMAIL_RULES, bulk) == {"FREEMAIL_FROM"}


RELAY_RULES = (
    "header __LAST_EXTERNAL_RELAY_NO_AUTH X-Spam-Relays-External =~ /^[^\\]]+ auth= /\n"
    "header __RDNS_NONE X-Spam-Relays-Untrusted =~ /^[^\\]]+ rdns= /\n"
    "header __TRUSTED_LOCAL X-Spam-Relays-Trusted =~ /ip=127\\.0\\.0\\.1 /\n"
    "meta __NOT_SPOOFED !__LAST_EXTERNAL_RELAY_NO_AUTH\n"
)


def test_relay_pseudo_headers_from_received() -> None:
    """The X-Spam-Relays-* pseudo-headers: relays are trusted from the top while their
    address is private (trusted_networks unset), the first public one is external;
    __NOT_SPOOFED (which reads them) is then false for unauthenticated mail."""
    received = (
        b"Received: from localhost (localhost [127.0.0.1])\n\tby mx.example.net (Postfix) "
        b"with ESMTP id 3F6E343F99; Mon, 26 Aug 2002 15:31:36 -0400 (EDT)\n"
        b"Received: from relay.example.org ([192.0.2.7])\n\tby mx.example.net (8.11.6/8.11.6) "
        b"with ESMTP id g7QJTgZ11927; Mon, 26 Aug 2002 20:29:42 +0100\n")
    raw = received + HEAD + b"To: b@example.net\n\nhi\n"
    assert names(RELAY_RULES, raw) == {"__LAST_EXTERNAL_RELAY_NO_AUTH", "__RDNS_NONE",
                                       "__TRUSTED_LOCAL"}
    named = received.replace(b"([192.0.2.7])", b"(relay.example.org [192.0.2.7])")
    assert names(RELAY_RULES, named + HEAD + b"\nhi\n") == {
        "__LAST_EXTERNAL_RELAY_NO_AUTH", "__TRUSTED_LOCAL"}
    authed = received.replace(b"with ESMTP id g7", b"with ESMTPSA id g7")
    assert names(RELAY_RULES, authed + HEAD + b"\nhi\n") == {"__TRUSTED_LOCAL", "__NOT_SPOOFED"}


def test_relay_forms() -> None:
    from spamwarden.rules._relays import parse_received

    def rendered(line: str) -> str | None:
        relay = parse_received(line)
        return relay.render(False) if relay else None

    assert rendered("from mail.example.org (unknown[192.0.2.1]) by mx.example.net "
                    "(Postfix) with ESMTP id ABC") == (
        "[ ip=192.0.2.1 rdns= helo=mail.example.org by=mx.example.net ident= envfrom= "
        "intl=0 id=ABC auth= msa=0 ]")
    assert rendered("from unknown (HELO mail.example.org) (192.0.2.2) by x.example.net "
                    "with SMTP") == (
        "[ ip=192.0.2.2 rdns= helo=mail.example.org by=x.example.net ident= envfrom= "
        "intl=0 id= auth= msa=0 ]")
    assert rendered("from [192.0.2.3] (helo=pc1) by mx.example.net with esmtp (Exim 4.0) "
                    "id 18abc-000") == (
        "[ ip=192.0.2.3 rdns= helo=pc1 by=mx.example.net ident= envfrom= intl=0 "
        "id=18abc-000 auth= msa=0 ]")
    # qmail without HELO: the name is the reverse DNS name and the HELO
    assert rendered("from relay.example.org (192.0.2.4) by mx.example.net with SMTP; "
                    "7 May 2002 14:36:59 -0000") == (
        "[ ip=192.0.2.4 rdns=relay.example.org helo=relay.example.org by=mx.example.net "
        "ident= envfrom= intl=0 id= auth= msa=0 ]")
    # a name that did not resolve back, outside Sendmail's own form: no reverse DNS
    assert rendered("from h.example.org (h.example.org [192.0.2.5] (may be forged)) by "
                    "mx.example.net  with SMTP id n9Q") == (
        "[ ip=192.0.2.5 rdns= helo=h.example.org by=mx.example.net ident= envfrom= "
        "intl=0 id=n9Q auth= msa=0 ]")
    assert rendered("by 10.220.12.1 with SMTP id abc; Wed, 19 May 2010 10:00:00 -0700") is None
    assert rendered("from mx.example.net by mx.example.net; Wed, 19 May 2010") is None


def test_relays_restart_below_a_mail_fetcher() -> None:
    """A fetchmail/getmail handover (``with IMAP``, ``with POP3``) below trusted relays
    restarts the parse: the local relays above it are not the message's."""
    raw = (
        b"Received: from localhost (localhost [127.0.0.1]) by box.example.net (Postfix) "
        b"with ESMTP id 1; Fri, 19 Jul 2002 18:22:58 -0400\n"
        b"Received: from mail.example.net [192.0.2.9] by localhost with IMAP "
        b"(fetchmail-5.9.0) for jm@localhost (single-drop); Fri, 19 Jul 2002 23:22:58 +0100\n"
        b"Received: from relay.example.org (relay.example.org [192.0.2.7]) by "
        b"mail.example.net (8.11.6/8.11.6) with ESMTP id g6; Fri, 19 Jul 2002 23:22:13 +0100\n"
        + HEAD + b"\nhi\n")
    assert names(RELAY_RULES, raw) == {"__LAST_EXTERNAL_RELAY_NO_AUTH"}


def test_gmail_submission_counts_as_authenticated() -> None:
    from spamwarden.rules._relays import parse_received

    relay = parse_received(
        "from think.homelan ([92.86.142.199]) by mx.google.com with ESMTPS id "
        "22sm4914127fkr.29.2010.05.15.08.07.08 (version=TLSv1/SSLv3 cipher=RC4-MD5)")
    assert relay and relay.auth == "GMail - transport=TLSv1/SSLv3 cipher=RC4-MD5"


def test_a_rule_scored_zero_is_not_run() -> None:
    """SpamAssassin does not run a rule whose score is 0 (score X 0 disables it); a meta
    naming it sees it as not hit."""
    rules = ("body ZERO /hello/\nscore ZERO 0\n"
             "body ONE /hello/\n"
             "meta USES_ZERO ZERO || !ONE\n"
             "body __SUB /hello/\n")
    rs = parse_rule_text(rules)
    assert rs.skipped["ZERO"] == "score 0: disabled"
    assert names(rules, HEAD + b"\nhello\n") == {"ONE", "__SUB"}


def test_html_tag_exists() -> None:
    """HTMLEval's html_tag_exists: HTML_MIME_NO_HTML_TAG (HTML-only mail without an
    <html> tag) no longer hits every HTML-only message."""
    rules = ("body __TAG_EXISTS_HTML eval:html_tag_exists('html')\n"
             "body __TAG_EXISTS_CENTER eval:html_tag_exists('center')\n"
             "body MIME_HTML_ONLY eval:check_for_mime_html_only()\n"
             "meta HTML_MIME_NO_HTML_TAG MIME_HTML_ONLY && !__TAG_EXISTS_HTML\n")
    head = HEAD + b"To: b@example.net\nMIME-Version: 1.0\nContent-Type: text/html\n\n"
    assert names(rules, head + b"<HTML><body><Center>hi</center></body></html>\n") == {
        "__TAG_EXISTS_HTML", "__TAG_EXISTS_CENTER", "MIME_HTML_ONLY"}
    assert names(rules, head + b"<p>hi <centerx>\n") == {"MIME_HTML_ONLY",
                                                          "HTML_MIME_NO_HTML_TAG"}


# -- EnvelopeFrom, RelayEval, HTMLEval ----------------------------------------------------

ENV_RULES = (
    "header __ENV_AND_HDR_FROM_MATCH eval:check_for_matching_env_and_hdr_from()\n"
    "header HEADER_FROM_DIFFERENT_DOMAINS eval:check_equal_from_domains()\n"
    "header FREEMAIL_FROM eval:check_freemail_from()\n"
    "header FREEMAIL_ENVFROM_END_DIGIT eval:check_freemail_header('EnvelopeFrom', '\\d@')\n"
    "meta FREEMAIL_FORGED_FROMDOMAIN FREEMAIL_FROM && HEADER_FROM_DIFFERENT_DOMAINS\n"
    "freemail_domains gmail.com\n"
)
PUBLIC_HOP = (b"Received: from mx.example.net (mx.example.net [203.0.113.9]) by mail.example.org"
              b" (Postfix) with ESMTP id 1; Thu, 22 Aug 2002 18:26:25 +0700\n")


def env_names(raw: bytes, envelope_from: str | None = None) -> set[str]:
    engine = RuleEngine(parse_rule_text(ENV_RULES), use_hyperscan=False)
    return set(engine.counts(prepare_message(parse_message(raw), raw,
                                             envelope_from=envelope_from)))


def test_envelope_from_is_read_as_spamassassin_reads_it() -> None:
    """EnvelopeFrom: Return-Path (no Received above it) gives HEADER_FROM_DIFFERENT_DOMAINS
    and, with a freemail From, FREEMAIL_FORGED_FROMDOMAIN; the same Return-Path below a
    Received header is not trusted; a Received line's envelope-from wins over both."""
    head = (b"From: Alice <alice@gmail.com>\nTo: b@example.net\nSubject: hi\n"
            b"Message-Id: <1@example.org>\n")
    forged = b"Return-Path: <bounce7@lists.example.com>\n" + PUBLIC_HOP + head + b"\nhi\n"
    assert env_names(forged) == {"FREEMAIL_FROM", "HEADER_FROM_DIFFERENT_DOMAINS",
                                 "FREEMAIL_FORGED_FROMDOMAIN"}
    same = b"Return-Path: <alice@gmail.com>\n" + PUBLIC_HOP + head + b"\nhi\n"
    assert env_names(same) == {"FREEMAIL_FROM", "__ENV_AND_HDR_FROM_MATCH"}
    below = PUBLIC_HOP + b"Return-Path: <bounce7@lists.example.com>\n" + head + b"\nhi\n"
    assert env_names(below) == {"FREEMAIL_FROM"}
    relayed = (b"Return-Path: <alice@gmail.com>\n"
               + PUBLIC_HOP.replace(b"(Postfix)", b"(envelope-from <a7@gmail.com>)")
               + head + b"\nhi\n")
    assert env_names(relayed) == {"FREEMAIL_FROM", "FREEMAIL_ENVFROM_END_DIGIT"}


def test_envelope_from_given_by_the_milter_wins() -> None:
    """The milter's MAIL FROM is EnvelopeFrom, whatever the headers say."""
    raw = (b"Return-Path: <alice@gmail.com>\nFrom: alice@gmail.com\nTo: b@example.net\n"
           b"Subject: hi\n\nhi\n")
    assert env_names(raw) == {"FREEMAIL_FROM", "__ENV_AND_HDR_FROM_MATCH"}
    assert env_names(raw, "news@shop.example.com") == {
        "FREEMAIL_FROM", "HEADER_FROM_DIFFERENT_DOMAINS", "FREEMAIL_FORGED_FROMDOMAIN"}
    assert env_names(raw, "") == {"FREEMAIL_FROM"}


RELAYEVAL_RULES = ("header ALL_TRUSTED eval:check_all_trusted()\n"
               "header NO_RELAYS eval:check_no_relays()\n"
               "header __UNPARSEABLE eval:check_relays_unparseable()\n")


def test_relay_eval_all_trusted_and_no_relays() -> None:
    """ALL_TRUSTED: only relays inferred trusted (private addresses, authenticated);
    NO_RELAYS: none; a ``from`` line without an address counts as unparseable."""
    private = (b"Received: from pc.lan (pc.lan [192.168.1.5]) by mail.example.org (Postfix)"
               b" with ESMTP id 2; Thu, 22 Aug 2002 18:26:25 +0700\n")
    body = HEAD + b"To: b@example.net\n\nhi\n"
    assert names(RELAYEVAL_RULES, private + body) == {"ALL_TRUSTED"}
    assert names(RELAYEVAL_RULES, PUBLIC_HOP + private + body) == set()
    assert names(RELAYEVAL_RULES, body) == {"NO_RELAYS"}
    odd = b"Received: from somewhere by mail.example.org over carrier pigeon\n"
    assert names(RELAYEVAL_RULES, odd + private + body) == {"__UNPARSEABLE"}


HTML_RULES = (
    "body HTML_MESSAGE eval:html_test('html')\n"
    "body __HTML_LINK_IMAGE eval:html_text_match('anchor', '<img>')\n"
    "body __HTML_LENGTH_0000_1024 eval:html_range('length', '0', '1024')\n"
    "body __HTML_LENGTH_512 eval:html_eval('length', '< 512')\n"
    "body __HTML_TAG_BALANCE_CENTER eval:html_tag_balance('center', '!= 0')\n"
    "body HTML_IMAGE_ONLY_04 eval:html_image_only('0000','0400')\n"
    "body HTML_IMAGE_RATIO_02 eval:html_image_ratio('0.000','0.002')\n"
    "body HTML_EXTRA_CLOSE eval:html_range('closed_extra_ratio', '0.09', 'inf')\n"
    "meta HTML_SHORT_LINK_IMG_1 __HTML_LENGTH_0000_1024 && __HTML_LINK_IMAGE\n"
    "body HTML_FONT_FACE_BAD eval:html_test('font_face_bad')\n"
)


def test_html_eval_tests() -> None:
    """HTMLEval's values per text/html part: HTML_MESSAGE, a linked image in a short
    part (HTML_SHORT_LINK_IMG_1), image-only parts, text per image area, tag balance,
    closing tags with nothing open."""
    html = (b'<html><body><center><a href="http://x.example/"><img src="a.gif" width=400 '
            b'height=300>Buy</a></body></html>')
    raw = (HEAD + b"To: b@example.net\nMIME-Version: 1.0\nContent-Type: text/html\n\n"
           + html + b"\n")
    assert names(HTML_RULES, raw) == {
        "HTML_MESSAGE", "__HTML_LINK_IMAGE", "__HTML_LENGTH_0000_1024", "__HTML_LENGTH_512",
        "__HTML_TAG_BALANCE_CENTER", "HTML_IMAGE_ONLY_04", "HTML_IMAGE_RATIO_02",
        "HTML_SHORT_LINK_IMG_1"}
    text = (b'<p><font face="Arial, sans-serif">' + b"plain words here " * 40
            + b'</font><font face="3D">x</font></p></b></i>')
    raw2 = (HEAD + b"To: b@example.net\nMIME-Version: 1.0\nContent-Type: text/html\n\n"
            + text + b"\n")
    assert names(HTML_RULES, raw2) == {"HTML_MESSAGE", "__HTML_LENGTH_0000_1024",
                                       "HTML_EXTRA_CLOSE", "HTML_FONT_FACE_BAD"}
    assert names(HTML_RULES, HEAD + b"To: b@example.net\n\n<p>hi</p>\n") == set()


def test_html_text_style_low_contrast_invalid_colour_and_size() -> None:
    """HTML.pm's text style stack: text in (nearly) the background colour
    (HTML_FONT_LOW_CONTRAST), a colour browsers cannot read (``ffffff`` without ``#``),
    the largest font size (HTML_FONT_SIZE_LARGE); a closed ``<font>`` restores colours."""
    rules = ("body HTML_FONT_LOW_CONTRAST eval:html_test('font_low_contrast')\n"
             "body __KAM_HTML_FONT_INVALID eval:html_test('font_invalid_color')\n"
             "body HTML_FONT_SIZE_LARGE eval:html_range('max_size', '5', '6')\n")

    def html(text: bytes) -> bytes:
        return (HEAD + b"To: b@example.net\nMIME-Version: 1.0\nContent-Type: text/html\n\n"
                + text + b"\n")

    assert names(rules, html(b'<body>hi <font color="#fefefe">hidden</font></body>')) == {
        "HTML_FONT_LOW_CONTRAST"}
    assert names(rules, html(b'<table><tr><td style="background-color: navy">'
                             b'<font color=#000081>x</font></td></tr></table>')) == {
        "HTML_FONT_LOW_CONTRAST"}
    assert names(rules, html(b"<font color=ffffff>x</font><font size=+3>big</font>")) == {
        "__KAM_HTML_FONT_INVALID", "HTML_FONT_SIZE_LARGE"}
    assert names(rules, html(b'<font color="#fefefe"> </font>seen <b>text</b>')) == set()


def test_outlook_message_id_time_and_envelope_sender_matching_relay() -> None:
    """MSGID_OUTLOOK_INVALID: an Outlook Message-ID's time part far from the Date and
    the Received time; __RP_MATCHES_RCVD: the envelope sender's registered domain is the
    first untrusted relay's (reverse DNS name)."""
    import email.utils

    rules = ("header MSGID_OUTLOOK_INVALID eval:check_outlook_message_id()\n"
             "header __RP_MATCHES_RCVD eval:check_mailfrom_matches_rcvd()\n")
    when = email.utils.mktime_tz(email.utils.parsedate_tz("Thu, 22 Aug 2002 18:26:25 +0700"))
    good = int(when * 0.0023283064365387 + 27111902.8329849)

    def msg(token: int, return_path: bytes) -> bytes:
        mid = f"<0001{token:08x}$0a0b0c0d$0e0f1011@pc>".encode()
        return (b"Return-Path: <" + return_path + b">\n" + PUBLIC_HOP
                + b"From: a@example.org\nTo: b@example.net\nSubject: hi\n"
                  b"Date: Thu, 22 Aug 2002 18:26:25 +0700\nMessage-Id: " + mid + b"\n\nhi\n")

    assert names(rules, msg(good, b"list@example.net")) == {"__RP_MATCHES_RCVD"}
    assert names(rules, msg(good + 5000, b"x@example.com")) == {"MSGID_OUTLOOK_INVALID"}


def test_html_comment_and_title_matches() -> None:
    """html_text_match on comments (__COMMENT_EXISTS, HTML_COMMENT_SAVED_URL) and titles;
    a DOCTYPE declaration is not a comment."""
    rules = ("body __COMMENT_EXISTS eval:html_text_match('comment', '<!.*?>')\n"
             "body HTML_COMMENT_SAVED_URL eval:html_text_match('comment', "
             "'<!-- saved from url=\\(\\d{4}\\)')\n"
             "body __HTML_TITLE_120 eval:html_text_match('title', '.{120}')\n")

    def html(text: bytes) -> bytes:
        return (HEAD + b"To: b@example.net\nMIME-Version: 1.0\nContent-Type: text/html\n\n"
                + text + b"\n")

    assert names(rules, html(b"<!DOCTYPE html><p>hi</p>")) == set()
    assert names(rules, html(b"<!-- saved from url=(0022)http://x.example/ --><p>hi</p>")) == {
        "__COMMENT_EXISTS", "HTML_COMMENT_SAVED_URL"}
    assert names(rules, html(b"<title>" + b"long title " * 12 + b"</title>")) == {
        "__HTML_TITLE_120"}


def test_negated_header_rule_hits_when_the_header_is_absent() -> None:
    """SpamAssassin matches an absent header as undef, which Perl reads as "": a ``!~``
    rule hits (__TO_NO_ARROWS_R on a message without To), a ``=~`` one does not."""
    rules = ("header __TO_NO_ARROWS_R To !~ /(?:>$|>,)/\n"
             "header __TO_HAS_ARROW To =~ /</\n")
    assert names(rules, HEAD + b"\nhi\n") == {"__TO_NO_ARROWS_R"}
    assert names(rules, HEAD + b"To: Bob <b@example.net>\n\nhi\n") == {"__TO_HAS_ARROW"}


def test_freemail_reply_compares_a_freemail_from_with_the_body() -> None:
    """check_freemail_replyto('reply') (FREEMAIL_REPLY): no Reply-To, a freemail From and
    another freemail address in the body."""
    rules = ("header __freemail_reply eval:check_freemail_replyto('reply')\n"
             "header __freemail_replyto eval:check_freemail_replyto('replyto')\n"
             "freemail_domains gmail.com yahoo.com\n")
    raw = (b"From: Alice <alice@gmail.com>\nTo: b@example.net\nSubject: hi\n\n"
           b"Please write to my private address winner77@yahoo.com today.\n")
    assert names(rules, raw) == {"__freemail_reply"}


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_nosubject_body_rule_does_not_see_the_subject(use_hyperscan: bool) -> None:
    """``tflags nosubject`` (__NONEMPTY_BODY): the Subject line SpamAssassin puts first
    in the body is not scanned, so an empty body is empty (EMPTY_MESSAGE)."""
    rules = ("body __NONEMPTY_BODY /\\S/\ntflags __NONEMPTY_BODY nosubject\n"
             "meta EMPTY_MESSAGE !__NONEMPTY_BODY\n")
    assert names(rules, HEAD + b"To: b@example.net\n\n\n",
                 use_hyperscan=use_hyperscan) == {"EMPTY_MESSAGE"}
    assert names(rules, HEAD + b"To: b@example.net\n\nhi\n",
                 use_hyperscan=use_hyperscan) == {"__NONEMPTY_BODY"}


def test_ratware_and_received_remover_evals() -> None:
    """HeaderEval's __GATED_THROUGH_RCVD_REMOVER (no Received header at all),
    __RATWARE_NAME_ID (28 capitals and the From address as Message-ID) and
    RATWARE_EFROM (envelope sender built from the recipient's domain and user)."""
    rules = ("header __GATED_THROUGH_RCVD_REMOVER eval:gated_through_received_hdr_remover()\n"
             "header __RATWARE_NAME_ID eval:check_ratware_name_id()\n"
             "header RATWARE_EFROM eval:check_ratware_envelope_from()\n")
    ratware = (b'Return-Path: <example.net.bob@bulk.example.com>\nFrom: "Sales" <s@x.example>\n'
               b"To: bob@example.net\nSubject: hi\n"
               b"Message-Id: <ABCDEFGHIJKLMNOPQRSTUVWXYZAB.s@x.example>\n\nhi\n")
    assert names(rules, ratware) == {"__GATED_THROUGH_RCVD_REMOVER", "__RATWARE_NAME_ID",
                                     "RATWARE_EFROM"}
    assert names(rules, PUBLIC_HOP + HEAD + b"To: bob@example.net\n\nhi\n") == set()


SUGGESTED = """
header   HEADER_FROM_DIFFERENT_DOMAINS From =~ /x/
#      score    HEADER_FROM_DIFFERENT_DOMAINS 0.25
header   SCORED_ELSEWHERE From =~ /y/
#      score    SCORED_ELSEWHERE 3.0
score    SCORED_ELSEWHERE 0.5
header   T_TESTING From =~ /z/
#      score    T_TESTING 2.0
header   NO_SUGGESTION From =~ /w/
"""


def test_unscored_rules_take_the_commented_score_only_when_asked() -> None:
    """rules.unscored: SpamAssassin gives a rule no file scores 1 point; "suggested"
    takes its author's commented-out score instead, never over a real score line and
    never for a T_ test rule."""
    from spamwarden.rules import parse_rule_text

    sa = parse_rule_text(SUGGESTED)
    assert sa.rules["HEADER_FROM_DIFFERENT_DOMAINS"].score == 1.0
    assert sa.suggested_scores == 0
    ours = parse_rule_text(SUGGESTED, suggested_scores=True)
    assert ours.rules["HEADER_FROM_DIFFERENT_DOMAINS"].score == 0.25
    assert ours.rules["SCORED_ELSEWHERE"].score == 0.5
    assert ours.rules["T_TESTING"].score == 0.01
    assert ours.rules["NO_SUGGESTION"].score == 1.0
    assert ours.suggested_scores == 1


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_rawbody_is_scanned_in_pieces_of_two_to_four_kilobytes(use_hyperscan: bool) -> None:
    """SpamAssassin scans rawbody a piece at a time (a part up to 2 KB whole, else 2-4 KB
    pieces cut at a newline): ``^`` without ``/m`` is the start of a piece (__HS_QUOTE
    does not hit every quoted line) and ``\\s`` crosses the lines inside one
    (__CONTENT_AFTER_HTML)."""
    rules = ("rawbody __HS_QUOTE /^> /\n"
             "rawbody __CONTENT_AFTER_HTML /<\\/html>\\s*[a-z0-9]/i\n"
             "rawbody __QUOTE_ANY_LINE /^> /m\n")
    quoted = HEAD + b"To: b@example.net\n\nYou wrote:\n> hello\n> there\n"
    assert names(rules, quoted, use_hyperscan=use_hyperscan) == {"__QUOTE_ANY_LINE"}
    first = HEAD + b"To: b@example.net\n\n> hello\nindeed\n"
    assert names(rules, first, use_hyperscan=use_hyperscan) == {"__HS_QUOTE", "__QUOTE_ANY_LINE"}
    # a long part: a second piece starts after the first newline past 2,048 octets
    long = HEAD + b"To: b@example.net\n\n" + b"x" * 2100 + b"\n" + b"y" * 2100 + b"\n> hi\n"
    assert names(rules, long, use_hyperscan=use_hyperscan) == {"__QUOTE_ANY_LINE"}
    long2 = HEAD + b"To: b@example.net\n\n" + b"x" * 2100 + b"\n> hi\n" + b"y" * 2100 + b"\n"
    assert names(rules, long2, use_hyperscan=use_hyperscan) == {"__HS_QUOTE", "__QUOTE_ANY_LINE"}
    html = (HEAD + b"To: b@example.net\nContent-Type: text/html\n\n"
            b"<html><body>hi</body></html>\n\nbuy now\n")
    assert names(rules, html, use_hyperscan=use_hyperscan) == {"__CONTENT_AFTER_HTML"}


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_quoted_printable_drops_white_space_at_line_ends(use_hyperscan: bool) -> None:
    """SpamAssassin's qp_decode deletes spaces and tabs before each line end (RFC 2045
    6.7) before undoing soft breaks and escapes; an escaped ``=20`` stays.  Decoded text
    has LF line ends (__FR_SPACING_8 needs eight white-space octets in a row)."""
    rules = "rawbody __FR_SPACING_8 /[a-z0-9]{6}\\s{8}[a-z0-9]{5}/i\n"
    qp = (HEAD + b"To: b@example.net\nContent-Transfer-Encoding: quoted-printable\n\n"
          b"from our list, pl=\nease \n      click on the link\n")
    assert names(rules, qp, use_hyperscan=use_hyperscan) == set()
    kept = (HEAD + b"To: b@example.net\nContent-Transfer-Encoding: quoted-printable\n\n"
            b"from our list, pl=\nease=20\n      click on the link\n")
    assert names(rules, kept, use_hyperscan=use_hyperscan) == {"__FR_SPACING_8"}
    crlf = (HEAD + b"To: b@example.net\nContent-Transfer-Encoding: quoted-printable\n\n"
            b"please=20\r\n      click\r\n")
    assert names(rules, crlf, use_hyperscan=use_hyperscan) == {"__FR_SPACING_8"}


MIME_FLAG_RULES = (
    "body T_TVD_MIME_EPI eval:check_msg_parse_flags('mime_epilogue_exists')\n"
    "body T_TVD_MIME_NO_HEADERS eval:check_msg_parse_flags('missing_mime_headers')\n"
    "body MISSING_MIME_HB_SEP eval:check_msg_parse_flags('missing_mime_head_body_separator')\n")


def test_mime_parse_flags_of_multipart_parts() -> None:
    """Message.pm's multipart flags: text after the closing boundary other than white
    space and dots (T_TVD_MIME_EPI), a part whose first line is not a header field
    (T_TVD_MIME_NO_HEADERS), a part header section ended by a non-blank line that is not
    a header field (MISSING_MIME_HB_SEP)."""
    head = HEAD + b"To: b@example.net\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
    clean = head + b"--XX\nContent-Type: text/plain\n\nhello\n--XX--\n\n.\n"
    assert names(MIME_FLAG_RULES, clean) == set()
    epilogue = head + b"--XX\nContent-Type: text/plain\n\nhello\n--XX--\nbuy now\n"
    assert names(MIME_FLAG_RULES, epilogue) == {"T_TVD_MIME_EPI"}
    no_headers = head + b"--XX\n\nhello\n--XX--\n"
    assert names(MIME_FLAG_RULES, no_headers) == {"T_TVD_MIME_NO_HEADERS"}
    no_sep = head + b"--XX\nhello there\n--XX--\n"
    assert names(MIME_FLAG_RULES, no_sep) == {"T_TVD_MIME_NO_HEADERS", "MISSING_MIME_HB_SEP"}
    # a single-part message has no epilogue, whatever follows
    assert names(MIME_FLAG_RULES, HEAD + b"To: b@example.net\n\n--XX--\nbuy\n") == set()


def test_ascii_text_illegal() -> None:
    """MIMEEval's check_for_ascii_text_illegal (PP_MIME_FAKE_ASCII_TEXT): a text/plain
    part declared us-ascii (or with no charset) whose encoded lines carry 8-bit octets,
    NUL or a bare CR; checked on the encoded text, so quoted-printable escapes pass."""
    from spamwarden.rules._parser import _cond_value

    rules = "body PP_MIME_FAKE_ASCII_TEXT eval:check_for_ascii_text_illegal()\n"
    assert _cond_value("can(Mail::SpamAssassin::Plugin::MIMEEval::has_check_for_ascii_text_illegal)")
    eight = HEAD + b"To: b@example.net\nContent-Type: text/plain; charset=us-ascii\n\ncaf\xe9\n"
    assert names(rules, eight) == {"PP_MIME_FAKE_ASCII_TEXT"}
    no_ct = HEAD + b"To: b@example.net\n\ncaf\xe9\n"
    assert names(rules, no_ct) == {"PP_MIME_FAKE_ASCII_TEXT"}
    latin = HEAD + b"To: b@example.net\nContent-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n"
    assert names(rules, latin) == set()
    qp = (HEAD + b"To: b@example.net\nContent-Type: text/plain; charset=us-ascii\n"
          b"Content-Transfer-Encoding: quoted-printable\n\ncaf=E9\n")
    assert names(rules, qp) == set()
    crlf = (HEAD + b"To: b@example.net\nContent-Type: text/plain\n\nhello\n").replace(b"\n", b"\r\n")
    assert names(rules, crlf) == set()
    bare_cr = HEAD + b"To: b@example.net\nContent-Type: text/plain\n\nhel\rlo\n"
    assert names(rules, bare_cr) == {"PP_MIME_FAKE_ASCII_TEXT"}


FORGED_RULES = """
header FORGED_YAHOO_RCVD eval:check_for_forged_yahoo_received_headers()
header __FORGED_HOTMAIL_RCVD eval:check_for_forged_hotmail_received_headers()
header FORGED_HOTMAIL_RCVD2 eval:check_for_no_hotmail_received_headers()
header RCVD_HELO_IP_MISMATCH eval:helo_ip_mismatch()
header __FORGED_RCVD_TRAIL eval:check_for_forged_received_trail()
header FORGED_GMAIL_RCVD eval:check_for_forged_gmail_received_headers()
header __FORGED_AOL_RCVD eval:check_for_fake_aol_relay_in_rcvd()
header __FORGED_EUDORAMAIL_RCVD eval:check_for_forged_eudoramail_received_headers()
header __FORGED_JUNO_RCVD eval:check_for_forged_juno_received_headers()
"""
_REST = (b"Date: Thu, 22 Aug 2002 18:26:25 +0700\nMessage-Id: <1@example.org>\n"
         b"Subject: hello\nTo: bob@example.net\n")


def _rcvd(text: bytes) -> bytes:
    return b"Received: " + text + b"; Thu, 22 Aug 2002 11:26:25 +0000\n"


_RELAY = _rcvd(b"from relay.example.com (relay.example.com [203.0.113.9]) "
               b"by mx.example.net (Postfix) with ESMTP id 1A2B3C")


@pytest.mark.parametrize(("received", "sender", "expected"), [
    (_RELAY, b"al@yahoo.com", {"FORGED_YAHOO_RCVD"}),
    (_RELAY + _rcvd(b"from [198.51.100.7] by web12.mail.yahoo.com via HTTP"),
     b"al@yahoo.com", set()),
    (_rcvd(b"from hotmail.com (spammer.example.com [203.0.113.9]) by mx.example.net "
           b"(Postfix) with ESMTP id 1A2B3C"), b"al@example.com", {"__FORGED_HOTMAIL_RCVD"}),
    (_RELAY, b"al@hotmail.com", {"FORGED_HOTMAIL_RCVD2"}),
    (_RELAY, b"al@gmail.com", {"FORGED_GMAIL_RCVD"}),
    (_RELAY + b"X-Received: by 10.1.2.3 with SMTP id abc123\n", b"al@gmail.com", set()),
    (_RELAY, b"al@eudoramail.com", {"__FORGED_EUDORAMAIL_RCVD"}),
    (_RELAY, b"al@juno.com", {"__FORGED_JUNO_RCVD"}),
    (_rcvd(b"from unknown (HELO mta05.example.com) (203.0.113.9) by rly-xw01.mx.aol.com "
           b"with QMQP"), b"al@example.com", {"__FORGED_AOL_RCVD"}),
    (_rcvd(b"from 198.51.100.7 (host.example.com [203.0.113.9]) by mx.example.net "
           b"(8.12.1/8.12.1) with ESMTP id g1"), b"al@example.com", {"RCVD_HELO_IP_MISMATCH"}),
    (_rcvd(b"from 203.0.113.7 (host.example.com [203.0.113.9]) by mx.example.net "
           b"(8.12.1/8.12.1) with ESMTP id g1"), b"al@example.com", set()),
    # each relay's "by" against the reverse DNS domain of the relay below it: two misses
    (_rcvd(b"from b.example.org (b.example.org [198.51.100.2]) by mx.example.net "
           b"(8.12.1/8.12.1) with ESMTP id g1")
     + _rcvd(b"from c.example.com (c.example.com [198.51.100.3]) by b.other.org "
             b"(8.12.1/8.12.1) with ESMTP id g2")
     + _rcvd(b"from d.example.com (d.example.com [198.51.100.4]) by c.wrong.org "
             b"(8.12.1/8.12.1) with ESMTP id g3"), b"al@example.com", {"__FORGED_RCVD_TRAIL"}),
    (_rcvd(b"from b.example.org (b.example.org [198.51.100.2]) by mx.example.net "
           b"(8.12.1/8.12.1) with ESMTP id g1")
     + _rcvd(b"from c.example.com (c.example.com [198.51.100.3]) by b.example.org "
             b"(8.12.1/8.12.1) with ESMTP id g2")
     + _rcvd(b"from d.example.com (d.example.com [198.51.100.4]) by c.example.com "
             b"(8.12.1/8.12.1) with ESMTP id g3"), b"al@example.com", set()),
])
def test_forged_received_evals(received: bytes, sender: bytes, expected: set[str]) -> None:
    """HeaderEval's forged-Received tests (a freemail From without that provider's own
    Received lines, a HELO claiming a provider) and RelayEval's helo_ip_mismatch and
    forged Received trail; each case checked against Debian's SpamAssassin 4.0.1."""
    raw = received + b"From: Al <" + sender + b">\n" + _REST + b"\nhi\n"
    assert names(FORGED_RULES, raw) == expected


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_envelope_from_pattern_rules(use_hyperscan: bool) -> None:
    """``EnvelopeFrom =~`` rules (HK_RANDOM_ENVFROM, __ENVFROM_AMAZONSES) match the
    envelope sender as SpamAssassin guesses it, or the milter's MAIL FROM."""
    rules = ("header __ENVFROM_AMAZONSES EnvelopeFrom =~ /\\@amazonses\\.com$/\n"
             "header __ENVFROM_QUOTE EnvelopeFrom =~ /'/\n")
    raw = (b"Return-Path: <0100abc@amazonses.com>\nFrom: a@shop.example\nTo: b@example.net\n"
           b"Subject: hi\n\nhi\n")
    assert names(rules, raw, use_hyperscan=use_hyperscan) == {"__ENVFROM_AMAZONSES"}
    engine = RuleEngine(parse_rule_text(rules), use_hyperscan=use_hyperscan)
    msg = prepare_message(parse_message(raw), raw, envelope_from="o'neil@example.com")
    assert set(engine.counts(msg)) == {"__ENVFROM_QUOTE"}
    no_sender = b"From: a@shop.example\nTo: b@example.net\nSubject: hi\n\nhi\n"
    assert names(rules, no_sender, use_hyperscan=use_hyperscan) == set()


@pytest.mark.parametrize(("line", "expected"), [
    # Exim: the name before the address is the reverse DNS name, and the HELO unless
    # helo= says otherwise (a bracketed HELO keeps its brackets, made "!")
    ("from med-core07.med.wayne.edu ([146.9.19.23]) by usw-sf-list1.sourceforge.net with "
     "esmtp (Exim 3.31-VA-mm2 #1 (Debian)) id 17cuii-0003mh-00",
     "ip=146.9.19.23 rdns=med-core07.med.wayne.edu helo=med-core07.med.wayne.edu "
     "by=usw-sf-list1.sourceforge.net ident= envfrom= intl=0 id=17cuii-0003mh-00 auth="),
    ("from 78-1-175-215.adsl.example.hr ([78.1.175.215] helo=[192.168.1.241]) by "
     "host307.example.com with esmtpa (Exim 4.69) (envelope-from <g@example.com>) "
     "id 1O9sS9-0007eI-J1",
     "ip=78.1.175.215 rdns=78-1-175-215.adsl.example.hr helo=!192.168.1.241! "
     "by=host307.example.com ident= envfrom=g@example.com intl=0 id=1O9sS9-0007eI-J1 "
     "auth=esmtpa"),
    # Microsoft SMTPSVC: the HELO only, the server looks up no reverse DNS name
    ("from BAY107-W16 ([65.54.190.189]) by bay0-omc3-s12.bay0.hotmail.com with Microsoft "
     "SMTPSVC(6.0.3790.3959)",
     "ip=65.54.190.189 rdns= helo=BAY107-W16 by=bay0-omc3-s12.bay0.hotmail.com ident= "
     "envfrom= intl=0 id= auth="),
    # "name (ip) by": the name is the reverse DNS name and the HELO; a name that is the
    # address itself is kept (__RDNS_NUMERIC_TLD reads it)
    ("from prodigy.example.ie (136.206.15.10) by hawk.example.ie (6.0.040) id 3D36BB4A",
     "ip=136.206.15.10 rdns=prodigy.example.ie helo=prodigy.example.ie by=hawk.example.ie "
     "ident= envfrom= intl=0 id=3D36BB4A auth="),
    ("from omzmo9541.com (210.187.4.102 [210.187.4.102]) by exchange1_bj.hnair_bj with SMTP "
     "(Microsoft Exchange Internet Mail Service Version 5.5.2655.55) id MABCR3BX",
     "ip=210.187.4.102 rdns=210.187.4.102 helo=omzmo9541.com by=exchange1_bj.hnair_bj "
     "ident= envfrom= intl=0 id=MABCR3BX auth="),
    # Sendmail's IDENT: prefix goes; an IPv4-mapped IPv6 address is the IPv4 one;
    # Courier's AUTH: mark is an authentication
    ("from atlas.example.ie (IDENT:root@atlas.example.ie [192.168.3.2]) by "
     "cerberus.example.ie (8.11.6/8.11.6) with ESMTP id g7CIuO803666",
     "ip=192.168.3.2 rdns=atlas.example.ie helo=atlas.example.ie by=cerberus.example.ie "
     "ident=root envfrom= intl=0 id=g7CIuO803666 auth="),
    ("from hugo.example-depot ([::ffff:89.103.89.227]) (AUTH: LOGIN a@example.cz, SSL: "
     "TLSv1/SSLv3,256bits,AES256-SHA) by mail with esmtp",
     "ip=89.103.89.227 rdns= helo=hugo.example-depot by=mail ident= envfrom= intl=0 id= "
     "auth=LOGIN"),
])
def test_relay_forms_read_as_received_pm_reads_them(line: str, expected: str) -> None:
    """Received.pm's own branches for Exim, Microsoft SMTPSVC and the "name (ip)" forms
    (each line checked against Debian's SpamAssassin 4.0.1's X-Spam-Relays-Untrusted)."""
    from spamwarden.rules._relays import parse_received

    relay = parse_received(line)
    assert relay and relay.render(False) == f"[ {expected} msa=0 ]"


def test_plugins_debian_loads_count_as_loaded() -> None:
    """``ifplugin`` is true for every plugin Debian's SpamAssassin loads, so that rules
    take its variants (XPRIO has one for "SPF loaded") and the metas and patterns those
    plugins guard are read; their network evals stay skipped (SPF's run over the MTA's
    results, spamwarden.rules._auth)."""
    from spamwarden.rules import parse_rule_text

    rs = parse_rule_text(
        "ifplugin Mail::SpamAssassin::Plugin::SPF\nmeta XPRIO __XPRIO_MINFP && !SPF_PASS\n"
        "else\nmeta XPRIO __XPRIO_MINFP\nendif\n"
        "header SPF_PASS eval:check_for_spf_pass()\n"
        "header RCVD_IN_SBL eval:check_rbl_sub('zen-lastexternal', '127.0.0.2')\n"
        "ifplugin Mail::SpamAssassin::Plugin::VBounce\nheader __BOUNCE_RPATH_NULL "
        "Return-Path =~ /<>/\nendif\n"
        "ifplugin Mail::SpamAssassin::Plugin::TxRep\nbody TXREP /x/\nendif\n")
    assert rs.rules["XPRIO"].meta is not None and "SPF_PASS" in rs.rules["XPRIO"].meta.names()
    assert "__BOUNCE_RPATH_NULL" in rs.rules
    assert "TXREP" not in rs.rules and "RCVD_IN_SBL" in rs.skipped and "SPF_PASS" in rs.rules


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_body_lines_are_spamassassins(use_hyperscan: bool) -> None:
    """The rendered body as SpamAssassin cuts it: a paragraph break is one newline that
    each line keeps, other white-space runs (no-break spaces included) are one space,
    kept at the line's ends; the last line has no newline."""
    rules = ("body __LEAD /^ bar \\n/\nbody __LAST /^last $/\nbody __NBSP /say hello/\n"
             "body __FOO_NL /foo\\s/\n")
    raw = HEAD + b"To: b@example.net\n\nfoo\n\n   bar  \n\nlast\n"
    assert names(rules, raw, use_hyperscan=use_hyperscan) == {"__LEAD", "__LAST", "__FOO_NL"}
    nbsp = (HEAD + b"To: b@example.net\nContent-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: 8bit\n\nsay\xc2\xa0\xc2\xa0hello now\n")
    assert names(rules, nbsp, use_hyperscan=use_hyperscan) == {"__NBSP"}


RENDER = (b"From: a@example.com\nTo: b@example.net\nSubject: hello  there\n"
          b"Date: Thu, 22 Aug 2002 18:26:25 +0700\nMessage-Id: <1@example.org>\n"
          b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
          b"--XX\nContent-Type: text/html; charset=us-ascii\n\n"
          b"<html><head><title>My offer</title><script>var x = 1;</script></head>\n"
          b"<body>Copy DVD Mov<b>ies</b>?<br>Yes!\nCopy and burn\ntoday.<p>Order &#149; "
          b"now&nbsp;&amp; save</p><iframe src=\"x\"><b>framed</b></iframe></body></html>\n"
          b"--XX\nContent-Type: text/plain; charset=iso-8859-1; name=notes.txt\n"
          b"Content-Disposition: attachment; filename=notes.txt\n"
          b"Content-Transfer-Encoding: 8bit\n\ncaf\xe9 notes\n--XX--\n")


@pytest.mark.parametrize("use_hyperscan", BOTH)
def test_body_is_rendered_as_spamassassin_renders_it(use_hyperscan: bool) -> None:
    """The body lines are Node.pm's and HTML.pm's rendering (checked against SpamAssassin
    4.0.1's get_rendered_body_text_array on this message): inline tags join words, the
    source's line ends are spaces, <p> and <title> break paragraphs, the title is shown,
    a script is not, an <iframe>'s content is literal text, &#149; is U+0095, a text
    attachment is rendered too (Latin-1 decoded), the Subject keeps its inner spaces.
    rawbody keeps the octets as received."""
    rules = ("body __SUBJ /^hello  there\\n/\nbody __TITLE /^My offer\\n/\n"
             "body __JOINED /^Copy DVD Movies\\? Yes! Copy and burn today\\.\\n/\n"
             "body __BULLET /^Order \\xc2\\x95 now & save\\n/\nbody __SCRIPT /var x/\n"
             "body __FRAMED /^<b>framed<\\/b> caf\\xc3\\xa9 notes $/\n"
             "rawbody __RAW_LATIN1 /caf\\xe9 notes/\n")
    assert names(rules, RENDER, use_hyperscan=use_hyperscan) == {
        "__SUBJ", "__TITLE", "__JOINED", "__BULLET", "__FRAMED", "__RAW_LATIN1"}


def test_subject_all_caps_leaves_out_prefixes_and_capital_charsets() -> None:
    """HeaderEval's subject_is_all_caps strips reply/forward prefixes ("fwd:" in lower
    case does not save the subject) and punts on charsets whose text reads as capitals
    (Big5, ...); checked against SpamAssassin 4.0.1."""
    rules = "header SUBJ_ALL_CAPS eval:subject_is_all_caps()\n"
    rest = b"From: a@example.com\nTo: b@example.net\n\nhi\n"
    assert names(rules, b"Subject: fwd:  SYSTEMWORKS CLEARANCE SALE ONLY\n" + rest) == {
        "SUBJ_ALL_CAPS"}
    assert names(rules, b"Subject: =?big5?Q?=BE=A5=A4=F4_=A7X=A7=E5=B5o=B9q=A4l=B3=F8?=\n"
                 + rest) == set()
    assert names(rules, b"Subject: Clearance sale today\n" + rest) == set()


def test_html_tag_exists_skips_comments_and_literal_content() -> None:
    """HTML::Parser reports no tag inside a comment or inside the elements it reads as
    literal text (a <script> inside an <iframe>): __TAG_EXISTS_SCRIPT and
    __TAG_EXISTS_CENTER do not hit; checked against SpamAssassin 4.0.1."""
    rules = "".join(f"body __TAG_{t.upper()} eval:html_tag_exists('{t}')\n"
                    for t in ("script", "center", "iframe", "p"))
    raw = (HEAD + b"To: b@example.net\nContent-Type: text/html\n\n<html><body><iframe src=x>"
           b"<script src=y></script></iframe><!-- <center> --><p>hi</p></body></html>\n")
    assert names(rules, raw) == {"__TAG_IFRAME", "__TAG_P"}


def test_received_lines_received_pm_cannot_parse() -> None:
    """A ``from`` line in none of Received.pm's forms and with no bracketed address is
    unparseable (UNPARSEABLE_RELAY), even with an address in it; a line starting with an
    address parses only as "ip by ...", and Obtuse smtpd's "name(ip), claiming to be"
    form is read (each checked against SpamAssassin 4.0.1)."""
    from spamwarden.rules._relays import parse_received

    assert parse_received("from 75-39-106-129.example.net (edjabr@75.39.106.129 with plain) "
                          "by smtp104.sbc.mail.ac4.yahoo.com with SMTP") == "unparseable"
    assert parse_received("from 208.187.15.9 - 208.187.15.9 by mailepiser with Microsoft "
                          "SMTPSVC(5.5.1775.675.6)") == "unparseable"
    relay = parse_received('from ccgproperties.com(64.109.216.89), claiming to be '
                           '"mx2.example.com" via SMTP by InterJet.example.com, id smtpdE13080')
    assert relay and relay.render(False) == (
        "[ ip=64.109.216.89 rdns=ccgproperties.com helo=mx2.example.com "
        "by=InterJet.example.com ident= envfrom= intl=0 id=smtpdE13080 auth= msa=0 ]")
    relay = parse_received("from 192.0.2.77 by mail.example.com with HTTP")
    assert relay and (relay.ip, relay.rdns, relay.by, relay.auth) == (
        "192.0.2.77", "", "mail.example.com", "HTTP")


def uris(raw: bytes) -> set[bytes]:
    return set(prepare_message(parse_message(raw), raw).uris)


def test_text_uris_as_spamassassin_finds_them() -> None:
    """PerMsgStatus's _tbirdurire on the rendered text: host names without a scheme
    (``www.``, or ending in a valid TLD) become ``http://`` URIs, addresses ``mailto:``;
    a name under no valid TLD, and a URI with no valid host, are not URIs."""
    raw = (HEAD + b"To: b@example.net\n\n"
           b"See www.example.com, or Example.org/page.html (today) and\n"
           b"write to bob@example.net. Not a link: thereafter.zzzz or config.cf.x\n"
           b"http://uk.example.comm\n")
    found = uris(raw)
    assert {b"http://www.example.com", b"http://Example.org/page.html",
            b"mailto:bob@example.net"} <= found
    assert not any(b"zzzz" in u or b"config" in u or b".comm" in u for u in found)
    assert names("uri __HAS_ANY_URI /^\\w+:\\/\\//\n", raw) == {"__HAS_ANY_URI"}


def test_uri_list_canonicalize_adds_spamassassin_forms() -> None:
    """Util.pm's uri_list_canonicalize: %-escapes decoded, numeric hosts as dotted
    quads, a default port dropped (with the user name), a URI inside another one."""
    raw = (HEAD + b"To: b@example.net\n\n"
           b"http://%77%77%77.example.com/a http://0x7f000001/b http://me@www.example.org:80/c\n"
           b"http://r.example.net/go?u=http://target.example.info/x\n")
    found = uris(raw)
    assert {b"http://www.example.com/a", b"http://127.0.0.1/b", b"http://www.example.org/c",
            b"http://target.example.info/x"} <= found
    assert b"http://www.example.org:80/c" not in found


def test_html_links_as_html_pm_reads_them() -> None:
    """HTML.pm's html_uri: links resolved against <base href>; a quoted attribute value
    may hold ">" (HTML::Parser), a quote elsewhere in a tag opens no string; an entity
    name is read whole (``&register`` is no ``&reg``); a comment never closed ends at the
    first ">"."""
    html = (b"<html><base href=\"http://www.example.com/dir/index.html\">"
            b"<img src=\"pics/a.jpg\"><a href=\"/top.htm\">x</a>"
            b"<a href=\"http://q.example.net/?a=1&register=2&amp;b=3\">q</a>"
            b"<!--#rotate> <a href=\"http://after.example.org/\">after</a>"
            b"<a href=\"http://broken.example.com/>\n<font face=\" Arial\" size=\"1\">"
            b"Subscribe</font></a></html>")
    raw = (HEAD + b"To: b@example.net\nMIME-Version: 1.0\n"
           b"Content-Type: text/html\n\n" + html + b"\n")
    found = uris(raw)
    assert {b"http://www.example.com/dir/pics/a.jpg", b"http://www.example.com/top.htm",
            b"http://q.example.net/?a=1&register=2&b=3", b"http://after.example.org/",
            b"http://broken.example.com/><font face="} <= found
    assert b"http://broken.example.com/" not in found
    body = prepare_message(parse_message(raw), raw).body
    assert any(b"after" in line for line in body)
    assert not any(b"broken" in line for line in body)


def test_uri_host_listed_reads_valid_hosts_only() -> None:
    """WLBLEval's check_uri_host_listed reads the hosts uri_to_domain gives: not a
    one-label name ("top" from a relative link) nor a mailto: domain."""
    rules = ("uri __BAD_TLD eval:check_uri_host_listed('NTLD')\n"
             "enlist_uri_host (NTLD) top\nenlist_uri_host (NTLD) icu\n")
    html = b'<a href="top">up</a> <a href="mailto:a@b.icu">m</a>'
    raw = (HEAD + b"To: b@example.net\nMIME-Version: 1.0\n"
           b"Content-Type: text/html\n\n" + html + b"\n")
    assert names(rules, raw) == set()
    raw2 = raw.replace(b'href="top"', b'href="http://shop.example.top/"')
    assert names(rules, raw2) == {"__BAD_TLD"}


def test_sorted_and_similar_recipients() -> None:
    """HeaderEval's sorted_recipients (seven or more To/Cc addresses in order) and
    similar_recipients (the share of address pairs alike in their first two characters,
    or in their domains' first two characters with different domains)."""
    rules = ("header SORTED_RECIPS eval:sorted_recipients()\n"
             "header SUSPICIOUS_RECIPS eval:similar_recipients('0.65','undef')\n")
    alike = b", ".join(b"jo%d@ex%d.example.com" % (i, i) for i in range(7))
    raw = HEAD.replace(b"Subject", b"To: " + alike + b"\nSubject") + b"\nhi\n"
    assert names(rules, raw) == {"SORTED_RECIPS", "SUSPICIOUS_RECIPS"}
    mixed = (b"zed@example.com, amy@other.example.net, bob@example.org, "
             b"Carl <carl@x.example.com>")
    raw = HEAD.replace(b"Subject", b"To: " + mixed + b"\nCc: dan@y.example.info\nSubject")
    assert names(rules, raw + b"\nhi\n") == set()


def test_tvd_vertical_words_reads_the_space_share_of_body_lines() -> None:
    """BodyEval's tvd_vertical_words: the highest share of spaces among a body line's
    other characters (the Subject line included, lines of five characters or fewer
    left out); TVD_SPACE_RATIO is a share under 10 %."""
    rules = "body __TVD_SPACE_RATIO eval:tvd_vertical_words('0','10')\n"
    head = HEAD.replace(b"Subject: hello", b"Subject: hi")
    assert names(rules, head + b"\nnospaceshere\n") == {"__TVD_SPACE_RATIO"}
    assert names(rules, head + b"\nv e r t i c a l\n") == set()
    assert names(rules, head + b"\nhi\n") == set()
    assert names(rules, HEAD + b"\nhi\n") == {"__TVD_SPACE_RATIO"}  # "hello\n"


def _alternative(text: bytes, html: bytes) -> bytes:
    return (HEAD + b"To: b@example.net\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/alternative; boundary=XX\n\n--XX\n"
            b"Content-Type: text/plain\n\n" + text + b"\n--XX\n"
            b"Content-Type: text/html\n\n" + html + b"\n--XX--\n")


def test_multipart_alternative_difference() -> None:
    """BodyEval's multipart_alternative_difference: the share of an alternative's HTML
    words its text part does not hold (MPART_ALT_DIFF: over 99 %), and ..._count: text
    words over HTML words (MPART_ALT_DIFF_COUNT: above 3 with more than one HTML word);
    an HTML part of only an image counts one word."""
    rules = ("body MPART_ALT_DIFF eval:multipart_alternative_difference('99', '100')\n"
             "body MPART_ALT_DIFF_COUNT eval:multipart_alternative_difference_count('3', '1')\n")
    same = _alternative(b"Buy cheap pills now", b"<p>Buy cheap <b>pills</b> now</p>")
    assert names(rules, same) == set()
    other = _alternative(b"Hello friend, see you soon", b"<p>Buy cheap pills now</p>")
    assert names(rules, other) == {"MPART_ALT_DIFF"}
    image = _alternative(b"one two three four five six seven eight nine ten eleven twelve",
                         b'<img src="http://x.example.com/a.gif"> <p>x y</p>')
    assert names(rules, image) == {"MPART_ALT_DIFF", "MPART_ALT_DIFF_COUNT"}
    only_image = _alternative(b"see the picture", b'<img src="http://x.example.com/a.gif">')
    assert names(rules, only_image) == {"MPART_ALT_DIFF"}
    assert names(rules, HEAD + b"\nBuy cheap pills now\n") == set()


def test_html_title_subject_ratio() -> None:
    """HTMLEval's html_title_subject_ratio: a title more than RATIO times as long as the
    Subject (newline included); none without a Subject."""
    rules = "body __HTML_TITLE_SUBJ_DIFF eval:html_title_subject_ratio('3.5')\n"

    def message(title: bytes, head: bytes = HEAD) -> bytes:
        return (head + b"To: b@example.net\nMIME-Version: 1.0\nContent-Type: text/html\n\n"
                b"<html><head><title>" + title + b"</title></head><body>x</body></html>\n")

    assert names(rules, message(b"a" * 21)) == set()  # 21 / len("hello\n") = 3.5
    assert names(rules, message(b"a" * 22)) == {"__HTML_TITLE_SUBJ_DIFF"}
    assert names(rules, message(b"a" * 40, HEAD.replace(b"Subject: hello\n", b""))) == set()
    # the Subject's length is that of get('Subject'), UTF-8 octets (Node.pm's
    # _decode_header): four CJK characters and the newline are 13 octets, and a 21-octet
    # Big5 title is 1.6 times that, not 4.2 times the 5 characters (spamassassin spam_2
    # 00773); a title in a charset other than UTF-8 counts its octets, as HTML::Parser
    # is given them with normalize_charset off
    big5 = HEAD.replace(b"Subject: hello\n", b"Subject: =?big5?Q?=B4M=A7=E4=BE=F7=B7|?=\n")
    big5_title = bytes.fromhex("c0b0b94cb35ca668a448a45db35ca741a5bfbbdded6e")[:21]
    assert names(rules, message(big5_title, big5)) == set()
    assert names(rules, message(b"a" * 46, big5)) == {"__HTML_TITLE_SUBJ_DIFF"}  # > 3.5 x 13


def test_html_obfuscation_ratio() -> None:
    """HTML.pm's obfuscation_ratio: text pieces starting with a letter or digit right
    after a piece ending with one (a word cut by a tag or comment), per tag."""
    rules = ("body HTML_OBFUSCATE_30_40 eval:html_range('obfuscation_ratio','.3','.4')\n"
             "body HTML_OBFUSCATE_10_20 eval:html_range('obfuscation_ratio','.1','.2')\n")

    def message(html: bytes) -> bytes:
        return (HEAD + b"To: b@example.net\nMIME-Version: 1.0\nContent-Type: text/html\n\n"
                + html + b"\n")

    # 2 cut words, 6 tags
    assert names(rules, message(b"<html><body>Vi<b>ag</b>ra is here</body></html>")) == {
        "HTML_OBFUSCATE_30_40"}
    # a line break between the pieces is no cut, a comment is: 1 of 7 tags
    assert names(rules, message(b"<html><body>Vi<br>ag<!-- x -->ra<p>is here</p></body></html>")
                 ) == {"HTML_OBFUSCATE_10_20"}
    assert names(rules, message(b"<html><body>Viagra <b>is</b> here</body></html>")) == set()


def test_from_name_and_address_as_spamassassin_reads_them() -> None:
    """PerMsgStatus's ``:name``: white space runs made one space and the ends stripped;
    Util.pm's address parser takes an unquoted display name holding "@" for a name
    (``Blueberry@Home <a@b.example>`` is one address, a@b.example)."""
    rules = ("header __FROM_FULL_NAME From:name =~ /^[^a-z[:punct:][:cntrl:]\\d\\s]"
             "[^[:punct:][:cntrl:]\\d\\s]*[[:punct:]\\s]+[^a-z[:punct:][:cntrl:]\\d\\s]/\n"
             "header __FROM_ADDR From:addr =~ /^scribes\\@/\n")
    quoted = HEAD.replace(b"From: alice@example.org",
                          b'From: "" Angles " Puglisi" <angles@example.com>')
    assert names(rules, quoted + b"\nhi\n") == {"__FROM_FULL_NAME"}
    at_name = HEAD.replace(b"From: alice@example.org",
                           b"From: Blueberry@Home <scribes@mta.example.com>")
    assert names(rules, at_name + b"\nhi\n") == {"__FROM_FULL_NAME", "__FROM_ADDR"}
