"""spamwarden.rules: the shortcuts that save CPU per message give what the plain
computation gives, and nothing computed for one message is read for another."""

from __future__ import annotations

import base64
import random
import re
import struct

import pytest

from spamwarden.rules import _prepare, _uris


def _plain_text_uris(lines: list[bytes]) -> list[bytes]:
    """_process_text_uri_list as written: the pattern run over each whole line."""
    tlds = _uris.valid_tlds()
    regex = _uris._tbirdurire(tlds)
    seen: set[bytes] = set()
    out = []
    for text in lines:
        lower = text.lower()
        for m in regex.finditer(lower):
            uri = _uris._text_uri(text, lower, m, seen, tlds)
            if uri is not None:
                out.append(uri)
    return out


def test_text_uris_are_those_of_a_full_scan() -> None:
    rnd = random.Random(7)
    samples = [
        [b""], [b"@"], [b"a@b.cc"], [b"mailto:x@y.org"], [b"(a@b.cc)", b"}a@b.cc\n"],
        [b"see www.example.com, or example.org/x.html.", b"~a@b.com and http://x.y/z\n"],
        [b"write to <joe@example.com>, or jane@example.org.\n", b"\x1b(Bwww.x.com\n"],
        [b"x" * 300 + b"@example.com", b"tab\tsep.com\ta@b.org\r\n"],
        [b"mailto:" + b"y" * 3000 + b"@example.com", b"a@b@c.dd e@f.gg"],
    ]
    alphabet = b'ab@.:/wmailto<>"()[]{}}~ \t\n\x80\xa0,|`comnetx1'
    samples += [[bytes(rnd.choice(alphabet) for _ in range(60)) for _ in range(3)]
                for _ in range(1000)]
    samples += [[bytes(rnd.choice(b"b" * 120 + b"@.: ") for _ in range(rnd.randint(200, 4000)))]
                for _ in range(50)]
    for lines in samples:
        assert _uris.text_uris(lines) == _plain_text_uris(lines), lines


def test_html_attribute_and_tag_caches_are_keyed_by_the_whole_text() -> None:
    from spamwarden.rules import _html

    first = _html._attrs(b' face="Arial" size=2')
    again = _html._attrs(b' face="Arial" size=2')
    other = _html._attrs(b' face="Comic Sans" size=2')
    assert first == again == {b"face": b"Arial", b"size": b"2"}
    assert other[b"face"] == b"Comic Sans"
    assert _html._tag_info(b"FONT") == ("font", True, False)
    assert _html._tag_info(b"o:p") == ("o:p", True, True)
    assert _html._tag_info(b"blink") == ("blink", False, False)


def test_html_results_of_one_part_do_not_reach_the_next() -> None:
    from spamwarden.rules._html import parse_html

    hidden = parse_html(b'<body bgcolor=white><font color="#ffffff">hidden</font>'
                        b'<font color=nocolour>odd</font><img width=10 height=10></body>')
    plain = parse_html(b"<body><p>plain <b>text</b></p></body>")
    assert hidden.font_low_contrast and hidden.font_invalid_color and hidden.image_area
    assert not plain.font_low_contrast and not plain.font_invalid_color
    assert plain.image_area == 0 and plain.inside == {"body": 0, "p": 0, "b": 0}


_MEMO_RULES = (
    "header FROM_LISTED eval:check_from_in_list('BAD')\nenlist_addrlist (BAD) *@bad.example\n"
    "uri URI_LISTED eval:check_uri_host_listed('HOSTS')\nenlist_uri_host (HOSTS) bad.example.net\n"
    "header REPLYTO_FREE eval:check_freemail_replyto('replyto')\n"
    "freemail_domains free.example.org\n"
    "body UPPER eval:check_for_uppercase('50', '100')\n"
)


def _message(sender: str, link: str, body: str) -> bytes:
    return (f"From: {sender}\r\nTo: bob@example.net\r\nReply-To: other@free.example.org\r\n"
            f"Subject: hello\r\nMessage-ID: <1@x>\r\n\r\n{body}\r\n{link}\r\n").encode()


