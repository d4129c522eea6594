"""A large-report load for ``spamwarden intake``: build big reports, run the real intake
command, read its peak resident set.  Used by ``tests/integration/test_intake_memory.py`` and
``bench/intake/memory.py``."""

from __future__ import annotations

import base64
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def big_report(n: int, size: int) -> bytes:
    """A report (forward as attachment) whose original carries ``size`` bytes in total."""
    rng = random.Random(n)
    head = (
        "Received: from mail.promo-shop.example (mail.promo-shop.example [198.51.100.23])\r\n"
        "\tby mx1.example.vn (Postfix) with ESMTP id 4XmZ9k2r7Lz3wQ\r\n"
        "\tfor <alice@example.vn>; Sun, 03 Nov 2024 21:01:09 +0700 (+07)\r\n"
        f"From: Promo Shop <deals@promo-shop{n}.example>\r\n"
        "To: alice@example.vn\r\n"
        f"Subject: [QC] big catalogue {n}\r\n"
        "Date: Sun, 03 Nov 2024 21:01:00 +0700\r\n"
        f"Message-ID: <big-{n}@promo-shop.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="inner"\r\n\r\n'
        "--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Buy now at https://www.promo-shop{n}.example/deal\r\n\r\n"
        "--inner\r\nContent-Type: application/pdf; name=catalogue.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    room = size - len(head) - 200
    blob = rng.randbytes(room // 78 * 57)  # base64: 57 bytes a 76-character line
    b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    original = head + b64 + b"\r\n--inner--\r\n"
    outer = (
        # our MTA's submission hop: the reporter logged in (intake.require_auth)
        "Received: from [127.0.0.1] (localhost [127.0.0.1])\r\n"
        f"\t(Authenticated sender: user{n}@example.vn)\r\n"
        "\tby mx1.example.vn (Postfix) with ESMTPSA id 4XmZ9k2r7Lz3wR\r\n"
        "\tfor <report@example.vn>; Sun, 03 Nov 2024 21:05:00 +0700 (+07)\r\n"
        f"From: Reporter {n} <user{n}@example.vn>\r\n"
        "To: report@example.vn\r\n"
        "Subject: Fwd: [QC] big catalogue\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        "--outer\r\nContent-Type: text/plain\r\n\r\nspam\r\n\r\n"
        "--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    ).encode()
    return outer + original + b"\r\n--outer--\r\n"


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set of ``pid`` in kB (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningIntake:
    """``spamwarden intake`` on a free port against ``redis_url``, as a child process."""

    def __init__(self, workdir: Path, redis_url: str, extra: str = "") -> None:
        self.port = free_port()
        conf = workdir / "spamwarden.toml"
        conf.write_text(
            f'[service]\nstate_dir = "{workdir}"\n'
            f'[intake]\nlisten = "127.0.0.1:{self.port}"\nlocal_domains = ["example.vn"]\n'
            f"{extra}"
        )
        env = dict(os.environ, SPAMWARDEN_REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spamwarden", "intake", "--config", str(conf)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as s:
                    s.noop()
                return
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("intake did not start") from exc
                time.sleep(0.1)

    def send_at_once(self, reports: list[bytes]) -> list[str]:
        """Send every report in its own session, all at once; the replies, in order."""
        replies = [""] * len(reports)
        go = threading.Barrier(len(reports))

        def one(i: int) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=300) as s:
                    s.ehlo()
                    go.wait()
                    s.mail(f"user{i}@example.vn")
                    s.rcpt("report@example.vn")
                    code, text = s.data(reports[i])
                    replies[i] = f"{code} {text.decode(errors='replace')}"
            except smtplib.SMTPResponseException as exc:
                replies[i] = f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(reports))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        return replies

    def peak_mb(self) -> float:
        return vm_hwm_kb(self.proc.pid) / 1024

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")
