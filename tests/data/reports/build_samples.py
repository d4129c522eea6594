"""How the sample reports in this folder were made (run once; the .eml files are committed
byte-exact and the tests read those, not this script).

One spam message from ``promo-shop.example`` (DKIM-signed with the test key in
``dkim-private.pem``; its DNS record is ``sel1._domainkey.promo-shop.example`` in
``dkim-sel1.txt``) was delivered to alice@example.vn through mx1.example.vn, then
forwarded to report@example.vn the way each client does it:

* gmail-inline.eml      Gmail web "Forward": multipart/alternative, text part quoted-printable,
                        "---------- Forwarded message ---------" header block, HTML gmail_quote
* gmail-attached.eml    Gmail "Forward as attachment": multipart/mixed + message/rfc822 (.eml)
* outlook-inline.eml    Outlook (Microsoft 365) "Forward": "________________________________"
                        then From/Sent/To/Subject; HTML divRplyFwdMsg
* outlook-attached.eml  Outlook "Forward as attachment": message/rfc822 part, base64 text part
* thunderbird-inline.eml    Thunderbird 115 "Forward Inline": "-------- Forwarded Message --------"
                        with tab-separated header table, HTML moz-forward-container
* thunderbird-attached.eml  Thunderbird "Forward As Attachment": message/rfc822; name="....eml"
* mutt-bounced.eml      mutt "bounce": the original with a Resent-* block and our hops above it
* ham-inline.eml        a newsletter forwarded inline by Gmail to ham@example.vn

Reporter hops (the report's own Received fields) show Postfix with ESMTPSA, i.e. an
authenticated submission, except where a test needs otherwise.
"""

from __future__ import annotations

import base64
import quopri
from pathlib import Path

import dkim

HERE = Path(__file__).resolve().parent
CRLF = b"\r\n"


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def qp(text: str) -> bytes:
    return quopri.encodestring(crlf(text)).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


PLAIN = """\
KHUYẾN MÃI LỚN - giảm 50% tất cả sản phẩm!

Mua ngay: https://promo-shop.example/sale?id=1
Xem thêm: http://click.tracker-net.example/c/abc123

Không muốn nhận thư? Bấm vào đây.
"""

HTML = """\
<html><body><p><b>KHUYẾN MÃI LỚN</b> - giảm 50% tất cả sản phẩm!</p>
<p><a href="https://promo-shop.example/sale?id=1">Mua ngay</a>
<a href="http://click.tracker-net.example/c/abc123">Xem thêm</a></p>
<img src="http://img.cdn-pix.example/p.gif" width="1" height="1">
</body></html>
"""

SUBJECT_RAW = "[QC] =?UTF-8?Q?Khuy=E1=BA=BFn_m=C3=A3i_l=E1=BB=9Bn?="
SUBJECT = "[QC] Khuyến mãi lớn"


def original() -> bytes:
    """The spam as it sits in alice's mailbox (signed by the sender, then delivered)."""
    body = (
        b"--b1_4f2a\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(PLAIN) +
        b"\r\n--b1_4f2a\r\nContent-Type: text/html; charset=UTF-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(HTML) +
        b"\r\n--b1_4f2a--\r\n"
    )
    head = crlf(
        "From: Shop Deals <deals@promo-shop.example>\n"
        "To: alice@example.vn\n"
        f"Subject: {SUBJECT_RAW}\n"
        "Date: Sun, 03 Nov 2024 21:01:07 +0700\n"
        "Message-ID: <20241103140107.4f2a9c@mail.promo-shop.example>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b1_4f2a"\n'
        "List-Unsubscribe: <https://promo-shop.example/unsub?u=alice>\n"
    )
    msg = head + CRLF + body
    key = (HERE / "dkim-private.pem").read_bytes()
    sig = dkim.sign(msg, b"sel1", b"promo-shop.example", key,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id",
                                     b"mime-version", b"content-type"])
    delivered = crlf(
        "Return-Path: <bounce-8812@mailer.promo-shop.example>\n"
        "Delivered-To: alice@example.vn\n"
        "Received: from mx1.example.vn (mx1.example.vn [10.20.0.5])\n"
        "\tby mbox1.example.vn (Postfix) with LMTP id 9Qw2Zc1x\n"
        "\tfor <alice@example.vn>; Sun, 03 Nov 2024 21:01:10 +0700 (+07)\n"
        "Received: from mail.promo-shop.example (mail.promo-shop.example [198.51.100.23])\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n"
        "\t(No client certificate requested)\n"
        "\tby mx1.example.vn (Postfix) with ESMTPS id 4XmQ2c3d4Fz9sT\n"
        "\tfor <alice@example.vn>; Sun, 03 Nov 2024 21:01:09 +0700 (+07)\n"
    )
    return delivered + sig + msg


