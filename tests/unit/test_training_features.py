"""Feature tokens: Unicode and Vietnamese, leaking headers ignored, the MIME parse shortcut."""

from __future__ import annotations

from spamwarden.mail import parse_message
from spamwarden.training.features import (
    MessageFeatureExtractor,
    header_stripper,
    settings_hash,
    strip_diacritics,
    tokenize,
)


def test_vietnamese_tokens_carry_their_diacritic_free_form() -> None:
    toks = tokenize("Khuyến mãi ĐẶC BIỆT: giảm giá 50%!!!")
    assert toks == ["khuyến", "khuyen", "mãi", "mai", "đặc", "dac", "biệt", "biet",
                    "giảm", "giam", "giá", "gia", "50", "!!!"]


def test_vietnamese_decomposed_input_matches_composed() -> None:
    import unicodedata

    composed = "Miễn phí vận chuyển"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert tokenize(decomposed) == tokenize(composed)
    # accent-stripped spam meets the accented form on the same token
    assert set(tokenize("Mien phi van chuyen")) <= set(tokenize(composed))


def test_strip_diacritics() -> None:
    assert strip_diacritics("Đường phố Hà Nội, café, naïve") == "Duong pho Ha Noi, cafe, naive"


def test_tokenize_numbers_prefix_and_limit() -> None:
    assert tokenize("call 0912345678 now 2002", prefix="s:") == [
        "s:call", "s:#digits10", "s:now", "s:2002"]
    assert tokenize("a" * 10 + " bb", limit=5) == ["aaaaa"]
    assert tokenize("x y") == []  # one-letter words are not tokens


def test_header_stripper_patterns() -> None:
    pat = header_stripper(("X-Spam-*", "Received-SPF"))
    assert pat.match("x-spam-status")
    assert pat.match("received-spf")
    assert not pat.match("received")
    assert not pat.match("x-mailer")


MESSAGE = (
    b"From: \"Shop\" <deals123@shop.example>\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b"Subject: =?utf-8?b?R2nhuqNtIGdpw6EgNTAl?=\r\n"
    b"X-Mailer: BulkMail 2.0\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<html><body><p>Mua ngay <a href=\"http://click.deals.example/x?id=1\">t\xe1\xba\xa1i \xc4\x91\xc3\xa2y</a>"
    b"</p></body></html>\r\n"
)

LEAKS = (
    b"X-Spam-Status: Yes, score=25.0\r\n"
    b"X-Spam-Flag: YES\r\n"
    b"X-Barracuda-Spam-Score: 9.1\r\n"
    b"X-Mozilla-Status: 0001\r\n"
    b"Received-SPF: pass (google.com: domain of x@y designates 1.2.3.4)\r\n"
    b"Authentication-Results: mx.google.com; spf=pass\r\n"
    b"Delivered-To: someone@gmail.com\r\n"
    b"X-Gmail-Labels: Inbox\r\n"
    b"Status: RO\r\n"
)


def test_leaking_headers_do_not_change_tokens() -> None:
    ext = MessageFeatureExtractor()
    plain = ext.tokens(parse_message(MESSAGE))
    leaky = ext.tokens(parse_message(LEAKS + MESSAGE))
    assert plain == leaky
    assert "hv:x-mailer:bulkmail" in plain
    assert "st:html_only" in plain
    assert "st:to_undisclosed" in plain
    assert "st:from_digits" in plain
    assert "ud:deals.example" in plain
    assert "fd:shop.example" in plain
    assert {"s:giảm", "s:giam", "tại", "tai", "đây", "day"} <= set(plain)


def test_without_stripping_the_leaks_would_show() -> None:
    ext = MessageFeatureExtractor(strip_headers=())
    # no header-name features exist, so even unstripped the X-Spam-* fields add nothing;
    # a header the extractor reads does change when it is not stripped
    msg = b"X-Priority: 1\r\n" + MESSAGE
    assert "hv:x-priority:1" in ext.tokens(parse_message(msg))
    stripped = MessageFeatureExtractor(strip_headers=("X-Priority",))
    assert "hv:x-priority:1" not in stripped.tokens(parse_message(msg))


def test_settings_hash_is_stable_and_sensitive() -> None:
    a = MessageFeatureExtractor().settings()
    assert settings_hash(a) == settings_hash(dict(a))
    b = MessageFeatureExtractor(max_text_chars=10).settings()
    assert settings_hash(a) != settings_hash(b)


def test_mime_parse_sees_only_mime_fields_and_keeps_bodies() -> None:
    trace = b"".join(b"Received: from hop%d by mx (Postfix)\r\n" % i for i in range(30))
    multipart = (
        trace + b"Subject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative;\r\n boundary=\"BB\"\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
        b"--BB\r\nContent-Type: text/html\r\n\r\n<b>html words</b>\r\n--BB--\r\n"
    )
    v = parse_message(multipart)
    assert [p.content_type for p in v.parts] == ["text/plain", "text/html"]
    assert "plain words" in v.text and "html words" in v.html_text
    assert len(v.received) == 30
    # a message without MIME fields: the body starts at its first line
    v2 = parse_message(b"Subject: x\r\nFrom: a@b.example\r\n\r\nfirst line\r\nsecond\r\n")
    assert v2.text.startswith("first line")
    assert v2.parts[0].content_type == "text/plain"
    # header names with characters outside RFC 5322 section 3.6.8 are not fields
    v3 = parse_message(b"Bad Name: x\r\nSubject: ok\r\n\r\nbody\r\n")
    assert v3.subject == "ok"
    assert "malformed header line" in v3.defects


def test_filter_markers_in_the_subject_are_not_features() -> None:
    from spamwarden.training.features import subject_without_tags

    assert subject_without_tags("[spam] [SPAM] Six tips") == "Six tips"
    assert subject_without_tags("***SPAM*** Buy") == "Buy"
    assert subject_without_tags("{Spam?} hello") == "hello"
    assert subject_without_tags("[Spambayes] release 1.0") == "[Spambayes] release 1.0"
    ext = MessageFeatureExtractor()
    tagged = ext.tokens(parse_message(b"Subject: [SPAM] Six tips\r\n\r\nbody text\r\n"))
    clean = ext.tokens(parse_message(b"Subject: Six tips\r\n\r\nbody text\r\n"))
    assert tagged == clean


def test_structure_weight_repeats_only_non_word_tokens() -> None:
    raw = (b"From: Deals <promo@cheap.example>\nTo: undisclosed-recipients:;\n"
           b"Subject: WIN $500 NOW!!!\nX-Mailer: BulkMail 2\n\n"
           b"Click http://bit.ly/abc and http://1.2.3.4:8080/x.php?" + b"q" * 80 + b" today\n")
    view = parse_message(raw)
    plain = MessageFeatureExtractor().tokens(view)
    heavy = MessageFeatureExtractor(structure_weight=3).tokens(view)
    assert MessageFeatureExtractor().settings() != MessageFeatureExtractor(
        structure_weight=3).settings()
    for token in plain:
        expected = 3 if token.startswith(("st:", "fd:", "ud:", "hv:")) else 1
        assert heavy.count(token) == expected * plain.count(token), token
    assert "click" in heavy and "s:win" in heavy
    # URL and subject shapes
    for token in ("st:url_shortener", "st:url_long_query", "st:url_ip", "st:url_port",
                  "st:url_path:php", "st:url_tld:ly", "st:from_tld:example", "st:subj_money",
                  "st:subj_punct", "st:subj_digit", "st:subj_caps4", "st:url_domains1"):
        assert token in plain, token
