#!/usr/bin/env python3
"""Write spamassassin.json: what SpamAssassin 4.0 itself hits on these messages.

Runs Debian's ``spamassassin`` offline (``-L -t``) once per message and list setting,
with a private site folder (Debian's ``*.pre`` files, so the same plugins and
``enable_compat welcomelist_blocklist`` as an installed SpamAssassin, and a
``local.cf`` holding the setting's lines) and a private home folder, and keeps the
WLBLEval and WelcomeListSubject rules it reports.  Run from the repository:

    python3 tests/data/wlbl/regenerate.py
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: rules of WLBLEval's check_*_in_list evals on the enlist_addrlist list MYLIST
LIST_RULES = [
    "header LOCAL_IN_LIST_FROM eval:check_from_in_list('MYLIST')", "score LOCAL_IN_LIST_FROM 0.01",
    "header LOCAL_IN_LIST_REPLYTO eval:check_replyto_in_list('MYLIST')",
    "score LOCAL_IN_LIST_REPLYTO 0.01",
    "header LOCAL_IN_LIST_TO eval:check_to_in_list('MYLIST')", "score LOCAL_IN_LIST_TO 0.01",
]
#: list settings, each tried on every message
CONFIGS: list[list[str]] = [
    ["whitelist_from *@example.com", "blacklist_to bob@example.org",
     "welcomelist_subject *pills*", "blocklist_uri_host example.net",
     "more_spam_to carol@example.org"],
    ["welcomelist_from_rcvd *@example.com example.com",
     "def_welcomelist_from_rcvd joe@example.org [203.0.113]",
     "blocklist_from a?ice@EXAMPLE.com", "all_spam_to *@example.org",
     "whitelist_uri_host !www.shop.example.net example.net"],
    ["welcomelist_from alice@example.com", "unwelcomelist_from ALICE@example.com",
     "welcomelist_from_rcvd *@example.com [203.0.113.0/24]",
     "blocklist_subject viagra", "welcomelist_to bob@example.org"],
    ["whitelist_from_rcvd *@example.com mail.example.com",
     "unwhitelist_from_rcvd *@example.com",
     "def_whitelist_from_rcvd *@example.com example.com",
     "blacklist_subject cheap?pills", "blocklist_from joe@*"],
    ["welcomelist_from_rcvd *@example.com [2001:db8::]/32",
     "welcomelist_from_rcvd alice@example.com [10.0.0]",
     "blocklist_from *@*", "blocklist_to *@example.org",
     "welcomelist_uri_host 198.51.100.20 sub.example.net",
     "blocklist_uri_host example.com"],
    ["trusted_networks 203.0.113.0/24",
     "welcomelist_from_rcvd *@example.com example.com",
     "welcomelist_from_rcvd zed@example.com example.com"],
    ["welcomelist_from *@example.com", "unwelcomelist_from *@example.com",
     "welcomelist_from ?@example.com", "blocklist_from *@*.example.com",
     "welcomelist_to *@example.org", "unwelcomelist_from *@example.org",
     "enlist_addrlist (blocklist_to) dave@example.org"],
    ["blocklist_subject café", "welcomelist_subject big?ca*deal fold*", "blocklist_subject offer  today"],
    ["enlist_addrlist (MYLIST) ann@example.com *@bank.example", *LIST_RULES],
    ["enlist_addrlist (MYLIST) joe@example.[nm]et x?example.com ?@example.com", *LIST_RULES],
    ["welcomelist_from *@bank.example", "enlist_addrlist (welcomelist_from) *@example.org",
     *(r.replace("'MYLIST'", "'welcomelist_from'") for r in LIST_RULES)],
]
RULE = re.compile(r"^(?:USER_IN_|SUBJECT_IN_|URI_HOST_IN_|LOCAL_IN_LIST_)")


def run(message: Path, config: list[str], site: Path, home: Path) -> list[str]:
    """The list rules SpamAssassin hits on one message with one setting."""
    (site / "local.cf").write_text("\n".join(config + ["add_header all Wlbl _TESTS(,)_"])
                                   + "\n")
    out = subprocess.run(
        ["spamassassin", "-L", "-t", f"--siteconfigpath={site}"],
        input=message.read_bytes(), capture_output=True, check=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"}).stdout.decode("latin-1")
    m = re.search(r"^X-Spam-Wlbl: (.*(?:\n[ \t].*)*)", out, re.MULTILINE)
    tests = re.sub(r"\s+", "", m.group(1)).split(",") if m else []
    return sorted(t for t in tests if RULE.match(t))


def main() -> None:
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        site, home = Path(tmp) / "site", Path(tmp) / "home"
        site.mkdir()
        home.mkdir()
        for pre in Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(pre, site / pre.name)
        for message in sorted(HERE.glob("*.eml")):
            for config in CONFIGS:
                cases.append({"message": message.stem, "config": config,
                              "hits": run(message, config, site, home)})
    (HERE / "spamassassin.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