def submission_hop(qid: str, *, authenticated: bool = True) -> str:
    proto = "ESMTPSA" if authenticated else "ESMTPS"
    auth = "\t(Authenticated sender: alice@example.vn)\n" if authenticated else ""
    return (
        "Received: from [192.168.1.23] (dynamic-203-0-113-77.example.net [203.0.113.77])\n"
        "\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits))\n"
        "\t(No client certificate requested)\n"
        f"{auth}"
        f"\tby mail.example.vn (Postfix) with {proto} id {qid}\n"
        "\tfor <report@example.vn>; Mon, 04 Nov 2024 08:15:02 +0700 (+07)\n"
    )


def gmail_inline(to: str = "report@example.vn", *, plain: str = PLAIN, html: str = HTML,
                 subject: str = SUBJECT, sender: str = "Shop Deals",
                 sender_addr: str = "deals@promo-shop.example") -> bytes:
    fwd_plain = (
        "Spam nè\n\n"
        "---------- Forwarded message ---------\n"
        f"From: {sender} <{sender_addr}>\n"
        "Date: Sun, Nov 3, 2024 at 9:01\u202fPM\n"
        f"Subject: {subject}\n"
        "To: <alice@example.vn>\n\n\n" + plain
    )
    fwd_html = (
        '<div dir="ltr">Spam nè<br><br><div class="gmail_quote"><div dir="ltr" '
        'class="gmail_attr">---------- Forwarded message ---------<br>From: <strong '
        f'class="gmail_sendername" dir="auto">{sender}</strong> <span dir="auto">&lt;<a '
        f'href="mailto:{sender_addr}">{sender_addr}</a>&gt;</span><br>Date: Sun, Nov 3, '
        f"2024 at 9:01\u202fPM<br>Subject: {subject}<br>To: &lt;<a "
        'href="mailto:alice@example.vn">alice@example.vn</a>&gt;<br></div><br><br>'
        + html.replace("<html><body>", "").replace("</body></html>", "") + "</div></div>\n"
    )
    boundary = "000000000000a8f3e50625d1c4b2"
    head = crlf(
        submission_hop("4XmZ8p0q1Bz2wK").replace("[192.168.1.23] (dynamic-203-0-113-77."
                                                 "example.net [203.0.113.77])",
                                                 "mail-sor-f41.google.com (mail-sor-f41.google.com"
                                                 " [209.85.220.41])")
        .replace("(Authenticated sender: alice@example.vn)", "(Authenticated sender: alice)")
        + "MIME-Version: 1.0\n"
        "From: Alice Nguyen <alice@example.vn>\n"
        "Date: Mon, 4 Nov 2024 08:15:01 +0700\n"
        "Message-ID: <CAH2x9v1qkR0bQ=Jf5t7Hx2a+Yc8@mail.gmail.com>\n"
        f"Subject: Fwd: {subject}\n"
        f"To: {to}\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\n'
    )
    enc_subject = "=?UTF-8?Q?" + quopri.encodestring(subject.encode(), header=True).decode() + "?="
    head = head.replace(f"Subject: Fwd: {subject}".encode(), f"Subject: Fwd: {enc_subject}".encode())
    body = (
        f"--{boundary}\r\n".encode() + b'Content-Type: text/plain; charset="UTF-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(fwd_plain) +
        f"\r\n--{boundary}\r\n".encode() + b'Content-Type: text/html; charset="UTF-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(fwd_html) +
        f"\r\n--{boundary}--\r\n".encode()
    )
    return head + CRLF + body


