"""Human-facing texts of the milter, the complaint intake and the API, in English and
Vietnamese (``i18n.language``).

One catalogue, :data:`MESSAGES`: a message id → ``{"en": template, "vi": template}``,
each template ``str.format`` text with the same named placeholders in every language
(a unit test checks it). Ids are grouped by where the text goes:

``milter.*``, ``intake.*``, ``optout.*``
    SMTP reply texts. The code and the enhanced status code (RFC 3463) are never part
    of the text and never change with the language. Vietnamese is written here with
    its diacritics; :func:`smtp_text` folds it to ASCII (``Thư của bạn bị từ chối`` →
    ``Thu cua ban bi tu choi``), the usual practice for Vietnamese in SMTP: a reply
    line carries UTF-8 only after SMTPUTF8 (RFC 6531 §3.7.4), and libmilter and
    Postfix refuse or mangle other bytes in a milter's reply whatever the client
    announced. Machine parts (addresses, URLs, ids, symbol names, setting names) are
    placeholders or ASCII words kept as they are.
``api.*``
    the ``message`` of a JSON error (UTF-8, diacritics kept); the machine ``code`` is the
    id without ``api.`` and never changes with the language.
``learn.*``, ``settings.*``, ``registry.*``, ``listings.*``, ``http.*``
    details written by a lower layer (the learn path, settings and consent validation,
    listing keys, aiohttp's reason phrases). The layer raises its usual exception with a
    :class:`Message` (``raise SettingsError(Message(...))``), whose ``str`` is the
    English, so logs and the command line read as before; the API puts it inside the
    generic ``api.*`` error of the status (:func:`detail`), which renders it in the
    request's language. The English of each is the text the layer always wrote.
``intake.smtp.*``
    aiosmtpd's own protocol replies (:mod:`spamwarden.reputation.protocol_replies`).

The consent texts (:mod:`spamwarden.consent.texts`) and the lookup pages
(:mod:`spamwarden.api.lookup_texts`) keep their own catalogues in the same shape;
``consent.language`` follows ``i18n.language`` unless set.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from ._unicode import normalized

__all__ = [
    "LANGUAGES",
    "MESSAGES",
    "SMTP_GROUPS",
    "Language",
    "Message",
    "detail",
    "fold_ascii",
    "negotiate",
    "placeholders",
    "smtp_text",
    "text",
]

Language = Literal["en", "vi"]
LANGUAGES: tuple[Language, ...] = ("en", "vi")
#: id prefixes whose texts go into SMTP replies (ASCII after :func:`smtp_text`)
SMTP_GROUPS: tuple[str, ...] = ("milter.", "intake.", "optout.")

MESSAGES: dict[str, dict[str, str]] = {
    # -- milter: end-of-message and error replies (SMTP, folded to ASCII) -------------------
    "milter.reject": {
        "en": "message rejected as spam: {reason}",
        "vi": "Thư của bạn bị từ chối vì bị xác định là thư rác: {reason}",
    },
    "milter.reject_see": {
        "en": "message rejected as spam: {reason}; see {url}",
        "vi": "Thư của bạn bị từ chối vì bị xác định là thư rác: {reason}; "
              "xem chi tiết tại {url}",
    },
    "milter.tempfail": {
        "en": "try again later: {reason}",
        "vi": "Thư của bạn tạm thời chưa được nhận, vui lòng gửi lại sau: {reason}",
    },
    "milter.error_reject": {
        "en": "message could not be checked",
        "vi": "Không thể kiểm tra thư của bạn",
    },
    "milter.error_tempfail": {
        "en": "spam filter temporarily unavailable, try again later",
        "vi": "Bộ lọc thư rác tạm thời không hoạt động, vui lòng gửi lại sau",
    },
    # 451 4.3.2 at end of message: large messages fill milter.max_scan_bytes_in_flight
    "milter.busy": {
        "en": "spam filter busy with large messages, try again later",
        "vi": "Bộ lọc thư rác đang bận xử lý các thư lớn, vui lòng gửi lại sau",
    },
    "milter.too_many_fields": {
        "en": "message has more than {limit} X-Spam-* or Authentication-Results header fields",
        "vi": "Thư có hơn {limit} trường tiêu đề X-Spam-* hoặc Authentication-Results",
    },
    # 452 4.5.3 at RCPT (RFC 5321 §4.5.3.1.10): this recipient's settings differ from
    # those of the transaction's first recipient; the client sends it in another one
    "milter.rcpt_split": {
        "en": "Too many recipients for one policy; send this recipient in another transaction",
        "vi": "Người nhận này có chính sách lọc khác với người nhận đầu tiên; vui lòng gửi "
              "cho người nhận này trong một phiên gửi khác",
    },
    # the reason inside milter.reject / milter.tempfail
    "milter.reason.score": {
        "en": "spam score {score} >= {threshold} ({symbols})",
        "vi": "điểm thư rác {score} >= {threshold} ({symbols})",
    },
    "milter.reason.rule": {
        "en": "the message fails the check {symbol}",
        "vi": "thư không đạt kiểm tra {symbol}",
    },
    "milter.reason.DMARC_REJECT": {
        "en": "DMARC policy of {domain} is reject and the message fails it (DMARC_REJECT)",
        "vi": "thư không đạt DMARC và chính sách DMARC của {domain} là từ chối "
              "(DMARC_REJECT)",
    },
    "milter.reason.DMARC_ARC_TEMPFAIL": {
        "en": "the message fails DMARC of {domain} and the ARC chain of a trusted sealer "
              "could not be verified now (DMARC_ARC_TEMPFAIL)",
        "vi": "thư không đạt DMARC của {domain} và tạm thời chưa xác minh được chuỗi ARC "
              "của bên niêm phong tin cậy (DMARC_ARC_TEMPFAIL)",
    },
    "milter.reason.DENYLIST": {
        "en": "the sender is on this site's deny list (DENYLIST)",
        "vi": "người gửi nằm trong danh sách chặn của hệ thống này (DENYLIST)",
    },
    # -- complaint intake (report@, ham@; SMTP/LMTP, folded to ASCII) ----------------------
    "intake.rcpt_ok": {"en": "OK", "vi": "Địa chỉ nhận hợp lệ"},
    "intake.no_such_address": {
        "en": "<{address}>: no such report address here",
        "vi": "<{address}>: không có địa chỉ nhận báo cáo này tại đây",
    },
    "intake.reporter_not_local": {
        "en": "Reports are accepted only from addresses at {domains}; "
              "<{reporter}> is not one of them",
        "vi": "Chỉ nhận báo cáo từ các địa chỉ thuộc {domains}; "
              "<{reporter}> không thuộc các tên miền này",
    },
    "intake.too_many_rcpts": {
        "en": "Too many recipients; send the rest in another message",
        "vi": "Quá nhiều người nhận; vui lòng gửi phần còn lại trong một thư khác",
    },
    "intake.auth_required": {
        "en": "Reports are accepted only from users logged in to this mail system: send it "
              "again from your mail program with SMTP authentication (login) or from webmail",
        "vi": "Chỉ nhận báo cáo từ người dùng đã đăng nhập vào hệ thống thư này: vui lòng "
              "gửi lại từ chương trình thư của bạn có xác thực SMTP (đăng nhập) hoặc từ "
              "webmail",
    },
    "intake.login_unknown": {
        "en": "This mail system did not record who logged in, so the report cannot be "
              "counted; please tell the postmaster (smtpd_sasl_authenticated_header)",
        "vi": "Hệ thống thư này không ghi nhận người đã đăng nhập nên không thể tính báo "
              "cáo; vui lòng báo cho quản trị viên thư (smtpd_sasl_authenticated_header)",
    },
    "intake.unusable": {"en": "{sentence}", "vi": "{sentence}"},
    "intake.rate_limited": {
        "en": "Too many reports from <{reporter}> in the last hour; it will be accepted later",
        "vi": "Có quá nhiều báo cáo từ <{reporter}> trong một giờ qua; báo cáo sẽ được "
              "nhận sau",
    },
    "intake.store_failed": {
        "en": "Temporary problem storing your report; please try again later",
        "vi": "Tạm thời không lưu được báo cáo của bạn; vui lòng thử lại sau",
    },
    "intake.internal": {
        "en": "Temporary internal problem; please try again later",
        "vi": "Hệ thống đang gặp sự cố tạm thời; vui lòng thử lại sau",
    },
    "intake.data_busy": {
        "en": "Too much mail being received at once; please try again later",
        "vi": "Hệ thống đang nhận quá nhiều thư cùng lúc; vui lòng thử lại sau",
    },
    "intake.sessions_busy": {
        "en": "Too many sessions at once; try again later",
        "vi": "Quá nhiều phiên kết nối cùng lúc; vui lòng thử lại sau",
    },
    "intake.accepted": {
        "en": "Report accepted as {id}",
        "vi": "Đã nhận báo cáo, mã {id}",
    },
    "intake.accepted_many": {
        "en": "{count} reported messages accepted as {ids}",
        "vi": "Đã nhận {count} thư được báo cáo, mã {ids}",
    },
    "intake.duplicate": {
        "en": "Report already received as {id}; counted once",
        "vi": "Báo cáo này đã được nhận trước đó với mã {id}; chỉ được tính một lần",
    },
    "intake.unmatched": {
        "en": "Report kept as {id}, but it lists nothing: {why}",
        "vi": "Đã lưu báo cáo với mã {id}, nhưng báo cáo này không dẫn đến việc chặn "
              "nào: {why}",
    },
    "intake.unmatched_ham": {
        "en": "Report kept as {id}, but nothing is learned from it: {why}",
        "vi": "Đã lưu báo cáo với mã {id}, nhưng hệ thống không học gì từ báo cáo "
              "này: {why}",
    },
    "intake.why.no-delivery": {
        "en": "no such message was delivered here recently",
        "vi": "gần đây hệ thống không chuyển thư nào như vậy",
    },
    "intake.why.not-a-recipient": {
        "en": "that message was not delivered here to you",
        "vi": "thư đó không được hệ thống này chuyển đến bạn",
    },
    "intake.why.disagree": {
        "en": "its Message-ID and its content match different messages delivered here",
        "vi": "Message-ID và nội dung của thư khớp với những thư khác nhau đã chuyển đến đây",
    },
    "intake.no_original": {
        "en": "No reported message was found in your report: forward the unwanted message "
              "as an attachment (\"Forward as attachment\"), or forward it inline without "
              "editing the forwarded headers.",
        "vi": "Không tìm thấy thư bị báo cáo trong báo cáo của bạn: hãy chuyển tiếp thư "
              "không mong muốn dưới dạng tệp đính kèm (\"Chuyển tiếp dưới dạng tệp đính "
              "kèm\"), hoặc chuyển tiếp trực tiếp mà không sửa các trường tiêu đề được "
              "chuyển tiếp.",
    },
    "intake.nothing_actionable": {
        "en": "The reported message names no sending server, sender domain or link that "
              "could be acted on.",
        "vi": "Thư bị báo cáo không cho biết máy chủ gửi, tên miền người gửi hay liên kết "
              "nào có thể xử lý.",
    },
    "intake.automatic_message": {
        "en": "This is an automatic message (such as an unsubscribe request or an "
              "auto-reply), not a forwarded unwanted message.",
        "vi": "Đây là thư tự động (như yêu cầu hủy đăng ký hoặc thư trả lời tự động), "
              "không phải thư không mong muốn được chuyển tiếp.",
    },
    # -- the intake's protocol replies, written by aiosmtpd in English and mapped by
    # spamwarden/reputation/protocol_replies.py (SMTP/LMTP, folded to ASCII); a command
    # name or syntax in a placeholder is a protocol word and stays as it is
    "intake.smtp.ok": {"en": "OK", "vi": "Thành công"},
    "intake.smtp.bye": {"en": "Bye", "vi": "Tạm biệt"},
    "intake.smtp.start_data": {
        "en": "End data with <CR><LF>.<CR><LF>",
        "vi": "Vui lòng gửi nội dung thư, kết thúc bằng <CR><LF>.<CR><LF>",
    },
    "intake.smtp.syntax": {
        "en": "Syntax: {syntax}",
        "vi": "Sai cú pháp; cú pháp đúng: {syntax}",
    },
    "intake.smtp.help_syntax": {"en": "Syntax: {syntax}", "vi": "Cú pháp: {syntax}"},
    "intake.smtp.help": {
        "en": "Supported commands: {commands}",
        "vi": "Các lệnh được hỗ trợ: {commands}",
    },
    "intake.smtp.bad_syntax": {"en": "Error: bad syntax", "vi": "Lỗi: sai cú pháp"},
    "intake.smtp.line_too_long": {
        "en": "Command line too long",
        "vi": "Dòng lệnh quá dài",
    },
    "intake.smtp.data_line_too_long": {
        "en": "Line too long (see RFC5321 4.5.3.1.6)",
        "vi": "Có dòng trong thư quá dài (xem RFC5321 4.5.3.1.6)",
    },
    "intake.smtp.ascii_only": {
        "en": "Error: strict ASCII mode",
        "vi": "Lỗi: chỉ chấp nhận ký tự ASCII",
    },
    "intake.smtp.unknown_command": {
        "en": "Error: command \"{command}\" not recognized",
        "vi": "Lỗi: không nhận dạng được lệnh \"{command}\"",
    },
    "intake.smtp.too_many_unknown": {
        "en": "Too many unrecognized commands, goodbye.",
        "vi": "Quá nhiều lệnh không nhận dạng được; kết nối sẽ được đóng.",
    },
    "intake.smtp.too_many_calls": {
        "en": "{command} sent too many times",
        "vi": "Lệnh {command} được gửi quá nhiều lần",
    },
    "intake.smtp.helo_first": {
        "en": "Error: send {helo} first",
        "vi": "Lỗi: vui lòng gửi lệnh {helo} trước",
    },
    "intake.smtp.mail_first": {
        "en": "Error: need MAIL command",
        "vi": "Lỗi: vui lòng gửi lệnh MAIL trước",
    },
    "intake.smtp.rcpt_first": {
        "en": "Error: need RCPT command",
        "vi": "Lỗi: vui lòng gửi lệnh RCPT trước",
    },
    "intake.smtp.nested_mail": {
        "en": "Error: nested MAIL command",
        "vi": "Lỗi: phiên gửi này đã có lệnh MAIL",
    },
    "intake.smtp.malformed_address": {
        "en": "Error: malformed address",
        "vi": "Lỗi: địa chỉ không đúng định dạng",
    },
    "intake.smtp.body_param": {
        "en": "Error: BODY can only be one of 7BIT, 8BITMIME",
        "vi": "Lỗi: BODY chỉ có thể là 7BIT hoặc 8BITMIME",
    },
    "intake.smtp.smtputf8_arg": {
        "en": "Error: SMTPUTF8 takes no arguments",
        "vi": "Lỗi: SMTPUTF8 không nhận tham số",
    },
    "intake.smtp.smtputf8_disabled": {
        "en": "Error: SMTPUTF8 disabled",
        "vi": "Lỗi: SMTPUTF8 không được bật",
    },
    "intake.smtp.size_exceeded": {
        "en": "Error: message size exceeds fixed maximum message size",
        "vi": "Lỗi: kích thước thư vượt quá giới hạn tối đa cho phép",
    },
    "intake.smtp.too_much_data": {
        "en": "Error: Too much mail data",
        "vi": "Lỗi: thư vượt quá kích thước tối đa cho phép",
    },
    "intake.smtp.params_unknown": {
        "en": "{command} parameters not recognized or not implemented",
        "vi": "Tham số của {command} không được nhận dạng hoặc không được hỗ trợ",
    },
    "intake.smtp.vrfy_failed": {
        "en": "Could not VRFY {address}",
        "vi": "Không thể kiểm tra (VRFY) {address}",
    },
    "intake.smtp.vrfy_unknown": {
        "en": "Cannot VRFY user, but will accept message and attempt delivery",
        "vi": "Không thể kiểm tra (VRFY) người dùng, nhưng hệ thống vẫn nhận thư và sẽ "
              "thử chuyển đi",
    },
    "intake.smtp.expn": {
        "en": "EXPN not implemented",
        "vi": "Không hỗ trợ lệnh EXPN",
    },
    "intake.smtp.auth_required": {
        "en": "Authentication required",
        "vi": "Cần xác thực trước",
    },
    "intake.smtp.auth_encryption": {
        "en": "Encryption required for requested authentication mechanism",
        "vi": "Cơ chế xác thực này chỉ dùng được trên kết nối đã mã hóa",
    },
    "intake.smtp.already_authenticated": {
        "en": "Already authenticated",
        "vi": "Đã xác thực trước đó",
    },
    "intake.smtp.starttls_first": {
        "en": "Must issue a STARTTLS command first",
        "vi": "Cần gửi lệnh STARTTLS trước",
    },
    "intake.smtp.tls_unavailable": {
        "en": "TLS not available",
        "vi": "Không hỗ trợ TLS",
    },
    "intake.smtp.insecure": {
        "en": "Command refused due to lack of security",
        "vi": "Lệnh bị từ chối vì kết nối chưa được bảo mật",
    },
    # -- optout@ (SMTP, folded to ASCII; terms as in consent/texts.py) ---------------------
    "optout.done": {
        "en": "Refusal of advertising from {adv} recorded for {rcpt}",
        "vi": "Đã ghi nhận {rcpt} từ chối quảng cáo từ {adv}",
    },
    "optout.done_all": {
        "en": "Refusal of all advertising recorded for {rcpt}",
        "vi": "Đã ghi nhận {rcpt} từ chối mọi thư điện tử quảng cáo",
    },
    "optout.already": {
        "en": "Refusal already recorded for {rcpt}",
        "vi": "Yêu cầu từ chối của {rcpt} đã được ghi nhận trước đó",
    },
    "optout.unknown": {
        "en": "No advertiser found: forward the ad as an attachment, or put the advertiser's "
              "name or domain (or ALL for all advertising) in the subject",
        "vi": "Không tìm thấy nhà quảng cáo: hãy chuyển tiếp thư quảng cáo dưới dạng tệp "
              "đính kèm, hoặc ghi tên hay tên miền của nhà quảng cáo (hoặc ALL để từ chối "
              "mọi quảng cáo) vào tiêu đề",
    },
    "optout.not_local": {
        "en": "Only recipients of this mail system can opt out here",
        "vi": "Chỉ người nhận thuộc hệ thống thư này mới có thể từ chối quảng cáo tại đây",
    },
    "optout.not_authenticated": {
        "en": "Opt-out by mail is accepted only from users logged in to this mail system; "
              "send it from your mail program with SMTP authentication (login) or from "
              "webmail, or use the unsubscribe link in the ad",
        "vi": "Chỉ nhận yêu cầu từ chối quảng cáo qua thư từ người dùng đã đăng nhập vào hệ "
              "thống thư này; hãy gửi từ chương trình thư của bạn có xác thực SMTP (đăng "
              "nhập) hoặc từ webmail, hoặc dùng liên kết hủy đăng ký trong thư quảng cáo",
    },
    "optout.bad_sender": {
        "en": "The sender address cannot be used as a recipient address",
        "vi": "Không thể dùng địa chỉ người gửi làm địa chỉ người nhận",
    },
    "optout.store": {
        "en": "Opt-out cannot be recorded right now, try again later",
        "vi": "Tạm thời không ghi nhận được yêu cầu từ chối quảng cáo, vui lòng thử lại sau",
    },
    # -- API JSON errors (UTF-8) -----------------------------------------------------------
    # generic wrappers for a detail written by a lower layer (a field name, a value): the
    # English is the detail alone, as before; Vietnamese says what kind of error it is
    "api.bad_request": {"en": "{detail}", "vi": "Yêu cầu không hợp lệ: {detail}"},
    "api.unauthorized": {"en": "{detail}", "vi": "Cần xác thực: {detail}"},
    "api.forbidden": {"en": "{detail}", "vi": "Không được phép: {detail}"},
    "api.not_found": {"en": "{detail}", "vi": "Không tìm thấy: {detail}"},
    "api.conflict": {"en": "{detail}", "vi": "Xung đột với dữ liệu hiện có: {detail}"},
    "api.too_large": {"en": "{detail}", "vi": "Yêu cầu quá lớn: {detail}"},
    "api.unprocessable": {"en": "{detail}", "vi": "Không xử lý được yêu cầu: {detail}"},
    "api.rate_limited": {"en": "{detail}", "vi": "Quá nhiều yêu cầu: {detail}"},
    "api.unavailable": {"en": "{detail}", "vi": "Dịch vụ tạm thời không khả dụng: {detail}"},
    "api.error": {"en": "{detail}", "vi": "Lỗi: {detail}"},
    # errors said in full
    "api.operator_disabled": {
        "en": "operator endpoints are disabled: api.operator_tokens is empty",
        "vi": "Các chức năng dành cho người vận hành đang bị tắt: api.operator_tokens trống",
    },
    "api.operator_token_required": {
        "en": "an operator bearer token is required",
        "vi": "Cần mã truy cập (bearer token) của người vận hành",
    },
    "api.learn_token_wrong": {
        "en": "this learn token is not the given user's",
        "vi": "Mã học (learn token) này không thuộc về người dùng đã nêu",
    },
    "api.body_not_object": {
        "en": "the body must be a JSON object",
        "vi": "Nội dung yêu cầu phải là một đối tượng JSON",
    },
    "api.body_too_large": {
        "en": "request body too large",
        "vi": "Nội dung yêu cầu quá lớn",
    },
    "api.field_not_string": {
        "en": "{name} must be a string",
        "vi": "{name} phải là một chuỗi ký tự",
    },
    "api.field_required": {
        "en": "{name} is required",
        "vi": "Thiếu trường bắt buộc {name}",
    },
    "api.field_too_long": {
        "en": "{name} is longer than {limit} characters",
        "vi": "{name} dài hơn {limit} ký tự",
    },
    "api.store_unavailable": {
        "en": "the listing store is unavailable; try again shortly",
        "vi": "Tạm thời không truy cập được kho dữ liệu danh sách chặn; vui lòng thử lại "
              "sau ít phút",
    },
    "api.store_failed": {
        "en": "the listing store failed; try again shortly",
        "vi": "Kho dữ liệu danh sách chặn gặp lỗi; vui lòng thử lại sau ít phút",
    },
    "api.registry_unavailable": {
        "en": "the consent registry is unavailable, try again later",
        "vi": "Tạm thời không truy cập được sổ đăng ký sự đồng ý, vui lòng thử lại sau",
    },
    "api.registry_failed": {
        "en": "the consent registry failed, try again later",
        "vi": "Sổ đăng ký sự đồng ý gặp lỗi, vui lòng thử lại sau",
    },
    "api.token_missing": {
        "en": "missing bearer token",
        "vi": "Thiếu mã truy cập (bearer token)",
    },
    "api.token_wrong_advertiser": {
        "en": "token not valid for this advertiser",
        "vi": "Mã truy cập không hợp lệ đối với nhà quảng cáo này",
    },
    "api.no_advertiser": {
        "en": "no advertiser {advertiser}",
        "vi": "Không có nhà quảng cáo {advertiser}",
    },
    "api.domains_list": {
        "en": "domains must be a list of domain names",
        "vi": "domains phải là một danh sách tên miền",
    },
    "api.domains_nonempty": {
        "en": "domains must be a non-empty list of domain names",
        "vi": "domains phải là một danh sách tên miền không rỗng",
    },
    "api.operator_adds_domains": {
        "en": "only the operator adds sending domains",
        "vi": "Chỉ người vận hành mới được thêm tên miền gửi thư",
    },
    "api.consents_nonempty": {
        "en": "consents must be a non-empty list",
        "vi": "consents phải là một danh sách không rỗng",
    },
    "api.consents_limit": {
        "en": "at most {limit} consent records per request",
        "vi": "Mỗi yêu cầu có tối đa {limit} bản ghi sự đồng ý",
    },
    "api.consent_item": {
        "en": "consents[{index}]: {detail}",
        "vi": "Bản ghi consents[{index}] không hợp lệ: {detail}",
    },
    "api.consent_not_local": {
        "en": "consents[{index}]: {rcpt} is not an address at this site's domains ({domains}, "
              "intake.local_domains); consent is kept only for this site's own recipients",
        "vi": "Bản ghi consents[{index}] không hợp lệ: {rcpt} không phải là địa chỉ thuộc các "
              "tên miền của hệ thống này ({domains}, intake.local_domains); sự đồng ý chỉ được "
              "lưu cho người nhận của chính hệ thống này",
    },
    "api.export_format": {
        "en": "format must be json or csv",
        "vi": "format phải là json hoặc csv",
    },
    "api.since": {
        "en": "since must be a Unix time",
        "vi": "since phải là một thời điểm Unix",
    },
    "api.no_consent": {
        "en": "no consent of {rcpt} to advertising from {advertiser} on record: an "
              "unsubscribe URL is issued only for a recipient who consented",
        "vi": "Không có bản ghi sự đồng ý của {rcpt} nhận quảng cáo từ {advertiser}: chỉ "
              "cấp URL hủy đăng ký cho người nhận đã đồng ý",
    },
    "api.limit_number": {
        "en": "limit must be a whole number",
        "vi": "limit phải là một số nguyên",
    },
    "api.limit_offset_numbers": {
        "en": "limit and offset must be whole numbers",
        "vi": "limit và offset phải là số nguyên",
    },
    "api.page_limit": {
        "en": "limit must be a whole number from 1 to {max}",
        "vi": "limit phải là một số nguyên từ 1 đến {max}",
    },
    "api.page_cursor": {
        "en": "cursor is not one this list gave (use the next_cursor of the previous page, "
              "or leave it out to start from the first page)",
        "vi": "cursor không phải giá trị do danh sách này trả về (hãy dùng next_cursor của "
              "trang trước, hoặc bỏ trống để bắt đầu từ trang đầu)",
    },
    "api.history_action": {
        "en": "action must be one of {actions}",
        "vi": "action phải là một trong các giá trị {actions}",
    },
    "api.history_key_too_long": {
        "en": "queue_id or rcpt is too long",
        "vi": "queue_id hoặc rcpt quá dài",
    },
    "api.learn_kind": {
        "en": "kind must be spam or ham",
        "vi": "kind phải là spam hoặc ham",
    },
    "api.learn_user": {
        "en": "user (the mailbox owner's address) is required",
        "vi": "Thiếu user (địa chỉ của chủ hộp thư)",
    },
    "api.learn_body": {
        "en": "the body must be the message",
        "vi": "Nội dung yêu cầu phải là thư cần học",
    },
    "api.delist_queue_full": {
        "en": "too many delisting requests are waiting for an operator; try later",
        "vi": "Có quá nhiều yêu cầu gỡ khỏi danh sách đang chờ người vận hành; vui lòng thử "
              "lại sau",
    },
    "api.delist_request_pending": {
        "en": "your request to delist {key} is already waiting for an operator; you can file "
              "another once it is decided",
        "vi": "Yêu cầu gỡ {key} của bạn đang chờ người vận hành; bạn có thể gửi yêu cầu khác "
              "khi yêu cầu này đã được quyết định",
    },
    "api.delist_key_queue_full": {
        "en": "requests to delist {key} are already waiting for an operator; try again once "
              "they are decided",
        "vi": "Đã có các yêu cầu gỡ {key} đang chờ người vận hành; vui lòng thử lại khi các "
              "yêu cầu đó đã được quyết định",
    },
    "api.delist_rate": {
        "en": "too many delisting requests from your address; try later",
        "vi": "Có quá nhiều yêu cầu gỡ khỏi danh sách chặn từ địa chỉ của bạn; vui lòng "
              "thử lại sau",
    },
    "api.not_listed": {
        "en": "{key} is not listed",
        "vi": "{key} không nằm trong danh sách chặn",
    },
    "api.request_status": {
        "en": "status must be pending, approved or rejected",
        "vi": "status phải là pending, approved hoặc rejected",
    },
    "api.no_request": {
        "en": "no delisting request {id}",
        "vi": "Không có yêu cầu gỡ khỏi danh sách chặn {id}",
    },
    "api.request_decided": {
        "en": "request {id} was already {status}",
        "vi": "Yêu cầu {id} đã được xử lý trước đó ({status})",
    },
    "api.reason_required": {
        "en": "reason is required (JSON body or ?reason=)",
        "vi": "Thiếu lý do reason (trong nội dung JSON hoặc ?reason=)",
    },
    "api.decision": {
        "en": "decision must be approve or reject",
        "vi": "decision phải là approve hoặc reject",
    },
    "api.no_such_request": {
        "en": "no such delisting request",
        "vi": "Không có yêu cầu gỡ khỏi danh sách chặn này",
    },
    "api.already_decided": {
        "en": "the request was already {status}",
        "vi": "Yêu cầu này đã được xử lý trước đó ({status})",
    },
    "api.request_stale": {
        "en": "the listing this request was filed against has ended, and {key} was listed "
              "again on {since}: reject the request, or delist the key yourself",
        "vi": "Danh sách chặn mà yêu cầu này nhắm tới đã kết thúc, và {key} đã bị chặn lại "
              "từ {since}: hãy từ chối yêu cầu, hoặc tự gỡ khóa này",
    },
    # -- details from lower layers, wrapped in an api.* generic error (its code kept) ---------
    # POST /v1/learn outcomes (also the English of `spamwarden learn`)
    "learn.stored": {"en": "stored", "vi": "Đã lưu"},
    "learn.duplicate": {
        "en": "already stored; counted once",
        "vi": "Đã được lưu trước đó; chỉ được tính một lần",
    },
    "learn.unmatched": {
        "en": "kept, but it lists nothing: {why}",
        "vi": "Đã lưu, nhưng không dẫn đến việc chặn nào: {why}",
    },
    "learn.unmatched_ham": {
        "en": "kept, but nothing is learned from it: {why}",
        "vi": "Đã lưu, nhưng hệ thống không học gì từ thư này: {why}",
    },
    "learn.why_unknown": {
        "en": "it matched no delivery here",
        "vi": "thư không khớp với lần chuyển thư nào tại đây",
    },
    "learn.rate_limited": {
        "en": "too many reports from {mailbox} in the last hour; try later",
        "vi": "Có quá nhiều báo cáo từ {mailbox} trong một giờ qua; vui lòng thử lại sau",
    },
    "learn.store_failed": {
        "en": "the store is unavailable; try again later",
        "vi": "Tạm thời không truy cập được kho dữ liệu; vui lòng thử lại sau",
    },
    "learn.not_local": {
        "en": "{user} is not an address at {domains} (intake.local_domains)",
        "vi": "{user} không phải là địa chỉ thuộc {domains} (intake.local_domains)",
    },
    "learn.too_large": {
        "en": "the message is larger than intake.max_message_bytes ({limit})",
        "vi": "Thư lớn hơn giới hạn intake.max_message_bytes ({limit})",
    },
    "learn.no_header": {
        "en": "no message header section was found",
        "vi": "Không tìm thấy phần tiêu đề của thư",
    },
    # recipient settings and allow/deny entries (spamwarden/settings/; also the English
    # of `spamwarden settings`); {what} is one of the settings.what.* texts
    "settings.what.target": {"en": "target", "vi": "đối tượng áp dụng"},
    "settings.what.address_domain": {
        "en": "the domain of the address",
        "vi": "tên miền của địa chỉ",
    },
    "settings.what.entry": {"en": "{kind} entry", "vi": "mục {kind}"},
    "settings.domain_too_long": {
        "en": "{what} is longer than 253 characters",
        "vi": "{what} dài hơn 253 ký tự",
    },
    "settings.not_domain": {
        "en": "{what} {value} is not a domain name such as example.org",
        "vi": "{what} {value} không phải là tên miền (ví dụ: example.org)",
    },
    "settings.address_too_long": {
        "en": "address is longer than {limit} characters",
        "vi": "địa chỉ dài hơn {limit} ký tự",
    },
    "settings.not_address": {
        "en": "{value} is not a mail address such as alice@example.org",
        "vi": "{value} không phải là địa chỉ thư (ví dụ: alice@example.org)",
    },
    "settings.local_too_long": {
        "en": "the local part of {value} is longer than {limit} characters",
        "vi": "phần trước @ của {value} dài hơn {limit} ký tự",
    },
    "settings.target_not_string": {
        "en": "a target must be a string",
        "vi": "đối tượng áp dụng phải là một chuỗi ký tự",
    },
    "settings.target_required": {
        "en": "a target (recipient address or domain) is required",
        "vi": "thiếu đối tượng áp dụng (địa chỉ hoặc tên miền người nhận)",
    },
    "settings.entry_not_string": {
        "en": "an entry must be a string",
        "vi": "mục phải là một chuỗi ký tự",
    },
    "settings.entry_required": {"en": "an entry is required", "vi": "thiếu mục cần thêm"},
    "settings.entry_too_long": {
        "en": "entry is longer than {limit} characters",
        "vi": "mục dài hơn {limit} ký tự",
    },
    "settings.entry_kind": {
        "en": "unknown entry kind {kind}: expected one of {kinds}",
        "vi": "không có loại mục {kind}: phải là một trong các loại {kinds}",
    },
    "settings.not_network": {
        "en": "{value} is not an IP address or network such as 192.0.2.0/24 or 2001:db8::/32",
        "vi": "{value} không phải là địa chỉ IP hay dải mạng (ví dụ: 192.0.2.0/24 hoặc "
              "2001:db8::/32)",
    },
    "settings.not_object": {
        "en": "settings must be an object of name = number",
        "vi": "các thiết lập phải là một đối tượng dạng tên = số",
    },
    "settings.unknown": {
        "en": "unknown setting {name}: expected {names}",
        "vi": "không có thiết lập {name}: chỉ có {names}",
    },
    "settings.not_number": {"en": "{name} must be a number", "vi": "{name} phải là một số"},
    "settings.range": {
        "en": "{name} must be a number from -{limit} to {limit}",
        "vi": "{name} phải là một số từ -{limit} đến {limit}",
    },
    "settings.none_set": {
        "en": "set at least one of {names}",
        "vi": "cần đặt ít nhất một trong các giá trị {names}",
    },
    "settings.list_name": {
        "en": "the list must be allow or deny",
        "vi": "danh sách phải là allow hoặc deny",
    },
    "settings.no_threshold": {
        "en": "set at least one threshold",
        "vi": "cần đặt ít nhất một ngưỡng",
    },
    "settings.max_targets": {
        "en": "there are already {limit} recipient settings (settings.max_targets); "
              "remove some first",
        "vi": "đã có {limit} thiết lập theo người nhận (settings.max_targets); vui lòng "
              "xóa bớt trước",
    },
    "settings.note_too_long": {
        "en": "the note is longer than {limit} characters",
        "vi": "ghi chú dài hơn {limit} ký tự",
    },
    "settings.list_full": {
        "en": "the {which} list already holds {limit} entries (settings.max_entries); "
              "remove some first",
        "vi": "danh sách {which} đã có {limit} mục (settings.max_entries); vui lòng xóa "
              "bớt trước",
    },
    "settings.no_settings": {
        "en": "{target} has no settings",
        "vi": "{target} chưa có thiết lập riêng nào",
    },
    "settings.not_on_list": {
        "en": "{entry} is not on the {which} list",
        "vi": "{entry} không có trong danh sách {which}",
    },
    "settings.unordered": {
        "en": "the thresholds in effect would not satisfy tag_threshold <= "
              "quarantine_threshold <= reject_threshold: {thresholds}",
        "vi": "các ngưỡng áp dụng sẽ không thỏa mãn tag_threshold <= quarantine_threshold "
              "<= reject_threshold: {thresholds}",
    },
    # consent registry validation (spamwarden/consent/registry.py; the API's details)
    "registry.advertiser_id": {
        "en": "advertiser id {value}: use 1-64 letters, digits, '.', '_' or '-' "
              "(starting with a letter or digit)",
        "vi": "mã nhà quảng cáo {value} không hợp lệ: hãy dùng 1-64 chữ cái, chữ số, '.', "
              "'_' hoặc '-' (bắt đầu bằng chữ cái hoặc chữ số)",
    },
    "registry.not_address": {
        "en": "not an email address: {value}",
        "vi": "không phải là địa chỉ thư điện tử: {value}",
    },
    "registry.not_registrable": {
        "en": "not a registrable domain: {value}",
        "vi": "không phải là tên miền có thể đăng ký: {value}",
    },
    "registry.domain_taken": {
        "en": "{domain} is registered to advertiser {advertiser}",
        "vi": "{domain} đã được đăng ký cho nhà quảng cáo {advertiser}",
    },
    "registry.unknown_advertiser": {
        "en": "no advertiser {advertiser}",
        "vi": "không có nhà quảng cáo {advertiser}",
    },
    "registry.method": {
        "en": "consent method {value}: one of {methods}",
        "vi": "phương thức đồng ý {value} không hợp lệ: phải là một trong {methods}",
    },
    "registry.item_method": {
        "en": "method must be one of {methods}",
        "vi": "method phải là một trong {methods}",
    },
    "registry.item_not_object": {
        "en": "not an object",
        "vi": "không phải là một đối tượng JSON",
    },
    "registry.time": {
        "en": "consent time {value} is not a plausible past time",
        "vi": "thời điểm đồng ý {value} không phải là một thời điểm hợp lý trong quá khứ",
    },
    "registry.time_format": {
        "en": "{value}: use ISO 8601, Unix seconds or a duration like 365d",
        "vi": "{value}: hãy dùng định dạng ISO 8601, số giây Unix hoặc một khoảng thời gian "
              "như 365d",
    },
    "registry.expiry": {
        "en": "consent expiry must be after the consent time",
        "vi": "thời điểm hết hạn của sự đồng ý phải sau thời điểm đồng ý",
    },
    "registry.max_per_day": {
        "en": "max_per_day must be 0 (the configured cap) or more",
        "vi": "max_per_day phải từ 0 (mức giới hạn đã cấu hình) trở lên",
    },
    # listing keys and operator listings (spamwarden/reputation/listings.py, /v1/listings)
    "listings.not_address": {
        "en": "{value} is not a mail address",
        "vi": "{value} không phải là địa chỉ thư",
    },
    "listings.not_key": {
        "en": "{value} is not an IP address, a CIDR block or a domain name",
        "vi": "{value} không phải là địa chỉ IP, dải CIDR hay tên miền",
    },
    "listings.ttl_positive": {"en": "ttl must be more than 0", "vi": "ttl phải lớn hơn 0"},
    # aiohttp's reason phrases (RFC 9110 §15), the detail of an api.* generic error
    "http.404": {"en": "Not Found", "vi": "đường dẫn này không tồn tại"},
    "http.405": {
        "en": "Method Not Allowed",
        "vi": "đường dẫn này không hỗ trợ phương thức HTTP đã dùng",
    },
    "http.413": {"en": "Request Entity Too Large", "vi": "nội dung yêu cầu vượt quá giới hạn"},
}


def text(language: str, msg_id: str, **values: object) -> str:
    """The message ``msg_id`` in ``language`` (English when the language is not one of
    :data:`LANGUAGES`), filled with ``values``.

    :raises KeyError: no such message id, or a placeholder without a value.
    """
    entry = MESSAGES[msg_id]
    template = entry.get(language) or entry["en"]
    return template.format(**values)


_FOLD = str.maketrans({"đ": "d", "Đ": "D", "\u2019": "'", "\u2018": "'", "\u201c": '"',
                       "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def fold_ascii(s: str) -> str:
    """``s`` as printable ASCII on one line, for an SMTP reply (RFC 5321 §4.2).

    Vietnamese loses its diacritics (NFD, combining marks dropped, ``đ`` → ``d``), so
    ``Thư của bạn bị từ chối`` becomes ``Thu cua ban bi tu choi``; any other character
    outside printable ASCII becomes ``?``, and whitespace runs become one space.
    """
    decomposed = normalized("NFD", s.translate(_FOLD))
    out = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        out.append(ch if " " <= ch <= "~" else (" " if ch.isspace() else "?"))
    return " ".join("".join(out).split())


def smtp_text(language: str, msg_id: str, **values: object) -> str:
    """:func:`text` made safe for an SMTP reply line: :func:`fold_ascii` of it, values
    included (an address or a sentence from a client may carry anything).

    :raises KeyError: as :func:`text`.
    """
    return fold_ascii(text(language, msg_id, **values))


def placeholders(template: str) -> frozenset[str]:
    """The named fields of a ``str.format`` template (``{rcpt}`` → ``rcpt``)."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


