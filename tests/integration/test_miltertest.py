"""The milter protocol, spoken by miltertest (the reference libmilter client) to a real
`spamwarden milter` process, with DNS answered by the local test DNS server.

The Lua script (tests/data/miltertest/protocol.lua) says what it checks; the message it sends
is built and DKIM-signed here and handed over with `-D name=value`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.messages import make_message, split_message
from tests.support.milterproc import MilterProcess, spamwarden_command

pytestmark = pytest.mark.integration

AUTHSERV_ID = "mx.test"
SCRIPT = Path(__file__).resolve().parent.parent / "data" / "miltertest" / "protocol.lua"


def offline_reject_text(milter: MilterProcess, raw: bytes, tmp: Path) -> str:
    """The 550 text the milter should give for `raw`, from `spamwarden check` run offline with
    the milter's own config and the same envelope (the one pipeline, two front ends)."""
    message = tmp / "forged.eml"
    message.write_bytes(raw)
    config = milter.argv[milter.argv.index("--config") + 1]
    done = subprocess.run([*spamwarden_command(), "check", "--config", config, str(message),
                           "--client-ip", "127.0.0.1", "--helo", "client.test",
                           "--mail-from", "security@bank.test", "--rcpt", "user@test.local",
                           "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["action"] == "reject", verdict
    # The milter's reject reply: "550 5.7.1 message rejected as spam: <reason>; see <URL>",
    # the URL being milter.lookup_url (default: the API's lookup page).
    from spamwarden.config import load_config

    return (f"message rejected as spam: {verdict['reason']}; "
            f"see {load_config(config).milter.lookup_url}")


@pytest.mark.parametrize("workers", [1, 2])
def test_miltertest_script_drives_every_protocol_stage(spamwarden_milter, dns_server,
                                                       module_redis_url, auth_zone,
                                                       tmp_path: Path, workers: int) -> None:
    miltertest = "/usr/bin/miltertest"
    if not Path(miltertest).exists():
        pytest.fail("miltertest is not installed; run `make test`, which installs it")
    # workers = 2: two processes share the socket; the script's connections go to either
    milter = spamwarden_milter(nameservers=[dns_server.address], redis_url=module_redis_url,
                               authserv_id=AUTHSERV_ID,
                               overrides={"milter": {"workers": workers}})
    raw, _ = make_message(from_addr="Alice <alice@good.test>", subject="Protocol check")
    headers, body = split_message(auth_zone.good_rsa.sign(raw))
    forged_raw, _ = make_message(from_addr="Bank Security <security@bank.test>",
                                 subject="Verify your account",
                                 body="Please confirm your password at the link below.\r\n")
    forged, forged_body = split_message(forged_raw)
    reject_text = offline_reject_text(milter, forged_raw, tmp_path)
    defines = {
        "socket": milter.libmilter_socket, "authserv_id": AUTHSERV_ID,
        "dkim_signature": headers["DKIM-Signature"], "hdr_from": headers["From"],
        "hdr_to": headers["To"], "hdr_subject": headers["Subject"], "hdr_date": headers["Date"],
        "hdr_message_id": headers["Message-ID"], "body": body,
        "forged_from": forged["From"], "forged_subject": forged["Subject"],
        "forged_date": forged["Date"], "forged_message_id": forged["Message-ID"],
        "forged_body": forged_body, "reject_text": reject_text,
    }
    args = [miltertest, "-vv", "-s", str(SCRIPT)]
    for name, value in defines.items():
        args += ["-D", f"{name}={value}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "miltertest: ok" in output, (
        f"miltertest exited {done.returncode}:\n{output}\nmilter log:\n{milter.log()[-3000:]}")
    # libmilter's connection socket was found, so Postfix's packets are acknowledged at once
    assert "milter_quickack_on" in milter.log() and "milter_quickack_off" not in milter.log()
    # the listing lookup follows the change stream (answers kept until a listing changes)
    assert "listing_changes_followed" in milter.log()
    # The script echoes what the milter added; check the results line parses as RFC 8601.
    added = re.search(r"^Authentication-Results: (.*)$", output, re.MULTILINE)
    assert added is not None and added.group(1).strip().startswith(AUTHSERV_ID + ";")
