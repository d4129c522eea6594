"""SpamAssassin settings a rule file may hold that this engine does not act on.

A site's ``local.cf`` is written for SpamAssassin, and most of its lines are not rules:
``required_score 6``, ``rewrite_header Subject *****SPAM*****``, ``report_safe 0``,
``use_bayes 0``.  This engine reads rules, scores, descriptions, tflags, the replace tags,
the relay networks and the list settings (welcome/block lists, ``enlist_*``,
``freemail_domains``); every other line is left alone.  Left alone silently, a
``required_score 6`` would change a site's threshold on migration without a word, and a
misspelt ``welcomelist_form`` would be no list at all, so each such line of a site's own
files is a ``spamwarden rules --lint`` problem: a SpamAssassin setting, with where its
counterpart lives here if there is one, or a name SpamAssassin does not know either.

The names are SpamAssassin 4.0's settings (``setting =>`` and ``aliases =>`` of Conf.pm
and the plugins Debian ships, and the parser's own keywords).
"""

from __future__ import annotations

__all__ = ["SA_SETTINGS", "unread_setting"]

#: every setting name SpamAssassin 4.0 and its shipped plugins accept
SA_SETTINGS: frozenset[str] = frozenset("""
    add_header adsp_override all_spam_to allow_user_rules always_trust_envelope_sender
    askdns asn_lookup asn_lookup_ipv6 asn_prefer_geodb asn_prefix asn_use_dns asn_use_geodb
    authres_ignored_authserv authres_networks authres_trusted_authserv
    auto_welcomelist_db_modules auto_welcomelist_distinguish_signed auto_welcomelist_factor
    auto_welcomelist_factory auto_welcomelist_file_mode auto_welcomelist_ipv4_mask_len
    auto_welcomelist_ipv6_mask_len auto_welcomelist_path auto_whitelist_db_modules
    auto_whitelist_distinguish_signed auto_whitelist_factor auto_whitelist_factory
    auto_whitelist_file_mode auto_whitelist_ipv4_mask_len auto_whitelist_ipv6_mask_len
    auto_whitelist_path bayes_auto_expire bayes_auto_learn bayes_auto_learn_on_error
    bayes_auto_learn_threshold_nonspam bayes_auto_learn_threshold_spam
    bayes_expiry_max_db_size bayes_file_mode bayes_ignore_from bayes_ignore_header
    bayes_ignore_to bayes_journal_max_size bayes_learn_during_report bayes_learn_to_journal
    bayes_max_token_length bayes_min_ham_num bayes_min_spam_num bayes_path bayes_seen_ttl
    bayes_sql_dsn bayes_sql_override_username bayes_sql_password bayes_sql_username
    bayes_sql_username_authorized bayes_stopword_languages bayes_store_module
    bayes_token_sources bayes_token_ttl bayes_use_hapaxes blacklist_from blacklist_subject
    blacklist_to blacklist_uri_host blocklist_from blocklist_subject blocklist_to body
    body_part_scan_size clear_asn_lookups clear_dns_query_restriction
    clear_dns_query_restrictions clear_dns_servers clear_headers clear_internal_networks
    clear_msa_networks clear_originating_ip_headers clear_report_template
    clear_trusted_networks clear_unsafe_report_template clear_uridnsbl_skip_domain
    clear_url_shortener clear_util_rb country_db_path country_db_type dcc_body_max
    dcc_dccifd_path dcc_fuz1_max dcc_fuz2_max dcc_home dcc_learn_score dcc_options dcc_path
    dcc_rep_percent dcc_timeout dccifd_options def_welcomelist_auth
    def_welcomelist_from_dkim def_welcomelist_from_rcvd def_welcomelist_from_spf
    def_whitelist_auth def_whitelist_from_dkim def_whitelist_from_rcvd
    def_whitelist_from_spf describe descriptions dkim_minimum_key_bits dkim_timeout
    dmarc_save_reports dns_available dns_block_rule dns_block_time dns_local_ports_avoid
    dns_local_ports_none dns_local_ports_permit dns_options dns_query_restriction dns_server
    dns_test_interval do_not_use_mail_spf do_not_use_mail_spf_query else enable_compat endif
    enlist_addrlist enlist_uri_host envelope_sender_header extracttext_maxparts
    extracttext_timeout file fns_add_addrlist fns_check fns_extrachars fns_ignore_dkim
    fns_ignore_headers fns_remove_addrlist fold_headers freemail_add_describe_email
    freemail_domains freemail_import_def_welcomelist_auth freemail_import_def_whitelist_auth
    freemail_import_welcomelist_auth freemail_import_whitelist_auth freemail_max_body_emails
    freemail_max_body_freemails freemail_skip_bulk_envfrom freemail_skip_when_over_max full
    geodb_module geodb_options geodb_search_path hashbl_email_domain_alias
    hashbl_email_regex hashbl_email_welcomelist hashbl_email_whitelist hashbl_ignore header
    if ifplugin ignore_always_matching_regexps ignore_received_spf_header inactive_languages
    include internal_networks lang loadplugin lock_method max_short_url_redirections
    max_short_urls mbox_format_from_regex meta mimeheader more_spam_to msa_networks
    normalize_charset ok_languages ok_locales olemacro_download_marker
    olemacro_extended_scan olemacro_exts olemacro_macro_exts olemacro_max_file
    olemacro_num_mime olemacro_num_zip olemacro_prefer_contentdisposition
    olemacro_skip_ctypes olemacro_skip_exts olemacro_zip_depth olemacro_zips
    originating_ip_headers parse_dkim_uris phishing_openphish_feed phishing_phishstats_feed
    phishing_phishstats_minscore phishing_phishtank_feed phishing_uri_noparam priority
    pyzor_count_min pyzor_fork pyzor_max pyzor_options pyzor_path pyzor_perl
    pyzor_server_file pyzor_timeout pyzor_welcomelist_factor pyzor_welcomelist_min
    pyzor_whitelist_factor pyzor_whitelist_min rawbody rawbody_part_scan_size razor_config
    razor_fork razor_timeout rbl_headers rbl_timeout redirector_pattern remove_header
    replace_end replace_inter replace_post replace_pre replace_rules replace_start
    replace_tag report report_charset report_contact report_hostname report_safe
    report_safe_copy_headers report_template report_wrap_width require_version required_hits
    required_score resource_limit_cpu resource_limit_mem reuse rewrite_header
    run_reuse_tests_only score shortcircuit shortcircuit_ham_score
    shortcircuit_max_spam_score shortcircuit_min_ham_score shortcircuit_spam_score
    skip_rbl_checks skip_uribl_checks spamcop_from_address spamcop_max_report_size
    spamcop_relayhost spamcop_to_address spf_timeout subjprefix test
    textcat_acceptable_score textcat_max_languages textcat_max_ngrams textcat_optimal_ngrams
    tflags time_limit trigger_config trigger_ratio trigger_target trusted_networks tryplugin
    txrep_autolearn txrep_dilution_factor txrep_expiry_days txrep_factor txrep_factory
    txrep_ipv4_mask_len txrep_ipv6_mask_len txrep_learn_bonus txrep_learn_penalty
    txrep_report_details txrep_spf txrep_track_messages txrep_user2global_ratio
    txrep_weight_domain txrep_weight_email txrep_weight_email_ip txrep_weight_helo
    txrep_weight_ip txrep_welcomelist_out txrep_whitelist_out unblacklist_from unsafe_report
    unsafe_report_template unwelcomelist_auth unwelcomelist_from_dkim
    unwelcomelist_from_rcvd unwelcomelist_from_spf unwhitelist_auth unwhitelist_from
    unwhitelist_from_dkim unwhitelist_from_rcvd unwhitelist_from_spf uri uri_block_cc
    uri_block_cidr uri_block_cont uri_block_exclude uri_block_isp uri_country_db_isp_path
    uri_country_db_path uri_detail uri_host_lists uridnsbl uridnsbl_max_domains
    uridnsbl_skip_domain uridnsbl_skip_mailto uridnsbl_timeout uridnssub urifullnsrhsbl
    urifullnsrhssub urinsrhsbl urinsrhssub urirhsbl urirhssub url_shortener
    url_shortener_cache_autoclean url_shortener_cache_dsn url_shortener_cache_password
    url_shortener_cache_ttl url_shortener_cache_type url_shortener_cache_username
    url_shortener_get url_shortener_loginfo url_shortener_timeout url_shortener_user_agent
    use_auto_welcomelist use_auto_whitelist use_bayes use_bayes_rules use_dcc use_dcc_rep
    use_learner use_newest_received_spf_header use_pyzor use_razor2 use_txrep user_awl_dsn
    user_awl_sql_override_username user_awl_sql_password user_awl_sql_table
    user_awl_sql_username user_scores_dsn user_scores_fallback_to_global
    user_scores_ldap_password user_scores_ldap_username user_scores_sql_custom_query
    user_scores_sql_password user_scores_sql_username util_rb_2tld util_rb_3tld util_rb_tld
    version_tag welcomelist_allows_relays welcomelist_auth welcomelist_bounce_relays
    welcomelist_from welcomelist_from_dkim welcomelist_from_rcvd welcomelist_from_spf
    welcomelist_subject welcomelist_to whitelist_allows_relays whitelist_auth
    whitelist_bounce_relays whitelist_from whitelist_from_dkim whitelist_from_rcvd
    whitelist_from_spf whitelist_subject whitelist_to whitelist_uri_host
""".split())

