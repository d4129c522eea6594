"""Pure message handling shared by every part of spamwarden.

Bounded parsing of raw RFC 5322 bytes, decoded subject and text, URLs, sender
domains, registrable domains (Public Suffix List) and the advertising label;
:func:`decode_with_charset` decodes octets in a MIME charset as the rest does.
No I/O and no exceptions for bad input.  This package imports nothing else from
spamwarden: it is the bottom of the dependency graph.

Two parses of a message, for two jobs: :func:`parse_message` gives the
:class:`MessageView` the milter scores (tuned for speed on the stdlib's MIME
parser), and the structural MIME layer (:func:`walk_entities` and its pieces)
takes a message apart byte-exactly, for finding a reported message inside a
complaint.  ``Received`` fields are read by :func:`received_client_ip`,
:func:`first_untrusted_hop` and :func:`submission`.

:func:`install_boundary_matcher` makes the standard library's MIME parser match
boundary lines without compiling a regular expression per message; servers call
it once at start-up (it changes ``email.feedparser`` for the whole process).
:class:`ParamsMessage` is the stdlib's ``Message`` with its MIME parameters read in
linear time from the first :data:`MAX_PARAM_CHARS` characters of a field; both parses
on the stdlib build their trees of it.
"""

from ._authnames import (
    MAX_DKIM_DOMAINS,
    authenticated_domains,
    authenticated_names,
    spf_passed_domain,
    spf_vouches,
)
from ._boundary import MAX_DELIMITERS, MAX_NESTING, NESTED_TOO_DEEP, cut_delimiters
from ._boundary import install as install_boundary_matcher
from ._domains import (
    canonical_address,
    domain_key,
    domain_of_address,
    fold_extension,
    is_ip_literal,
    is_private_suffix_domain,
    normalize_domain,
    registrable_domain,
    unquote_local,
)
from ._message import (
    DEFAULT_AD_LABELS,
    MAX_LATE_FROM,
    MessageView,
    ParseLimits,
    Part,
    ad_label,
    decode_header_value,
    decode_with_charset,
    extract_urls,
    html_to_text,
    link_domains,
    parse_message,
    parse_tag_list,
    strip_mbox_from,
    url_domain,
    valid_text,
)
from ._mime import (
    Entity,
    content_parameters,
    decoded_body,
    entity_filename,
    entity_text,
    header_fields,
    parse_content_type,
    parse_header_fields,
    split_head,
    split_multipart,
    walk_entities,
)
from ._params import MAX_PARAM_CHARS, ParamsMessage
from ._received import (
    Network,
    Submission,
    first_untrusted_hop,
    is_routable,
    parse_networks,
    received_client_ip,
    received_helo_and_ip,
    submission,
    submission_authenticated,
    unmapped,
    valid_ip,
)

__all__ = [
    "MAX_LATE_FROM",
    "canonical_address",
    "fold_extension",
    "unquote_local",
    "MAX_DKIM_DOMAINS",
    "authenticated_domains",
    "authenticated_names",
    "DEFAULT_AD_LABELS",
    "Entity",
    "MAX_DELIMITERS",
    "MAX_PARAM_CHARS",
    "MessageView",
    "Network",
    "ParamsMessage",
    "ParseLimits",
    "Part",
    "Submission",
    "ad_label",
    "content_parameters",
    "cut_delimiters",
    "MAX_NESTING",
    "NESTED_TOO_DEEP",
    "decode_header_value",
    "decode_with_charset",
    "decoded_body",
    "domain_key",
    "domain_of_address",
    "entity_filename",
    "entity_text",
    "extract_urls",
    "first_untrusted_hop",
    "header_fields",
    "html_to_text",
    "install_boundary_matcher",
    "is_ip_literal",
    "is_private_suffix_domain",
    "is_routable",
    "normalize_domain",
    "parse_content_type",
    "parse_header_fields",
    "parse_message",
    "parse_networks",
    "parse_tag_list",
    "received_client_ip",
    "received_helo_and_ip",
    "registrable_domain",
    "spf_passed_domain",
    "spf_vouches",
    "split_head",
    "split_multipart",
    "strip_mbox_from",
    "submission",
    "submission_authenticated",
    "link_domains",
    "url_domain",
    "unmapped",
    "valid_text",
    "valid_ip",
    "walk_entities",
]