def test_per_message_memos_do_not_reach_the_next_message() -> None:
    from spamwarden.mail import parse_message
    from spamwarden.rules import RuleEngine, parse_rule_text, prepare_message

    engine = RuleEngine(parse_rule_text(_MEMO_RULES), use_hyperscan=False)
    spammy = _message("x@bad.example", "http://www.bad.example.net/x",
                      "WRITE TO ME AT third@free.example.org " + "BUY NOW " * 40)
    clean = _message("alice@good.example", "http://good.example/",
                     "no addresses here, " + "just text " * 40)

    def names(raw: bytes) -> set[str]:
        prepared = prepare_message(parse_message(raw), raw)
        return {h.name for h in engine.check_prepared(prepared)}

    for _ in range(2):
        assert names(spammy) == {"FROM_LISTED", "URI_LISTED", "REPLYTO_FREE", "UPPER"}
        assert names(clean) == set()


def test_metas_read_as_presence_agree_with_values() -> None:
    from spamwarden.rules._expr import compile_expr, compile_metas, parse_expr

    exprs = ["!A", "A && !B", "A || B", "!(A && B) || C", "(A + B) > 1 && !C",
             "A && (B + C >= 2)", "!!A", "A * B", "C / A", "A - B == 0 || !C"]
    order = [(f"M{i}", parse_expr(e)) for i, e in enumerate(exprs)]
    order.append(("CHAIN", parse_expr("M0 || M3 && M5")))
    run = compile_metas(order)
    # (a 0 count is read as a value, not as presence: "!A" hits with A == 0)
    for counts in ({}, {"A": 1.0}, {"A": 1.0, "B": 1.0}, {"B": 2.0, "C": 1.0},
                   {"A": 3.0, "B": 1.0, "C": 1.0}, {"A": 0.0}, {"A": 0.0, "B": 1.0}):
        expected = dict(counts)
        for name, tree in order:
            if compile_expr(tree)(expected):
                expected[name] = 1.0
        got = dict(counts)
        run(got)
        assert got == expected, counts


def test_single_part_shortcut_gives_the_full_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    cases: list[tuple[tuple[tuple[str, str], ...], bytes]] = [
        ((), b"plain body\r\n"),
        ((("Content-Type", "text/plain; charset=utf-8"),), b"a\rb\nc\r\nd\x0be\x0cf\x1cg\xc2\x85h"),
        ((("Content-Type", "text/html"), ("Content-Transfer-Encoding", "base64"),
          ("Content-Disposition", 'attachment; filename="x.html"')), b"PGI+eDwvYj4=\n"),
        ((("Content-Type", 'application/pdf; name="a.pdf"'),), b"%PDF\xff\xfe\r\n"),
        ((("Content-Type", "message/rfc822"),), b"Subject: inner\r\n\r\ninner body\r\n"),
        ((("Content-Type", "multipart/mixed; boundary=b"),),
         b"--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b--\r\n"),
        ((("Content-Type", "text/plain"), ("X-Other", "ignored")), b""),
        ((("Content-Type", "text/plain\r\n broken"),), b"body\n"),
    ]
    fast = [_prepare._walk_parts(h, b) for h, b in cases]
    monkeypatch.setattr(_prepare, "_single_part", lambda raw, body: None)
    full = [_prepare._walk_parts(h, b) for h, b in cases]
    assert fast == full


def test_received_date_cut_from_the_last_words_is_the_full_search() -> None:
    from spamwarden.rules import _relays

    words = ["from", "a.example", "by", "b", "id", "x;12", ";", ";;", "Mon,", "Tue,", "12",
             "1", "Jan", "Feb", "2003", "10:00:00", "10:00", "+0000", "(PST)", "x;Mon,"]
    rnd = random.Random(3)
    samples = ["from a by b; Mon, 12 Jan 2003 10:00:00 +0000",
               "from a by b id c ; ; ; ; ; ; ; Mon, 12 Jan 2003 10:00:00 +0000",
               "from a by b id c ; ; ; ; ; ; ; ; 12 Jan 2003 10:00 +0000", "12 Jan 2003 1:2 x"]
    samples += [" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 14)))
                for _ in range(20000)]
    for text in samples:
        assert _relays._cut_date(text) == _relays._DATE_TAIL.sub("", text), text


def test_address_lists_kept_across_messages_are_not_shared() -> None:
    from spamwarden.mail import parse_message
    from spamwarden.rules import prepare_message

    raw = (b"From: a@example.org\r\nTo: b@example.net, \"C\" <c@example.com>\r\n"
           b"Subject: x\r\n\r\nbody\r\n")
    first = prepare_message(parse_message(raw), raw)
    pairs = first.address_pairs("b@example.net, \"C\" <c@example.com>")
    assert pairs == [("", "b@example.net"), ("C ", "c@example.com")]
    pairs.append(("X", "x@example.org"))  # a caller changing its list changes no other
    second = prepare_message(parse_message(raw), raw)
    assert second.address_pairs("b@example.net, \"C\" <c@example.com>") == [
        ("", "b@example.net"), ("C ", "c@example.com")]
    other = prepare_message(parse_message(raw.replace(b"c@example.com", b"d@example.com")),
                            raw.replace(b"c@example.com", b"d@example.com"))
    assert other.address_pairs("b@example.net, \"C\" <d@example.com>")[1] == ("C ", "d@example.com")


