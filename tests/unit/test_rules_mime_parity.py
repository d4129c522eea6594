"""spamwarden.rules: SpamAssassin 4.0's reading of MIME parts and HTML, on crafted
messages.

``tests/data/sarules_mime/*.eml`` are checked by SpamAssassin itself
(``tests/data/sarules_mime/make_expected.py`` wrote ``expected.json``: the rules below
that it hits on each); the engine must hit the same ones.  Each message is built so
that the engine before these fixes differed: an HTML page sent as
application/octet-stream whose name (Content-Disposition's ``filename``, Content-Type's
``name``, an RFC 2231 ``name*0``/``name*1`` pair) ends in ``.htm``, ``.shtml`` or
``.html`` (Node.pm's ``effective_type`` renders it as HTML; ``offer.txt`` or a name
with a space after it is not); an attribute value with a stray quote
(``color=#66FF66"``: hparser.c opens a string only where a value starts) and a quote
never closed (the rest of the part is one comment); a Big5 and a UTF-8 page longer
than 1,024 octets but not characters (HTML.pm counts the decoded text); the field
blocks of a message/delivery-status part (not MIME parts: no missing MIME headers)
and of a message/feedback-report part (one leaf each, scanned as rawbody); style
values running over a line (HTML.pm's patterns have no ``/s``); text in ISO-2022-JP and
UTF-7, all ASCII octets that Node.pm's ``_normalize`` still decodes (ISO-2022-JP-2,
which Perl's Encode does not know, stays octets); a Subject whose encoded word holds
no-break spaces (the body's first line, one word to Perl's octet ``\\s``); a mailto
link whose address the text shows too (a "parsed" URI as well, which FreeMail's
``_parse_body`` skips) and one whose text is other words; a URI whose host runs
into Chinese text after a dot (Util.pm's ``idn_to_ascii`` makes it an invalid
"xn--" name, not a cut ASCII one); a Subject of 8-bit octets that are not UTF-8
(Windows-1252 to Node.pm: two octets a character in the body's first line); a
multipart whose delimiter lines do not match its boundary, at the top and inside
another (Message.pm's ``_parse_multipart`` keeps its whole body as one text/plain
part, boundary lines included); a text part longer than body_part_scan_size (body
rules read its first 50,000 characters, up to the next newline); a link tag whose
``href`` has no value (HTML::Parser gives the attribute's name: a URI "HREF"); base64
lines of 78 octets (79 with the newline MIMEEval counts) and a 77-octet last line
before a boundary (Message.pm chomps its newline: 77); a comment "<!--#rotate>" never
closed by "-->" (HTML::Parser ends it at its ">": the tags after it count); 60 lines
of tabs in an HTML part (Message.pm keeps 20 of a run of blank lines: its length); a
base64 HTML part with a mailing list's footer below it (Util.pm's base64_decode reads
the footer's letters as more base64: a longer part).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spamwarden.rules import RuleEngine
from tests.support.sarules import CraftedRules

DATA = Path(__file__).parent.parent / "data" / "sarules_mime"

# the rules as SpamAssassin 4.0.1's files define them (20_html_tests.cf, 20_meta_tests.cf,
# 72_active.cf), and make_expected.py's LOCAL_CF
RULES = """
body HTML_MESSAGE eval:html_test('html')
body HTML_EXTRA_CLOSE eval:html_range('closed_extra_ratio', '0.09', 'inf')
body HTML_FONT_SIZE_HUGE eval:html_range('max_size', '6', 'inf')
body HTML_FONT_LOW_CONTRAST eval:html_test('font_low_contrast')
body HTML_TAG_BALANCE_BODY eval:html_tag_balance('body', '!= 0')
body __HTML_TAG_BALANCE_CENTER eval:html_tag_balance('center', '!= 0')
body __HTML_LENGTH_0000_1024 eval:html_range('length', '0', '1024')
body __HTML_LENGTH_1024_1536 eval:html_range('length', '1024', '1536')
body __TAG_EXISTS_HTML eval:html_tag_exists('html')
body __TAG_EXISTS_BODY eval:html_tag_exists('body')
body HTML_IMAGE_ONLY_04 eval:html_image_only('0000','0400')
body HTML_IMAGE_ONLY_08 eval:html_image_only('0400','0800')
body __NONEMPTY_BODY /\\S/
tflags __NONEMPTY_BODY nosubject
body T_TVD_MIME_NO_HEADERS eval:check_msg_parse_flags('missing_mime_headers')
body LOCAL_BODY_OFFER /Premium offer/
rawbody LOCAL_RAW_OFFER /<b>Premium offer/i
uri LOCAL_URI_SHOP /^http:\\/\\/shop\\.example\\.com/
rawbody LOCAL_RAW_REPORT /^(?:Action: failure|Feedback-Type: abuse)$/m
body LOCAL_FONT_INVALID eval:html_test('font_invalid_color')
body __ISO_2022_JP_DELIM /\\e\\$B/
body __SINGLE_WORD_LINE /^\\s?\\S{1,60}\\s?$/
body BASE64_LENGTH_78_79 eval:check_base64_length('78','79')
body BASE64_LENGTH_79_INF eval:check_base64_length('79')
freemail_domains 163.com
header __freemail_replyto eval:check_freemail_replyto('replyto')
uri __HAS_URI /./
body MIME_HTML_ONLY eval:check_for_mime_html_only()
body __MIME_HTML eval:check_for_mime_html()
"""
CRAFTED = CraftedRules(DATA, RULES)
EXPECTED = CRAFTED.expected
_hits = CRAFTED.hits
engine = CRAFTED.engine_fixture()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_hits_as_spamassassin(engine: RuleEngine, name: str) -> None:
    assert _hits(engine, (DATA / name).read_bytes()) == set(EXPECTED[name])


def test_every_message_has_expectations() -> None:
    assert sorted(EXPECTED) == CRAFTED.messages()
