"""bench/redis/memory.py, the sizing figures of docs/operations.md ("Redis memory"), still
runs and measures something: a few corpus messages through the milter's own scanner."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED, shared_path

pytestmark = pytest.mark.integration


def test_the_redis_memory_measurement_runs() -> None:
    shared_path("corpus", "spamassassin", "ham")
    env = {**os.environ, "SPAMWARDEN_SHARED": str(SHARED), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "bench/redis/memory.py", "--messages", "40",
                           "--recipients", "2"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = dict(re.findall(r"^\s+(delivered|history entry|together)\S*\s.*?(\d+) bytes/message",
                              done.stdout, re.M))
    assert set(figures) == {"delivered", "history entry", "together"}, done.stdout
    # two recipients: a record, content and Message-ID keys, each recipient's two index keys
    assert 500 < int(figures["delivered"]) < 20_000, done.stdout
    assert int(figures["together"]) > int(figures["delivered"]), done.stdout
    keys = re.search(r"([\d.]+) keys/message", done.stdout)
    assert keys is not None and float(keys.group(1)) >= 7, done.stdout