_SPACE = b" \t\n\r\f\x0b"


def _reference_tokens(data: bytes) -> list[tuple[tuple[int, int], tuple[bytes | None, ...]]]:
    """HTML::Parser's tokens as ``_html._TOKEN`` gives them (span, groups), read an octet
    at a time: comments to the next ``--``, white space and ``>`` (with none after
    them, to their first ``>``), declarations and processing instructions to ``>``,
    tags as hparser.c's parse_start reads them (a name, then attribute names with
    perhaps ``=`` and a value, a quote opening a string only where a value starts); a
    tag or declaration never finished is the rest of the text."""
    out: list[tuple[tuple[int, int], tuple[bytes | None, ...]]] = []
    n, i = len(data), 0
    while (j := data.find(b"<", i)) >= 0:
        if data.startswith(b"<!--", j) or data.startswith((b"<!", b"<?"), j):
            closed = (re.compile(rb"--\s*>").search(data, j + 4)
                      if data.startswith(b"<!--", j) else None)
            k = data.find(b">", j + 2)
            end = closed.end() if closed is not None else n if k < 0 else k + 1
            out.append(((j, end), (None, None, None)))
            i = end
            continue
        s = j + 1
        slash = data[s:s + 1] == b"/"
        s += slash
        if not (data[s:s + 1].isalpha() and data[s:s + 1].isascii()):
            i = j + 1
            continue
        name_at = s
        while s < n and data[s] not in _SPACE + b"/>":
            s += 1
        name_end = s
        while s < n and data[s] not in _SPACE + b">":  # the rest of hparser.c's name
            s += 1
        done = True
        while s < n and data[s] in _SPACE:
            s += 1
        while done and s < n and data[s] != ord(">"):
            s += 1  # an attribute name's first octet may be anything but space and ">"
            while s < n and data[s] not in _SPACE + b"=>":
                s += 1
            while s < n and data[s] in _SPACE:
                s += 1
            if s < n and data[s] == ord("="):
                s += 1
                while s < n and data[s] in _SPACE:
                    s += 1
                if s < n and data[s] in b"\"'":
                    k = data.find(data[s:s + 1], s + 1)
                    if k < 0:
                        done = False
                    s = k + 1
                else:
                    while s < n and data[s] not in _SPACE + b">":
                        s += 1
                while done and s < n and data[s] in _SPACE:
                    s += 1
        if done and s < n:
            out.append(((j, s + 1), (b"/" if slash else b"", data[name_at:name_end],
                                     data[name_end:s])))
            i = s + 1
        else:
            out.append(((j, n), (None, None, None)))
            i = n
    return out


def test_html_tokens_are_read_as_html_parser_reads_them() -> None:
    from spamwarden.rules import _html, _render

    rnd = random.Random(5)
    samples = [b'<a href="x>y">t</a>', b"<a title='a\">b'>", b'<a x="y>', b'<ab"c>', b"<a'b'c>",
               b'<p x="1" y=\'2\' z=3>', b"<!-- c --><!x><?p?>", b'<a x="y"', b"<b\n a=1\n>",
               b'<font color=#66FF66"> <font size="7">', b'<a = "x>y">', b"<br/>", b"<a<a<a",
               b"x <!y <?z"]
    samples += [bytes(rnd.choice(b"<>ab/ =\"'!-?\n") for _ in range(rnd.randint(0, 40)))
                for _ in range(20000)]
    for data in samples:
        want = _reference_tokens(data)
        assert [(m.span(), m.groups()) for m in _html._tokens(data)] == want, data
        if b"<!--" not in data:  # (the renderer finds a comment's end apart)
            text = data.decode("latin-1")
            assert [(m.span(), tuple(g if g is None else g.encode("latin-1") for g in m.groups()))
                    for m in _render._TOKEN.finditer(text)] == want, data


def test_body_start_is_the_end_of_the_first_blank_line() -> None:
    import re

    rnd = random.Random(11)
    samples = [b"", b"\n\n", b"\r\n\r\n", b"a\r\n\nb", b"a\n\r\nb", b"a\r\r\n\n", b"a\n\r\r\n\n"]
    samples += [bytes(rnd.choice(b"a\r\n") for _ in range(rnd.randint(0, 12))) for _ in range(20000)]
    for raw in samples:
        m = re.search(rb"\r?\n\r?\n", raw)
        assert _prepare.body_start(raw) == (m.end() if m else None), raw


