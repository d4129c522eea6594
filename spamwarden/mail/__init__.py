"""Pure message handling shared by every part of spamwarden.

Bounded parsing of raw RFC 5322 bytes, decoded subject and text, URLs, sender
domains, registrable domains (Public Suffix List) and the advertising label.
No I/O and no exceptions for bad input.

:func:`install_boundary_matcher` makes the standard library's MIME parser match
boundary lines without compiling a regular expression per message; servers call
it once at start-up (it changes ``email.feedparser`` for the whole process).
"""

from ._boundary import install as install_boundary_matcher
from ._domains import (
    domain_of_address,
    is_ip_literal,
    is_private_suffix_domain,
    normalize_domain,
    registrable_domain,
)
from ._message import (
    DEFAULT_AD_LABELS,
    MessageView,
    ParseLimits,
    Part,
    ad_label,
    decode_header_value,
    extract_urls,
    html_to_text,
    parse_message,
    parse_tag_list,
    strip_mbox_from,
    url_domain,
)

__all__ = [
    "DEFAULT_AD_LABELS",
    "MessageView",
    "ParseLimits",
    "Part",
    "ad_label",
    "decode_header_value",
    "domain_of_address",
    "extract_urls",
    "html_to_text",
    "install_boundary_matcher",
    "is_ip_literal",
    "is_private_suffix_domain",
    "normalize_domain",
    "parse_message",
    "parse_tag_list",
    "registrable_domain",
    "strip_mbox_from",
    "url_domain",
]