def gmail_attached(orig: bytes) -> bytes:
    boundary = "00000000000071c2a50625d1c5e9"
    inner = "000000000000720a3d0625d1c5e7"
    head = crlf(
        submission_hop("4XmZ9k2r7Lz3wQ")
        + "MIME-Version: 1.0\n"
        "From: Alice Nguyen <alice@example.vn>\n"
        "Date: Mon, 4 Nov 2024 08:16:40 +0700\n"
        "Message-ID: <CAH2x9v3Lw8+ZpT5yq0r=Kc1@mail.gmail.com>\n"
        "Subject: Fwd: =?UTF-8?Q?=5BQC=5D_Khuy=E1=BA=BFn_m=C3=A3i_l=E1=BB=9Bn?=\n"
        "To: report@example.vn\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
    )
    body = crlf(
        f"--{boundary}\n"
        f'Content-Type: multipart/alternative; boundary="{inner}"\n\n'
        f"--{inner}\n"
        'Content-Type: text/plain; charset="UTF-8"\n\n\n\n'
        f"--{inner}\n"
        'Content-Type: text/html; charset="UTF-8"\n\n'
        '<div dir="ltr"><br></div>\n\n'
        f"--{inner}--\n"
        f"--{boundary}\n"
        'Content-Type: message/rfc822; name="[QC] Khuyến mãi lớn.eml"\n'
        'Content-Disposition: attachment; filename="[QC] Khuyến mãi lớn.eml"\n'
        "X-Attachment-Id: 1c2d3e4f5a6b7c8d_0.1\n"
        "Content-ID: <1c2d3e4f5a6b7c8d_0.1>\n\n"
    ) + orig + crlf(f"\n--{boundary}--\n")
    return head + CRLF + body


def outlook_inline() -> bytes:
    boundary = "_000_SEZPR06MB6959C1A2B3D4E5F6A7B8C9D0SEZPR06MB6959apcp_"
    fwd_plain = (
        "B\u00e1o c\u00e1o th\u01b0 r\u00e1c.\n\n"
        "________________________________\n"
        "From: Shop Deals <deals@promo-shop.example>\n"
        "Sent: Sunday, November 3, 2024 9:01 PM\n"
        "To: alice@example.vn <alice@example.vn>\n"
        f"Subject: {SUBJECT}\n\n" + PLAIN
    )
    fwd_html = (
        '<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
        '<style type="text/css" style="display:none;"> P {margin-top:0;margin-bottom:0;} '
        "</style>\n</head>\n<body dir=\"ltr\">\n"
        '<div class="elementToProof">Báo cáo thư rác.</div>\n'
        '<div id="appendonsend"></div>\n<hr style="display:inline-block;width:98%" tabindex="-1">\n'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" '
        'style="font-size:11pt" color="#000000"><b>From:</b> Shop Deals '
        "&lt;deals@promo-shop.example&gt;<br>\n<b>Sent:</b> Sunday, November 3, 2024 9:01 PM<br>\n"
        "<b>To:</b> alice@example.vn &lt;alice@example.vn&gt;<br>\n"
        f"<b>Subject:</b> {SUBJECT}</font>\n<div>&nbsp;</div>\n</div>\n"
        + HTML.replace("<html><body>", "<div>").replace("</body></html>", "</div>")
        + "</body>\n</html>\n"
    )
    head = crlf(
        "Received: from SEZPR06MB6959.apcprd06.prod.outlook.example (2603:1096:101:1a2::9)\n"
        "\tby mail.example.vn (Postfix) with ESMTPSA id 4XmZBq5t2Vz4xR\n"
        "\tfor <report@example.vn>; Mon, 04 Nov 2024 08:20:11 +0700 (+07)\n"
        "From: Alice Nguyen <alice@example.vn>\n"
        "To: \"report@example.vn\" <report@example.vn>\n"
        "Subject: FW: =?utf-8?B?W1FDXSBLaHV54bq/biBtw6NpIGzhu5tu?=\n"
        "Thread-Topic: =?utf-8?B?W1FDXSBLaHV54bq/biBtw6NpIGzhu5tu?=\n"
        "Thread-Index: AQHbLhT7xq2m0c1F3kCkq9n3nq5y0A==\n"
        "Date: Mon, 4 Nov 2024 01:20:10 +0000\n"
        "Message-ID: <SEZPR06MB6959C1A2B3D4E5F6A7B8C9D0@SEZPR06MB6959.apcprd06.prod.outlook.example>\n"
        "Accept-Language: en-US, vi-VN\n"
        "Content-Language: en-US\n"
        "X-MS-Has-Attach:\n"
        "X-MS-TNEF-Correlator:\n"
        f'Content-Type: multipart/alternative;\n\tboundary="{boundary}"\n'
        "MIME-Version: 1.0\n"
    )
    body = (
        f"--{boundary}\r\n".encode() + b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(crlf(fwd_plain)).replace(b"\n", b"\r\n") +
        f"\r\n--{boundary}\r\n".encode() + b'Content-Type: text/html; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(crlf(fwd_html)).replace(b"\n", b"\r\n") +
        f"\r\n--{boundary}--\r\n".encode()
    )
    return head + CRLF + body