def test_decoded_parts_are_kept_per_message() -> None:
    import pickle

    from spamwarden.mail import parse_message
    from spamwarden.rules import RuleEngine, parse_rule_text, prepare_message

    def html_message(body: str) -> bytes:
        return ("From: a@example.org\r\nTo: b@example.net\r\nSubject: s\r\n"
                "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n"
                f"\r\n{body}\r\n").encode()

    engine = RuleEngine(parse_rule_text(
        "body TAG_CENTER eval:html_tag_exists('center')\n"
        "body LINK_IMAGE eval:html_text_match('anchor', '<img>')\n"), use_hyperscan=False)
    with_tags = html_message("<html><center><a href=3D\"x\"><img src=3Dy></a></center></html>")
    without = html_message("<html><p>plain</p></html>")
    for raw, want in ((with_tags, {"TAG_CENTER", "LINK_IMAGE"}), (without, set()),
                      (with_tags, {"TAG_CENTER", "LINK_IMAGE"})):
        prepared = prepare_message(parse_message(raw), raw)
        assert prepared.part_body(0) == _prepare.decode_part(prepared.parts[0])
        again = pickle.loads(pickle.dumps(prepared))  # as rules.processes sends it
        for msg in (prepared, again):
            assert {h.name for h in engine.check_prepared(msg)} == want


def test_qp_escapes_decoded_without_the_regex_are_the_same() -> None:
    trailing = re.compile(rb"[ \t]+(?=\r?\n)")  # (quadratic on a long run of blanks)

    def plain(data: bytes) -> bytes:
        data = _prepare._QP_SOFT_BREAK.sub(b"", trailing.sub(b"", data))
        data = _prepare._QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), data)
        return data.replace(b"\r\n", b"\n")

    rnd = random.Random(13)
    samples = [b"", b"=", b"==", b"=3D", b"==3d", b"=3", b"=G1", b"a=\r\nb", b"=3D=3D=", b"=e9t=E9"]
    samples += [bytes(rnd.choice(b"=3DdAfg \t\r\n") for _ in range(rnd.randint(0, 30)))
                for _ in range(20000)]
    for data in samples:
        assert _prepare.qp_decode(data) == plain(data), data


def test_space_runs_cut_as_the_plain_pattern_cuts_them() -> None:
    rnd = random.Random(17)
    alphabet = "ab  \t\n\r\x0b\x0c\x85\xa0\u2000\u200a\u3000\u2028"
    samples = ["", " ", "  ", " \t", "\t ", "a b", "a  b", "a\u3000 b"]
    samples += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 20)))
                for _ in range(20000)]
    for text in samples:
        assert _prepare._SPACE_RUN_TO_CUT.sub(" ", text) == _prepare._SPACE_RUN.sub(" ", text)


