"""Intake replies in i18n.language = "vi": a real aiosmtpd server, a real Redis, smtplib.

The codes and enhanced status codes are the English ones; the text is Vietnamese without
diacritics, and every byte on the wire is ASCII."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any, cast

import pytest

from spamwarden.consent.optout import OptoutHandler
from spamwarden.reputation.intake import REPLY_CODES
from tests.integration import test_intake as _base
from tests.integration.test_intake import REPORTS, RunningIntake, _smtp_lines
from tests.support.replies import REPORTER_REFUSED

start_intake = _base.start_intake  # the fixture, shared with test_intake.py

pytestmark = pytest.mark.integration


def _exchange(intake: RunningIntake, raw: bytes, *, sender: str,
              rcpts: tuple[str, ...]) -> list[tuple[int, bytes]]:
    """Every reply of one SMTP transaction, as bytes off the wire."""
    out: list[tuple[int, bytes]] = []
    with intake.client() as s:
        s.ehlo("client.example.vn")
        out.append(s.mail(sender))
        for r in rcpts:
            out.append(s.rcpt(r))
        if any(code == 250 for code, _ in out[1:]):
            out.append(s.data(_smtp_lines(raw)))
    return out


def test_report_replies_in_vietnamese(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake(language="vi")
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    replies = _exchange(intake, raw, sender="alice@example.vn",
                        rcpts=("report@example.vn", "nobody@example.vn"))
    assert all(text.isascii() for _, text in replies), replies
    _, rcpt_ok, unknown, data = replies
    assert rcpt_ok == (250, b"2.1.5 Dia chi nhan hop le")
    assert unknown == (550, b"5.1.1 <nobody@example.vn>: khong co dia chi nhan bao cao nay "
                            b"tai day")
    [c] = intake.complaints()
    assert data == (250, f"2.0.0 Da nhan bao cao, ma {c.id}".encode())
    # the same report again: counted once, said in Vietnamese
    again = _exchange(intake, raw, sender="alice@example.vn", rcpts=("report@example.vn",))
    assert again[-1] == (250, f"2.0.0 Bao cao nay da duoc nhan truoc do voi ma {c.id}; "
                              "chi duoc tinh mot lan".encode())


def test_refusals_in_vietnamese_keep_their_codes(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(language="vi", require_auth=True)
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    unauthenticated = raw.replace(b"with ESMTPSA", b"with ESMTPS").replace(
        b"\t(Authenticated sender: alice@example.vn)\r\n", b"")
    code, text = intake.send(unauthenticated)
    assert REPORTER_REFUSED.matches(code, text) and REPLY_CODES["auth_required"] == "550 5.7.1"
    assert text == ("5.7.1 Chi nhan bao cao tu nguoi dung da dang nhap vao he thong thu nay: "
                    "vui long gui lai tu chuong trinh thu cua ban co xac thuc SMTP (dang nhap) "
                    "hoac tu webmail")
    # a reporter outside intake.local_domains is refused at RCPT
    with intake.client() as s:
        s.ehlo("client.example.vn")
        s.mail("mallory@elsewhere.example")
        code, reply = s.rcpt("report@example.vn")
    assert (code, reply) == (550, b"5.7.1 Chi nhan bao cao tu cac dia chi thuoc example.vn, "
                                  b"example.com, example.net, example.jp; "
                                  b"<mallory@elsewhere.example> khong thuoc cac ten mien nay")
    assert intake.complaints() == []


def test_optout_reply_in_vietnamese(start_intake: Callable[..., RunningIntake]) -> None:
    # a sender outside the local domains is answered before the registry is asked
    hook = OptoutHandler(cast(Any, None), cast(Any, None), local_domains=("example.vn",),
                         language="vi")
    intake = start_intake(language="vi", hooks={"optout": hook})
    replies = _exchange(intake, b"Subject: ALL\r\n\r\nALL\r\n",
                        sender="someone@elsewhere.example", rcpts=("optout@example.vn",))
    assert replies[-1] == (550, b"5.7.1 Chi nguoi nhan thuoc he thong thu nay moi co the "
                                b"tu choi quang cao tai day")


def test_sessions_over_the_limit_get_421_in_vietnamese(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(language="vi", max_sessions=1)
    first = intake.client()
    try:
        first.ehlo("a")
        with pytest.raises(smtplib.SMTPConnectError) as err:
            intake.client()
        assert err.value.smtp_code == 421
        assert err.value.smtp_error == (b"4.3.2 Qua nhieu phien ket noi cung luc; "
                                        b"vui long thu lai sau")
    finally:
        first.quit()


# -- aiosmtpd's own protocol replies ---------------------------------------------------------


def test_protocol_errors_in_vietnamese_keep_their_codes(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(language="vi", max_message_bytes=50_000)
    big = (REPORTS / "gmail-attached.eml").read_bytes() + (b"x" * 70 + b"\r\n") * 2000
    with intake.client() as s:
        s.ehlo("client.example.vn")
        # out of sequence: DATA and RCPT before MAIL
        assert s.docmd("DATA") == (503, b"Loi: vui long gui lenh RCPT truoc")
        assert s.docmd("RCPT", "TO:<report@example.vn>") == (503, b"Loi: vui long gui lenh MAIL "
                                                                  b"truoc")
        assert s.docmd("FROB") == (500, b'Loi: khong nhan dang duoc lenh "FROB"')
        assert s.docmd("MAIL", "TO:<alice@example.vn>") == (
            501, b"Sai cu phap; cu phap dung: MAIL FROM: <address> [SP <mail-parameters>]")
        # oversized DATA without SIZE=: drained, then 552 at the end
        assert s.mail("alice@example.vn") == (250, b"Thanh cong")
        assert s.docmd("MAIL", "FROM:<alice@example.vn>") == (503, b"Loi: phien gui nay da "
                                                                   b"co lenh MAIL")
        assert s.rcpt("report@example.vn") == (250, b"2.1.5 Dia chi nhan hop le")
        assert s.data(big) == (552, b"Loi: thu vuot qua kich thuoc toi da cho phep")
        assert s.noop() == (250, b"Thanh cong")  # the session goes on
        # with SIZE= (smtplib adds it) the refusal comes at MAIL
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            s.sendmail("alice@example.vn", ["report@example.vn"], big)
        assert (err.value.smtp_code, err.value.smtp_error) == (
            552, b"Loi: kich thuoc thu vuot qua gioi han toi da cho phep")
        # the greeting and the EHLO keywords are names, not texts: unchanged
        code, ehlo = s.ehlo("client.example.vn")
        assert code == 250 and ehlo.split(b"\n")[1:] == [
            b"SIZE 50000", b"8BITMIME", b"SMTPUTF8", b"HELP"]
        assert s.docmd("QUIT") == (221, b"Tam biet")
        s.close()
    assert intake.complaints() == []


def test_english_protocol_errors_are_aiosmtpd_s(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(language="en")
    with intake.client() as s:
        s.ehlo("client.example.vn")
        assert s.docmd("DATA") == (503, b"Error: need RCPT command")
        assert s.mail("alice@example.vn") == (250, b"OK")


def test_lmtp_protocol_errors_in_vietnamese(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake(language="vi", lmtp=True)
    with smtplib.LMTP("127.0.0.1", intake.port, timeout=30) as s:
        assert s.docmd("HELO", "client.example.vn") == (500, b'Loi: khong nhan dang duoc lenh '
                                                             b'"HELO"')
        assert s.docmd("MAIL", "FROM:<alice@example.vn>") == (503, b"Loi: vui long gui lenh "
                                                                   b"HELO truoc")
        assert s.ehlo("client.example.vn")[0] == 250
        assert s.docmd("DATA") == (503, b"Loi: vui long gui lenh RCPT truoc")
