"""Texts of the public lookup pages (``/lookup/``), in English and Vietnamese.

Like :mod:`spamwarden.consent.texts`: every template is ``str.format`` text, filled by
:func:`text` (English when a language or key is missing). The page language is the
visitor's (``Accept-Language``, RFC 9110 §12.5.4; ``?lang=`` overrides), chosen by
:func:`negotiate`. The values filled in are plain text: the page builder
(:mod:`spamwarden.api.lookup`) escapes the result, never the template's caller.
"""

from __future__ import annotations

from .. import i18n
from ..i18n import LANGUAGES, Language

__all__ = ["LANGUAGES", "REASON_TEXTS", "TEXTS", "Language", "negotiate", "reason_text", "text"]


TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title.form": "Blocklist lookup",
        "title.listed": "{key} is listed",
        "title.not_listed": "{key} is not listed",
        "title.bad_key": "Not something we list",
        "title.request": "Delisting request",
        "title.rate": "Too many requests",
        "title.not_found": "No such request",
        "form.intro": "Enter an IP address, a network, a domain or a mail address to see "
                      "whether it is on this blocklist, why, and how to get it removed.",
        "form.key": "IP address, network, domain or mail address",
        "form.button": "Look up",
        "bad_key": "{key} is not an IP address, a network, a domain or a mail address.",
        "not_listed": "{key} is not on this blocklist. If your mail was refused, the "
                      "reason is in the refusal text; ask the recipient's postmaster.",
        "covered": "It is listed through the listing of {listed}.",
        "reason": "Why",
        "since": "Listed since",
        "until": "Listed until",
        "until_note": "The listing ends by itself at this time unless it is removed earlier.",
        "before": "Times listed before",
        "note": "Note",
        "delist.title": "Ask for removal",
        "delist.intro": "First stop the mail that caused the listing (for complaints: find "
                        "and fix the compromised account, the bought address list or the "
                        "missing unsubscribe link). Then tell us what you fixed; an operator "
                        "reviews every request.",
        "delist.reason": "What did you fix?",
        "delist.contact": "Your mail address (optional, for questions)",
        "delist.button": "Ask for removal",
        "delist.missing": "Please say what you fixed.",
        "delist.too_long": "{field} is longer than {limit} characters.",
        "rate": "Too many requests came from your address; try again in an hour.",
        "queue_full": "Too many delisting requests are waiting for an operator; try again "
                      "later.",
        "key_queue_full": "Requests to delist {key} are already waiting for an operator; "
                          "yours would add nothing. Try again once they are decided.",
        "key_request_pending": "Your request to delist {key} is already waiting for an "
                               "operator; you can file another once it is decided.",
        "request.key": "Listed key",
        "request.filed": "Filed",
        "request.status": "State",
        "request.decided": "Decided",
        "request.keep": "Keep the address of this page: it is the only way to see the state "
                        "of your request.",
        "status.pending": "pending: waiting for an operator",
        "status.approved": "approved: the listing was removed",
        "status.rejected": "rejected: the listing stays",
        "not_found": "There is no delisting request with this address.",
        "another": "Look up another key",
    },
    "vi": {
        "title.form": "Tra cứu danh sách chặn",
        "title.listed": "{key} đang bị liệt kê",
        "title.not_listed": "{key} không bị liệt kê",
        "title.bad_key": "Không phải mục có thể liệt kê",
        "title.request": "Yêu cầu gỡ khỏi danh sách",
        "title.rate": "Quá nhiều yêu cầu",
        "title.not_found": "Không có yêu cầu này",
        "form.intro": "Nhập địa chỉ IP, dải mạng, tên miền hoặc địa chỉ thư để xem mục đó có "
                      "nằm trong danh sách chặn này không, vì sao, và cách gỡ bỏ.",
        "form.key": "Địa chỉ IP, dải mạng, tên miền hoặc địa chỉ thư",
        "form.button": "Tra cứu",
        "bad_key": "{key} không phải địa chỉ IP, dải mạng, tên miền hay địa chỉ thư.",
        "not_listed": "{key} không nằm trong danh sách chặn này. Nếu thư của bạn bị từ chối, "
                      "lý do nằm trong thông báo từ chối; hãy hỏi quản trị thư của người nhận.",
        "covered": "Mục này bị liệt kê theo mục {listed}.",
        "reason": "Lý do",
        "since": "Bị liệt kê từ",
        "until": "Bị liệt kê đến",
        "until_note": "Việc liệt kê tự hết hạn vào thời điểm này nếu không được gỡ sớm hơn.",
        "before": "Số lần bị liệt kê trước đây",
        "note": "Ghi chú",
        "delist.title": "Yêu cầu gỡ bỏ",
        "delist.intro": "Trước hết hãy chấm dứt loại thư đã gây ra việc liệt kê (với khiếu nại: "
                        "tìm và xử lý tài khoản bị chiếm, danh sách địa chỉ mua về hoặc liên kết "
                        "hủy đăng ký bị thiếu). Sau đó cho chúng tôi biết bạn đã khắc phục gì; "
                        "mọi yêu cầu đều được người vận hành xem xét.",
        "delist.reason": "Bạn đã khắc phục điều gì?",
        "delist.contact": "Địa chỉ thư của bạn (không bắt buộc, để liên hệ)",
        "delist.button": "Gửi yêu cầu gỡ bỏ",
        "delist.missing": "Vui lòng cho biết bạn đã khắc phục điều gì.",
        "delist.too_long": "{field} dài hơn {limit} ký tự.",
        "rate": "Có quá nhiều yêu cầu từ địa chỉ của bạn; vui lòng thử lại sau một giờ.",
        "queue_full": "Có quá nhiều yêu cầu gỡ khỏi danh sách đang chờ người vận hành; vui "
                      "lòng thử lại sau.",
        "key_queue_full": "Đã có các yêu cầu gỡ {key} đang chờ người vận hành; yêu cầu của bạn "
                          "không thêm được gì. Vui lòng thử lại khi các yêu cầu đó đã được "
                          "quyết định.",
        "key_request_pending": "Yêu cầu gỡ {key} của bạn đang chờ người vận hành; bạn có "
                               "thể gửi yêu cầu khác khi yêu cầu này đã được quyết định.",
        "request.key": "Mục bị liệt kê",
        "request.filed": "Gửi lúc",
        "request.status": "Trạng thái",
        "request.decided": "Quyết định lúc",
        "request.keep": "Hãy lưu địa chỉ của trang này: đây là cách duy nhất để xem trạng thái "
                        "yêu cầu của bạn.",
        "status.pending": "đang chờ: người vận hành chưa xem xét",
        "status.approved": "đã chấp nhận: mục đã được gỡ khỏi danh sách",
        "status.rejected": "bị từ chối: mục vẫn nằm trong danh sách",
        "not_found": "Không có yêu cầu gỡ bỏ nào ở địa chỉ này.",
        "another": "Tra cứu mục khác",
    },
}