def test_qp_flags_read_over_whole_parts_are_those_of_the_line_loop() -> None:
    from spamwarden.rules import _mimeeval

    def fast(encoded: bytes) -> tuple[float, float]:
        part = _prepare.MimePart(headers=(("Content-Transfer-Encoding", "quoted-printable"),),
                                 content_type="text/plain", encoding="quoted-printable",
                                 encoded=encoded, is_attachment=False)

        class Msg:
            parts = [part]

        flags = _mimeeval._mime_flags(Msg())  # type: ignore[arg-type]
        return flags["mime_qp_long_line"], flags["mime_qp_count"]

    def plain(encoded: bytes) -> tuple[float, float]:  # MIMEEval's loop, line by line
        long_line, qp_bytes, qp_count = 0.0, 0, 0
        for line in encoded.splitlines(keepends=True):
            if line.startswith(b"SPAM: "):
                continue
            if len(line.rstrip(b"\r\n")) + 1 > 79:
                long_line = 1.0
            qp_bytes += len(line)
            if b"=" in line:
                n = len(_mimeeval._QP_NEEDLESS.findall(line))
                if n:
                    t = _mimeeval._QP_TRAILING.search(line)
                    qp_count += n - (len(t.group(1)) // 3 if t else 0)
        return long_line, float(qp_count) if qp_bytes else 1.0

    rnd = random.Random(19)
    samples = [b"", b"=20\n", b"a=3D=20=09 \r\n", b"x" * 79 + b"\r\n", b"x" * 78 + b"\r",
               b"=20=20\r\r\n=41", b"SPAM: =20\n=3D\n"]
    samples += [bytes(rnd.choice(b"=2039Ax \t\r\n") for _ in range(rnd.randint(0, 120)))
                for _ in range(5000)]
    for data in samples:
        assert fast(data) == plain(data), data


def test_lines_split_as_the_look_behind_splits_them() -> None:
    rnd = random.Random(23)
    samples = [b"", b"\n", b"a", b"a\n", b"\n\na\r\nb", b"a\n\n"]
    samples += [bytes(rnd.choice(b"ab\n\r ") for _ in range(rnd.randint(0, 20)))
                for _ in range(20000)]
    for data in samples:
        assert _prepare._lines(data) == _prepare._LINE_END.split(data), data


def test_plain_uri_shortcut_gives_the_full_canonicalisation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(11)
    uris = [b"http://www.foo", b"http://foo", b"http://www.foo.com", b"http://a.b.c/x?y#z",
            b"https://www.foo/x", b"http://localhost/", b"mailto:a@b.com", b"http://a.b.com/x%41",
            b"http://a.b.com/x/http://c.d.org/", b"mailto:a@b.com?subject=x", b"http://1.2.3.4/"]
    parts = [b"http://", b"https://", b"mailto:", b"www.", b"a", b"b.", b"com", b"/", b"?",
             b"#", b"%41", b"@", b":80", b"&", b".", b"-", b"0x7f", b"1", b" ", b"\\", b"<"]
    uris += [b"".join(rnd.choice(parts) for _ in range(rnd.randint(1, 9))) for _ in range(3000)]
    fast = [_uris._canonical_forms(u, _uris.valid_tlds()) for u in uris]
    monkeypatch.setattr(_uris, "_PLAIN", re.compile(rb"(?!)"))
    assert fast == [_uris._canonical_forms(u, _uris.valid_tlds()) for u in uris]


def test_evals_called_directly_give_what_run_eval_gives() -> None:
    """The engine calls each eval's function itself, looked up once: every eval rule hits
    where ``run_eval`` says it does, image_to_text_ratio (which reads the rule's kind)
    included, on the messages of the eval tests."""
    from pathlib import Path

    from spamwarden.mail import parse_message
    from spamwarden.rules import RuleEngine, parse_rule_text, prepare_message
    from spamwarden.rules._evals import run_eval

    rules = "\n".join((
        "rawbody __DC_IMG_HTML_RATIO eval:image_to_text_ratio('all', '0.000', '0.015')",
        "body __DC_IMG_TEXT_RATIO eval:image_to_text_ratio('all', '0.000', '0.008')",
        "body __ONE_IMG eval:image_count('all',1,1)",
        "body MIMEPART_LIMIT_EXCEEDED eval:check_for_mime('mimepart_limit_exceeded')",
        "header LOCALPART_IN_SUBJECT eval:check_for_to_in_subject('user')",
        "body HTML_MESSAGE eval:html_test('html')",
        "header MISSING_TO eval:check_for_missing_to_header()", ""))
    ruleset = parse_rule_text(rules)
    engine = RuleEngine(ruleset, use_hyperscan=False)
    evals = [r for r in ruleset.rules.values() if r.kind == "eval"]
    assert len(evals) == 7
    data = Path(__file__).parent.parent / "data" / "sarules_evals"
    # a 1000 x 1000 GIF next to HTML of much markup and little text: the rawbody ratio
    # is over 0.015, the body one under it
    gif = base64.b64encode(b"GIF89a" + struct.pack("<HH", 1000, 1000) + bytes(20)).decode()
    html = "<html><body>" + '<div class="x"></div>' * 1000 + "hello there</body></html>"
    made = ("From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/html\r\n\r\n" + html + "\r\n"
            "--b\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + gif + "\r\n--b--\r\n").encode()
    seen = 0
    for raw in [made] + [path.read_bytes() for path in sorted(data.glob("*.eml"))]:
        counts = engine.counts(prepare_message(parse_message(raw), raw))
        msg = prepare_message(parse_message(raw), raw)
        want = {r.name for r in evals
                if run_eval(r.eval_name, msg, ruleset, r.eval_args, kind=r.eval_kind)}
        assert set(counts) & {r.name for r in evals} == want, raw[:200]
        seen += len(want)
        if raw is made:
            assert "__DC_IMG_TEXT_RATIO" in want and "__DC_IMG_HTML_RATIO" not in want
    assert seen > 5
