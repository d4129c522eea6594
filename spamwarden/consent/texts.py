"""Recipient- and sender-facing texts of the consent rules, in English and
Vietnamese (``consent.language``).

SMTP reply texts are plain ASCII: an SMTP reply line cannot carry UTF-8 unless
the client negotiated SMTPUTF8 (RFC 6531), so the Vietnamese ones are written
without diacritics. Pages and the refusal confirmation are UTF-8.

Every template is ``str.format`` text; :func:`text` fills it and
:func:`page` wraps it in a small HTML page with every value escaped.
"""

from __future__ import annotations

import html
from typing import Literal

from ..i18n import fold_ascii

__all__ = ["Language", "TEXTS", "text", "smtp_text", "page", "LANGUAGES"]

Language = Literal["en", "vi"]
LANGUAGES: tuple[str, ...] = ("en", "vi")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        # SMTP replies (ASCII) -------------------------------------------------------------
        "smtp.refused": (
            "{rcpt} refused advertising from {advertiser} (Decree 91/2020/ND-CP); "
            "check: {check_url}"
        ),
        "smtp.refused_all": (
            "{rcpt} refuses all advertising email (Decree 91/2020/ND-CP); check: {check_url}"
        ),
        "smtp.no_consent": (
            "no prior consent of {rcpt} to advertising from {advertiser} on record "
            "(Decree 91/2020/ND-CP); check: {check_url}"
        ),
        "smtp.consent_expired": (
            "the consent of {rcpt} to advertising from {advertiser} has expired "
            "(Decree 91/2020/ND-CP); check: {check_url}"
        ),
        "smtp.over_cap": (
            "{advertiser} already sent {sent} ads to {rcpt} in 24 hours, the limit is {cap} "
            "(Decree 91/2020/ND-CP); check: {check_url}"
        ),
        "smtp.registry_error": "advertising consent cannot be checked now, try again later",
        "smtp.unusable_address": (
            "{rcpt}: no consent to advertising from {advertiser} can be on record for an "
            "address written this way (Decree 91/2020/ND-CP); send to the plain address"
        ),
        # symbol details (headers and reject texts; ASCII) ---------------------------------
        "sym.AD_LABELLED": "subject carries the advertising label [{label}]",
        "sym.AD_UNLABELLED": (
            "advertising from {advertiser} without the label [{labels}] at the start of "
            "the subject (Decree 91/2020/ND-CP)"
        ),
        "sym.AD_NO_UNSUBSCRIBE": (
            "advertising without a working refusal function: no RFC 8058 one-click "
            "List-Unsubscribe (Decree 91/2020/ND-CP)"
        ),
        "sym.AD_UNSIGNED_UNSUBSCRIBE": (
            "List-Unsubscribe and List-Unsubscribe-Post are not covered by a valid DKIM "
            "signature (RFC 8058 section 4)"
        ),
        "sym.AD_NO_CONSENT": (
            "advertising without the prior consent of {count} recipient(s) "
            "(Decree 91/2020/ND-CP)"
        ),
        "sym.AD_REFUSED": (
            "advertising to {count} recipient(s) who refused it (Decree 91/2020/ND-CP)"
        ),
        "sym.AD_OVER_CAP": (
            "more than {cap} ads in 24 hours to {count} recipient(s) (Decree 91/2020/ND-CP)"
        ),
        "sym.AD_UNKNOWN_ADVERTISER": (
            "labelled advertising not authenticated as any registered advertiser"
        ),
        "sym.AD_REGISTRY_FAIL": "consent registry unreachable: consent not checked",
        "sym.AD_UNVERIFIED_HELD": (
            "advertising in the name of {advertiser}, not authenticated as it (no SPF pass "
            "for the envelope sender, no aligned DKIM), to recipients it may not reach "
            "({reasons}): held, not refused, so the sender does not learn their choice"
        ),
        # pages (UTF-8) --------------------------------------------------------------------
        "page.confirm.title": "Unsubscribe",
        "page.confirm.body": (
            "Stop advertising email from {advertiser} to {rcpt}?"
        ),
        "page.confirm.button": "Unsubscribe",
        "page.confirm.all": "Stop all advertising email to {rcpt}",
        "page.done.title": "Unsubscribed",
        "page.done.body": (
            "{advertiser} may no longer send advertising email to {rcpt}. "
            "Recorded on {when} (UTC)."
        ),
        "page.done_all.body": (
            "No advertiser may send advertising email to {rcpt} any more. "
            "Recorded on {when} (UTC)."
        ),
        "page.invalid.title": "Link not valid",
        "page.invalid.body": (
            "This unsubscribe link is not valid. Use the link in the email you received."
        ),
        "page.all_mailed.body": (
            "{advertiser} may no longer send advertising email to {rcpt}. To refuse all "
            "advertising email, follow the link in the message we have sent to {rcpt}: only "
            "the owner of that mailbox can refuse all advertising for it."
        ),
        "page.all_not_local.body": (
            "{advertiser} may no longer send advertising email to {rcpt}. {rcpt} is not an "
            "address of this site, so no request to refuse all advertising is mailed to it."
        ),
        "page.all_by_mail.body": (
            "{advertiser} may no longer send advertising email to {rcpt}. To refuse all "
            "advertising email, send a message with the word ALL from {rcpt} to {optout}."
        ),
        "page.confirm_all.title": "Refuse all advertising",
        "page.confirm_all.body": "Stop all advertising email to {rcpt}?",
        "page.confirm_all.button": "Refuse all advertising",
        "request_all.subject": "Confirm: refuse all advertising email to {rcpt}",
        "request_all.body": (
            "Someone asked, from an unsubscribe link, to stop all advertising email to "
            "{rcpt}.\n\nTo confirm, open this link and press the button:\n\n{url}\n\n"
            "If it was not you, ignore this message: nothing changes.\n"
        ),
        "page.lookup.title": "Your advertising consents",
        "page.lookup.link": "See every consent and refusal recorded for {rcpt}",
        "page.lookup.consents": "Consents",
        "page.lookup.refusals": "Refusals",
        # the single confirmation of a refusal (no ad content) ------------------------------
        "confirm.subject": "Refusal recorded: advertising from {advertiser}",
        "confirm.body": (
            "Your refusal of advertising email from {advertiser} to {rcpt} was recorded on "
            "{when} (UTC) via {channel}.\n"
            "It takes effect immediately. This is the only message about it you will "
            "receive.\n"
        ),
        "confirm.subject_all": "Refusal recorded: all advertising",
        "confirm.body_all": (
            "Your refusal of all advertising email to {rcpt} was recorded on {when} (UTC) "
            "via {channel}.\n"
            "It takes effect immediately. This is the only message about it you will "
            "receive.\n"
        ),
    },
    "vi": {
        "smtp.refused": (
            "{rcpt} da tu choi quang cao tu {advertiser} (Nghi dinh 91/2020/ND-CP); "
            "kiem tra: {check_url}"
        ),
        "smtp.refused_all": (
            "{rcpt} tu choi moi thu dien tu quang cao (Nghi dinh 91/2020/ND-CP); "
            "kiem tra: {check_url}"
        ),
        "smtp.no_consent": (
            "khong co su dong y truoc cua {rcpt} nhan quang cao tu {advertiser} "
            "(Nghi dinh 91/2020/ND-CP); kiem tra: {check_url}"
        ),
        "smtp.consent_expired": (
            "su dong y cua {rcpt} nhan quang cao tu {advertiser} da het han "
            "(Nghi dinh 91/2020/ND-CP); kiem tra: {check_url}"
        ),
        "smtp.over_cap": (
            "{advertiser} da gui {sent} thu quang cao den {rcpt} trong 24 gio, gioi han la "
            "{cap} (Nghi dinh 91/2020/ND-CP); kiem tra: {check_url}"
        ),
        "smtp.registry_error": "tam thoi khong kiem tra duoc su dong y, vui long thu lai sau",
        "smtp.unusable_address": (
            "{rcpt}: khong the co su dong y nhan quang cao tu {advertiser} cho dia chi viet "
            "theo cach nay (Nghi dinh 91/2020/ND-CP); hay gui den dia chi thong thuong"
        ),
        "sym.AD_LABELLED": "tieu de co nhan quang cao [{label}]",
        "sym.AD_UNLABELLED": (
            "quang cao tu {advertiser} khong co nhan [{labels}] o dau tieu de "
            "(Nghi dinh 91/2020/ND-CP)"
        ),
        "sym.AD_NO_UNSUBSCRIBE": (
            "quang cao khong co chuc nang tu choi: thieu List-Unsubscribe mot cham "
            "theo RFC 8058 (Nghi dinh 91/2020/ND-CP)"
        ),
        "sym.AD_UNSIGNED_UNSUBSCRIBE": (
            "List-Unsubscribe va List-Unsubscribe-Post khong duoc chu ky DKIM hop le bao ve "
            "(RFC 8058 muc 4)"
        ),
        "sym.AD_NO_CONSENT": (
            "quang cao khong co su dong y truoc cua {count} nguoi nhan "
            "(Nghi dinh 91/2020/ND-CP)"
        ),
        "sym.AD_REFUSED": (
            "quang cao gui den {count} nguoi nhan da tu choi (Nghi dinh 91/2020/ND-CP)"
        ),
        "sym.AD_OVER_CAP": (
            "qua {cap} thu quang cao trong 24 gio den {count} nguoi nhan "
            "(Nghi dinh 91/2020/ND-CP)"
        ),
        "sym.AD_UNKNOWN_ADVERTISER": (
            "thu co nhan quang cao nhung khong xac thuc la cua nha quang cao da dang ky"
        ),
        "sym.AD_REGISTRY_FAIL": "khong truy cap duoc so dang ky: chua kiem tra su dong y",
        "sym.AD_UNVERIFIED_HELD": (
            "quang cao mang ten {advertiser} nhung khong xac thuc la cua ho (SPF cua nguoi "
            "gui khong dat, khong co DKIM phu hop), gui den nguoi nhan khong cho phep "
            "({reasons}): bi giu lai, khong tu choi, de nguoi gui khong biet lua chon cua "
            "nguoi nhan"
        ),
        "page.confirm.title": "Hủy đăng ký",
        "page.confirm.body": "Ngừng nhận thư điện tử quảng cáo từ {advertiser} gửi đến {rcpt}?",
        "page.confirm.button": "Hủy đăng ký",
        "page.confirm.all": "Từ chối mọi thư điện tử quảng cáo gửi đến {rcpt}",
        "page.done.title": "Đã hủy đăng ký",
        "page.done.body": (
            "{advertiser} không được gửi thư điện tử quảng cáo đến {rcpt} nữa. "
            "Ghi nhận lúc {when} (UTC)."
        ),
        "page.done_all.body": (
            "Không nhà quảng cáo nào được gửi thư điện tử quảng cáo đến {rcpt} nữa. "
            "Ghi nhận lúc {when} (UTC)."
        ),
        "page.invalid.title": "Liên kết không hợp lệ",
        "page.invalid.body": (
            "Liên kết hủy đăng ký này không hợp lệ. Hãy dùng liên kết trong thư bạn đã nhận."
        ),
        "page.all_mailed.body": (
            "{advertiser} không được gửi thư điện tử quảng cáo đến {rcpt} nữa. Để từ chối "
            "mọi thư điện tử quảng cáo, hãy mở liên kết trong thư chúng tôi đã gửi đến "
            "{rcpt}: chỉ chủ hộp thư đó mới có thể từ chối mọi quảng cáo cho hộp thư này."
        ),
        "page.all_not_local.body": (
            "{advertiser} không được gửi thư điện tử quảng cáo đến {rcpt} nữa. {rcpt} không "
            "phải là địa chỉ của hệ thống này, nên không có thư yêu cầu từ chối mọi quảng cáo "
            "nào được gửi đến địa chỉ này."
        ),
        "page.all_by_mail.body": (
            "{advertiser} không được gửi thư điện tử quảng cáo đến {rcpt} nữa. Để từ chối "
            "mọi thư điện tử quảng cáo, hãy gửi thư có chữ ALL từ {rcpt} đến {optout}."
        ),
        "page.confirm_all.title": "Từ chối mọi quảng cáo",
        "page.confirm_all.body": "Ngừng nhận mọi thư điện tử quảng cáo gửi đến {rcpt}?",
        "page.confirm_all.button": "Từ chối mọi quảng cáo",
        "request_all.subject": "Xác nhận: từ chối mọi thư điện tử quảng cáo gửi đến {rcpt}",
        "request_all.body": (
            "Có người đã yêu cầu, từ một liên kết hủy đăng ký, ngừng mọi thư điện tử quảng "
            "cáo gửi đến {rcpt}.\n\nĐể xác nhận, hãy mở liên kết này và bấm nút:\n\n{url}\n\n"
            "Nếu không phải bạn, hãy bỏ qua thư này: không có gì thay đổi.\n"
        ),
        "page.lookup.title": "Các sự đồng ý nhận quảng cáo của bạn",
        "page.lookup.link": "Xem mọi sự đồng ý và từ chối đã ghi nhận cho {rcpt}",
        "page.lookup.consents": "Đã đồng ý",
        "page.lookup.refusals": "Đã từ chối",
        "confirm.subject": "Đã ghi nhận từ chối quảng cáo từ {advertiser}",
        "confirm.body": (
            "Yêu cầu từ chối thư điện tử quảng cáo từ {advertiser} gửi đến {rcpt} đã được "
            "ghi nhận lúc {when} (UTC) qua {channel}.\n"
            "Yêu cầu có hiệu lực ngay. Đây là thư duy nhất về việc này.\n"
        ),
        "confirm.subject_all": "Đã ghi nhận từ chối mọi quảng cáo",
        "confirm.body_all": (
            "Yêu cầu từ chối mọi thư điện tử quảng cáo gửi đến {rcpt} đã được ghi nhận lúc "
            "{when} (UTC) qua {channel}.\n"
            "Yêu cầu có hiệu lực ngay. Đây là thư duy nhất về việc này.\n"
        ),
    },
}


def text(language: str, key: str, **values: object) -> str:
    """The text ``key`` in ``language`` (English when the language or key is
    missing), filled with ``values``.

    :raises KeyError: no such text in English either.
    """
    table = TEXTS.get(language, TEXTS["en"])
    template = table.get(key) or TEXTS["en"][key]
    return template.format(**values)


def smtp_text(language: str, key: str, **values: object) -> str:
    """Like :func:`text` but safe for an SMTP reply line (RFC 5321 §4.2): ASCII,
    one line (:func:`spamwarden.i18n.fold_ascii`: diacritics dropped, anything else
    outside printable ASCII becomes ``?``, whitespace runs become one space)."""
    return fold_ascii(text(language, key, **values))


def page(language: str, title_key: str, body: str, *, extra_html: str = "") -> str:
    """A small self-contained UTF-8 HTML page. ``body`` is escaped; ``extra_html``
    is inserted as is (the caller escapes its values)."""
    title = html.escape(text(language, title_key))
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{html.escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>\n"
        f"<body><h1>{title}</h1>\n<p>{html.escape(body)}</p>\n{extra_html}</body></html>\n"
    )