def outlook_attached(orig: bytes) -> bytes:
    boundary = "_004_SEZPR06MB69597E1F2A3B4C5D6E7F8091SEZPR06MB6959apcp_"
    inner = "_000_SEZPR06MB69597E1F2A3B4C5D6E7F8091SEZPR06MB6959apcp_"
    head = crlf(
        "Received: from SEZPR06MB6959.apcprd06.prod.outlook.example (2603:1096:101:1a2::9)\n"
        "\tby mail.example.vn (Postfix) with ESMTPSA id 4XmZCw7y3Xz5yS\n"
        "\tfor <report@example.vn>; Mon, 04 Nov 2024 08:22:31 +0700 (+07)\n"
        "From: Alice Nguyen <alice@example.vn>\n"
        "To: \"report@example.vn\" <report@example.vn>\n"
        "Subject: FW: =?utf-8?B?W1FDXSBLaHV54bq/biBtw6NpIGzhu5tu?=\n"
        "Thread-Topic: =?utf-8?B?W1FDXSBLaHV54bq/biBtw6NpIGzhu5tu?=\n"
        "Date: Mon, 4 Nov 2024 01:22:30 +0000\n"
        "Message-ID: <SEZPR06MB69597E1F2A3B4C5D6E7F8091@SEZPR06MB6959.apcprd06.prod.outlook.example>\n"
        "Content-Language: en-US\n"
        "X-MS-Has-Attach: yes\n"
        f'Content-Type: multipart/mixed;\n\tboundary="{boundary}"\n'
        "MIME-Version: 1.0\n"
    )
    body = crlf(
        f"--{boundary}\n"
        f'Content-Type: multipart/alternative;\n\tboundary="{inner}"\n\n'
        f"--{inner}\n"
        'Content-Type: text/plain; charset="us-ascii"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "Spam, see attachment.\n\n"
        f"--{inner}\n"
        'Content-Type: text/html; charset="us-ascii"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "<html><body><div>Spam, see attachment.</div></body></html>\n\n"
        f"--{inner}--\n\n"
        f"--{boundary}\n"
        "Content-Type: message/rfc822\n"
        "Content-Disposition: attachment;\n"
        '\tcreation-date="Mon, 04 Nov 2024 01:22:29 GMT";\n'
        '\tmodification-date="Mon, 04 Nov 2024 01:22:29 GMT"\n\n'
    ) + orig + crlf(f"\n--{boundary}--\n")
    return head + CRLF + body


def thunderbird_inline() -> bytes:
    boundary = "------------mR0c9Xg1Tq2Zb8Ks4Lw7Jp3V"
    fwd_plain = (
        "Spam ạ.\n\n\n"
        "-------- Forwarded Message --------\n"
        f"Subject: \t{SUBJECT}\n"
        "Date: \tSun, 03 Nov 2024 21:01:07 +0700\n"
        "From: \tShop Deals <deals@promo-shop.example>\n"
        "To: \talice@example.vn\n\n\n\n" + PLAIN
    )
    fwd_html = (
        "<!DOCTYPE html>\n<html>\n  <head>\n\n"
        '    <meta http-equiv="content-type" content="text/html; charset=UTF-8">\n'
        "  </head>\n  <body>\n    <p>Spam ạ.</p>\n"
        '    <div class="moz-forward-container"><br>\n      <br>\n'
        "      -------- Forwarded Message --------\n"
        '      <table class="moz-email-headers-table" cellspacing="0" cellpadding="0" border="0">\n'
        "        <tbody>\n"
        '          <tr>\n            <th valign="BASELINE" nowrap="nowrap" align="RIGHT">Subject:\n'
        f"            </th>\n            <td>{SUBJECT}</td>\n          </tr>\n"
        '          <tr>\n            <th valign="BASELINE" nowrap="nowrap" align="RIGHT">From: </th>\n'
        "            <td>Shop Deals &lt;deals@promo-shop.example&gt;</td>\n          </tr>\n"
        "        </tbody>\n      </table>\n      <br>\n      <br>\n"
        + HTML.replace("<html><body>", "").replace("</body></html>", "")
        + "    </div>\n  </body>\n</html>\n"
    )
    head = crlf(
        submission_hop("4XmZFh1k9Nz6zT").replace("[192.168.1.23]", "[IPv6:2001:db8:5::17]")
        + "Content-Type: multipart/alternative;\n"
        f' boundary="{boundary}"\n'
        "Message-ID: <8d1f0c2e-7a43-4b9e-9f6d-2c1b0a3e5d77@example.vn>\n"
        "Date: Mon, 4 Nov 2024 08:25:44 +0700\n"
        "MIME-Version: 1.0\n"
        "User-Agent: Mozilla Thunderbird\n"
        "Content-Language: vi\n"
        "To: report@example.vn\n"
        "From: Alice Nguyen <alice@example.vn>\n"
        "Subject: =?UTF-8?Q?Fwd=3A_=5BQC=5D_Khuy=E1=BA=BFn_m=C3=A3i_l=E1=BB=9Bn?=\n"
        "X-Forwarded-Message-Id: <20241103140107.4f2a9c@mail.promo-shop.example>\n"
    )
    body = crlf(
        "This is a multi-part message in MIME format.\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
        "Content-Transfer-Encoding: 8bit\n\n" + fwd_plain + "\n"
        f"--{boundary}\n"
        "Content-Type: text/html; charset=UTF-8\n"
        "Content-Transfer-Encoding: 8bit\n\n" + fwd_html + "\n"
        f"--{boundary}--\n"
    )
    return head + CRLF + body