#: families of settings named by a prefix (one per language)
_PREFIXES = ("bayes_stopword_",)

#: lines that change nothing a site would miss here: translations and plugin loading
#: (a rule that needs a plugin this engine lacks is reported on its own)
_SILENT = frozenset({"lang", "loadplugin", "tryplugin", "require_version", "version_tag",
                     "file"})

_THRESHOLD = "spamwarden tags at [policy] tag_threshold (5.0 by default) and per recipient " \
             "with `spamwarden settings`"
_HEADERS = "spamwarden writes its own X-Spam-* headers and never rewrites the message"
_BAYES = "the classifier stands in for Bayes: see [training] and `spamwarden learn`"
_NETWORK = "SpamAssassin's network tests do not run here; DNS lists are [[rbl.external]]"
_LISTS = "sender allow/deny lists per recipient: `spamwarden allow` / `spamwarden deny`"

#: settings with a counterpart in spamwarden's own configuration, and where it is
COUNTERPARTS: dict[str, str] = {
    "required_score": _THRESHOLD,
    "required_hits": _THRESHOLD,
    "rewrite_header": _HEADERS,
    "add_header": _HEADERS,
    "remove_header": _HEADERS,
    "clear_headers": _HEADERS,
    "report_safe": _HEADERS,
    "use_bayes": _BAYES,
    "use_bayes_rules": _BAYES,
    "bayes_auto_learn": _BAYES,
    "bayes_path": _BAYES,
    "skip_rbl_checks": _NETWORK,
    "dns_available": _NETWORK,
    "dns_server": "[dns] nameservers",
    "use_auto_whitelist": "no auto-welcomelist here; " + _LISTS,
    "use_auto_welcomelist": "no auto-welcomelist here; " + _LISTS,
    "use_txrep": "no TxRep here; " + _LISTS,
}


def unread_setting(key: str) -> str | None:
    """Why a line starting with ``key`` has no effect here, in one line.

    :param key: the line's first word, lower case.
    :returns: the message for ``rules --lint``; ``None`` for lines that need no word
        (translations, plugin loading).
    """
    if key in _SILENT:
        return None
    if key in SA_SETTINGS or key.startswith(_PREFIXES):
        where = COUNTERPARTS.get(key)
        return (f"{key}: a SpamAssassin setting this engine does not act on"
                + (f" ({where})" if where else ""))
    return f"{key}: not a setting SpamAssassin or this engine knows (a misspelt name?)"