#: the reason codes of :data:`spamwarden.reputation.listings.REASONS` in Vietnamese
#: (English: the reason text of the listing itself)
REASON_TEXTS: dict[str, dict[str, str]] = {
    "vi": {
        "complaints": "đã gửi thư bị người nhận báo là thư rác",
        "manual": "do người vận hành liệt kê",
        "imported": "nhập từ danh sách của người vận hành",
        "ad-no-consent": "gửi quảng cáo khi người nhận chưa đồng ý",
        "domain-complaints": "tên miền gửi thư bị thu hồi sau khiếu nại của người nhận",
        "domain-ad-no-consent": "quảng cáo khi chưa được đồng ý",
        "url-complaints": "tên miền được quảng cáo trong thư bị báo là thư rác",
        "domain-manual": "tên miền do người vận hành liệt kê",
        "domain-imported": "tên miền nhập từ danh sách của người vận hành",
        "address-complaints": "hộp thư trên nền tảng dùng chung bị báo là gửi thư rác",
        "address-manual": "hộp thư do người vận hành liệt kê",
    },
}


def text(language: str, name: str, **values: object) -> str:
    """The text ``name`` in ``language`` (English when missing), filled with ``values``.

    :raises KeyError: no such text in English either.
    """
    table = TEXTS.get(language, TEXTS["en"])
    template = table.get(name) or TEXTS["en"][name]
    return template.format(**values)


def reason_text(language: str, reason: str, english: str) -> str:
    """A listing's reason in ``language``; ``english`` (the listing's own text) otherwise."""
    return REASON_TEXTS.get(language, {}).get(reason, english)


def negotiate(accept_language: str, override: str = "") -> Language:
    """The page language for an ``Accept-Language`` header (RFC 9110 §12.5.4).

    :param accept_language: the header's value (``"vi-VN,vi;q=0.9,en;q=0.8"``); at most
        the first 1,000 characters and 30 ranges are read.
    :param override: a ``?lang=`` value; used when it is one of :data:`LANGUAGES`.
    :returns: the language with the highest ``q`` among ours (the earlier range on a
        tie); English when none of ours is asked for.
    """
    if override in LANGUAGES:
        return override
    return i18n.negotiate(accept_language)
