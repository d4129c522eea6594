"""The catalogue of human-facing texts (spamwarden/i18n.py) and the SMTP replies built from it."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spamwarden.config import Config, ConsentConfig, I18nConfig, config_from_mapping
from spamwarden.consent import optout
from spamwarden.errors import ConfigError
from spamwarden.i18n import (
    LANGUAGES,
    MESSAGES,
    SMTP_GROUPS,
    Message,
    detail,
    fold_ascii,
    negotiate,
    placeholders,
    smtp_text,
    text,
)
from spamwarden.reputation import intake, reports

# an SMTP reply line: code, enhanced status code (RFC 3463), printable ASCII text
_REPLY = re.compile(r"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} [ -~]+$")


@pytest.mark.parametrize("msg_id", sorted(MESSAGES))
def test_every_message_has_every_language_with_the_same_placeholders(msg_id: str) -> None:
    entry = MESSAGES[msg_id]
    assert set(entry) == set(LANGUAGES), f"{msg_id}: languages {sorted(entry)}"
    english = placeholders(entry["en"])
    for lang in LANGUAGES:
        assert entry[lang].strip(), f"{msg_id}: empty {lang}"
        assert placeholders(entry[lang]) == english, (
            f"{msg_id}: {lang} has {sorted(placeholders(entry[lang]))}, en {sorted(english)}")


def test_the_placeholder_check_can_fail() -> None:
    # what the test above compares: a translation that drops one is told apart
    assert placeholders("{rcpt} refused {advertiser}") != placeholders("{rcpt} da tu choi")
    assert placeholders("a {x!r:>10} b {y}") == {"x", "y"}


def test_vietnamese_is_really_translated() -> None:
    same = [k for k, v in MESSAGES.items() if v["vi"] == v["en"]]
    # only texts that are nothing but a detail from elsewhere stay the same
    assert all(MESSAGES[k]["en"] in ("{detail}", "{sentence}") for k in same), same
    assert text("vi", "milter.error_reject") == "Không thể kiểm tra thư của bạn"


@pytest.mark.parametrize("msg_id", sorted(k for k in MESSAGES if k.startswith(SMTP_GROUPS)))
def test_every_smtp_text_folds_to_one_ascii_line(msg_id: str) -> None:
    for lang in LANGUAGES:
        values = {name: "x" for name in placeholders(MESSAGES[msg_id][lang])}
        line = smtp_text(lang, msg_id, **values)
        assert line.isascii() and line.isprintable() and line == " ".join(line.split())


def test_folding_drops_vietnamese_diacritics() -> None:
    assert fold_ascii("Thư của bạn bị từ chối vì bị xác định là thư rác") == (
        "Thu cua ban bi tu choi vi bi xac dinh la thu rac")
    assert fold_ascii("Đã ghi nhận; địa chỉ") == "Da ghi nhan; dia chi"
    assert fold_ascii("ỨỪỬỮỰ ẤẦẨẪẬ ỔỖ") == "UUUUU AAAAA OO"
    assert fold_ascii("a\r\nb\tc  d") == "a b c d"
    assert fold_ascii("mail ✉ 中") == "mail ? ?"


@given(st.text(max_size=200))
def test_folding_never_leaves_a_byte_outside_printable_ascii(s: str) -> None:
    out = fold_ascii(s)
    assert all(" " <= ch <= "~" for ch in out)


def test_smtp_text_folds_the_values_too() -> None:
    line = smtp_text("vi", "intake.rate_limited", reporter="người@ví-dụ.vn\r\nX")
    assert line.isascii() and "nguoi@vi-du.vn X" in line


def test_negotiate_prefers_the_header_then_the_setting() -> None:
    assert negotiate("vi-VN,vi;q=0.9,en;q=0.8") == "vi"
    assert negotiate("en-US,en;q=0.9", default="vi") == "en"
    assert negotiate("fr-FR,de;q=0.5", default="vi") == "vi"
    assert negotiate("", default="vi") == "vi"
    assert negotiate("", default="xx") == "en"
    assert negotiate("vi;q=0, en;q=0.1", default="vi") == "en"
    assert negotiate("en;q=0.5, vi;q=0.8") == "vi"


def test_message_code_is_the_id_without_its_group() -> None:
    m = Message("api.not_listed", {"key": "192.0.2.7"})
    assert m.code == "not_listed"
    assert m.render("en") == "192.0.2.7 is not listed"
    assert m.render("vi") == "192.0.2.7 không nằm trong danh sách chặn"


def test_a_nested_message_is_rendered_in_the_same_language() -> None:
    # a lower layer's detail inside an API error: its English is the detail alone
    m = Message("api.bad_request", {"detail": Message("settings.not_number", {"name": "x"})})
    assert m.render("en") == "x must be a number"
    assert m.render("vi") == "Yêu cầu không hợp lệ: x phải là một số"
    assert m.code == "bad_request"


def test_an_exception_raised_with_a_message_reads_in_english() -> None:
    from spamwarden.settings.model import SettingsError, parse_overrides

    with pytest.raises(SettingsError, match="^tag_threshold must be a number$") as err:
        parse_overrides({"tag_threshold": "x"})
    said = detail(err.value)
    assert isinstance(said, Message) and said.render("vi") == "tag_threshold phải là một số"
    assert detail(ValueError("plain")) == "plain"


# -- configuration ------------------------------------------------------------------------


def test_language_setting_defaults_and_validation() -> None:
    assert Config().i18n.language == "en"
    assert config_from_mapping({"i18n": {"language": "vi"}}).i18n.language == "vi"
    with pytest.raises(ConfigError, match="i18n.language"):
        config_from_mapping({"i18n": {"language": "fr"}})
    with pytest.raises(ConfigError, match="consent.language"):
        config_from_mapping({"consent": {"language": "de"}})


def test_consent_language_follows_i18n_unless_set() -> None:
    assert config_from_mapping({"i18n": {"language": "vi"}}).consent.language == "vi"
    assert config_from_mapping({}).consent.language == "en"
    both = config_from_mapping({"i18n": {"language": "vi"}, "consent": {"language": "en"}})
    assert both.consent.language == "en"  # an explicit consent.language still wins
    assert config_from_mapping({"consent": {"language": "vi"}}).consent.language == "vi"
    built = Config(i18n=I18nConfig(language="vi"),
                   consent=dataclasses.replace(ConsentConfig(), language=""))
    assert built.consent.language == "vi"


# -- intake and optout replies -------------------------------------------------------------


def test_refusal_sentences_are_the_catalogue_english() -> None:
    assert reports.NO_ORIGINAL == MESSAGES["intake.no_original"]["en"]
    assert reports.NOTHING_ACTIONABLE == MESSAGES["intake.nothing_actionable"]["en"]
    assert reports.AUTOMATIC_MESSAGE == MESSAGES["intake.automatic_message"]["en"]


def _sample_values(template: str) -> dict[str, object]:
    return {name: "Người-dùng@ví-dụ.vn" for name in placeholders(template)}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_intake_reply_is_one_ascii_smtp_line_with_its_code(lang: str) -> None:
    for name, code in intake.REPLY_CODES.items():
        line = intake.reply(lang, name, **_sample_values(intake.REPLIES[name]))
        assert _REPLY.match(line), line
        assert line.startswith(code + " ")
    for name, code in optout.REPLY_CODES.items():
        line = optout.reply(lang, name, **_sample_values(optout.REPLIES[name]))
        assert _REPLY.match(line), line
        assert line.startswith(code + " ")


def test_english_intake_replies_are_unchanged() -> None:
    assert intake.REPLIES["auth_required"].startswith("550 5.7.1 Reports are accepted only")
    assert intake.reply("en", "accepted", id="abc") == "250 2.0.0 Report accepted as abc"
    assert intake.reply("en", "unmatched", id="abc", why="no-delivery") == (
        "250 2.0.0 Report kept as abc, but it lists nothing: "
        + intake.UNMATCHED_WHY["no-delivery"])
    assert intake.reply("en", "unusable", sentence=reports.NO_ORIGINAL) == (
        "550 5.6.0 " + reports.NO_ORIGINAL)


def test_vietnamese_intake_replies() -> None:
    assert intake.reply("vi", "accepted", id="abc") == "250 2.0.0 Da nhan bao cao, ma abc"
    assert intake.reply("vi", "unmatched", id="abc", why="not-a-recipient") == (
        "250 2.0.0 Da luu bao cao voi ma abc, nhung bao cao nay khong dan den viec chan "
        "nao: thu do khong duoc he thong nay chuyen den ban")
    assert intake.reply("vi", "unusable", sentence=reports.NOTHING_ACTIONABLE) == (
        "550 5.6.0 Thu bi bao cao khong cho biet may chu gui, ten mien nguoi gui hay "
        "lien ket nao co the xu ly.")
    # a sentence the catalogue does not know is passed on (folded)
    assert intake.reply("vi", "unusable", sentence="Lỗi lạ") == "550 5.6.0 Loi la"
    assert optout.reply("vi", "done", adv="shop-vn", rcpt="an@example.vn") == (
        "250 2.0.0 Da ghi nhan an@example.vn tu choi quang cao tu shop-vn")