def thunderbird_attached(orig: bytes) -> bytes:
    boundary = "------------Wq7Hn2Ks0Pz4Xb9Lc6Rt1Mv8"
    head = crlf(
        submission_hop("4XmZHj3m1Qz7aU")
        + "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\n"
        "Message-ID: <b3c9e5a1-2f70-4d8c-a1e6-7f0d9b2c4e81@example.vn>\n"
        "Date: Mon, 4 Nov 2024 08:27:02 +0700\n"
        "MIME-Version: 1.0\n"
        "User-Agent: Mozilla Thunderbird\n"
        "Content-Language: vi\n"
        "To: report@example.vn\n"
        "From: Alice Nguyen <alice@example.vn>\n"
        "Subject: =?UTF-8?Q?Fwd=3A_=5BQC=5D_Khuy=E1=BA=BFn_m=C3=A3i_l=E1=BB=9Bn?=\n"
    )
    body = crlf(
        "This is a multi-part message in MIME format.\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
        "Content-Transfer-Encoding: 7bit\n\n\n"
        f"--{boundary}\n"
        'Content-Type: message/rfc822; charset=UTF-8;\n name="=?UTF-8?Q?=5BQC=5D_Khuy=E1=BA=BFn_m=C3=A3i_l=E1=BB=9Bn=2Eeml?="\n'
        "Content-Disposition: attachment;\n"
        ' filename*0*=UTF-8\'\'%5B%51%43%5D%20%4B%68%75%79%E1%BA%BF%6E%20%6D%C3%A3%69;\n'
        ' filename*1*=%20%6C%E1%BB%9B%6E%2E%65%6D%6C\n\n'
    ) + orig + crlf(f"\n--{boundary}--\n")
    return head + CRLF + body


def mutt_bounced(orig: bytes) -> bytes:
    resent = crlf(
        submission_hop("4XmZJk5n2Rz8bV")
        + "Resent-From: Alice Nguyen <alice@example.vn>\n"
        "Resent-Date: Mon, 4 Nov 2024 08:30:00 +0700\n"
        "Resent-Message-ID: <Zyf3cXbQkT2m9Lp1@example.vn>\n"
        "Resent-To: report@example.vn\n"
    )
    return resent + orig


def ham_inline() -> bytes:
    plain = ("Bản tin tuần này: lịch nghỉ lễ và hướng dẫn đổi mật khẩu.\n\n"
             "Chi tiết: https://news.university.example/tuan-45\n")
    html = ('<html><body><p>Bản tin tuần này: lịch nghỉ lễ.</p>'
            '<a href="https://news.university.example/tuan-45">Chi tiết</a></body></html>')
    return gmail_inline("ham@example.vn", plain=plain, html=html,
                        subject="Bản tin tuần 45", sender="Phòng Đào tạo",
                        sender_addr="daotao@news.university.example")


def main() -> None:
    orig = original()
    (HERE / "original-signed.eml").write_bytes(orig)
    (HERE / "gmail-inline.eml").write_bytes(gmail_inline())
    (HERE / "gmail-attached.eml").write_bytes(gmail_attached(orig))
    (HERE / "outlook-inline.eml").write_bytes(outlook_inline())
    (HERE / "outlook-attached.eml").write_bytes(outlook_attached(orig))
    (HERE / "thunderbird-inline.eml").write_bytes(thunderbird_inline())
    (HERE / "thunderbird-attached.eml").write_bytes(thunderbird_attached(orig))
    (HERE / "mutt-bounced.eml").write_bytes(mutt_bounced(orig))
    (HERE / "ham-inline.eml").write_bytes(ham_inline())


if __name__ == "__main__":
    main()