@dataclass(frozen=True)
class Message:
    """A message id and the values to fill it with, rendered per language later (an API
    error is written before the request's language is known to the code raising it).

    :ivar msg_id: a key of :data:`MESSAGES`.
    :ivar values: the placeholders' values.
    """

    msg_id: str
    values: dict[str, object] = field(default_factory=dict)

    def render(self, language: str) -> str:
        """The text in ``language`` (see :func:`text`); a value that is itself a
        :class:`Message` (a detail from a lower layer) is rendered in ``language`` too."""
        values = {k: v.render(language) if isinstance(v, Message) else v
                  for k, v in self.values.items()}
        return text(language, self.msg_id, **values)

    def __str__(self) -> str:
        """The English text: an exception raised with a :class:`Message` reads as before
        in logs and on the command line."""
        return self.render("en")

    @property
    def code(self) -> str:
        """The machine code: the id without its group (``api.not_listed`` → ``not_listed``)."""
        return self.msg_id.split(".", 1)[-1]


def detail(exc: BaseException) -> str | Message:
    """What ``exc`` says: the :class:`Message` it was raised with
    (``raise SettingsError(Message(...))``), else its English text."""
    if len(exc.args) == 1 and isinstance(exc.args[0], Message):
        return exc.args[0]
    return str(exc)


def negotiate(accept_language: str, default: str = "en") -> Language:
    """The language for an ``Accept-Language`` header (RFC 9110 §12.5.4).

    :param accept_language: the header's value (``"vi-VN,vi;q=0.9,en;q=0.8"``); at most
        the first 1,000 characters and 30 ranges are read.
    :param default: the answer when the header names none of :data:`LANGUAGES`
        (``i18n.language``); English if it is not one of them either.
    :returns: the language with the highest ``q`` among ours (the earlier range on a tie).
    """
    best: tuple[float, int, Language] | None = None
    for pos, item in enumerate(accept_language[:1000].split(",")[:30]):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-", 1)[0]
        lang = next((x for x in LANGUAGES if x == primary), None)
        if lang is None:
            continue
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if best is None or (q, -pos) > best[:2]:
            best = (q, -pos, lang)
    if best is not None:
        return best[2]
    return next((x for x in LANGUAGES if x == default), "en")
