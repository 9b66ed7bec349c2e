"""The contract: Schemathesis runs every check (positive and negative data; the examples,
coverage, fuzzing and stateful phases) against the real server, started as `make run` starts it,
and finds nothing, but for the one named exception in tests/schemathesis.toml: a password (or a
mailed link's token) the document allows may still be refused, since the common-password check
is no JSON Schema rule.

The run's settings are in tests/schemathesis.toml and its hooks in tests/contract_hooks.py; the
same command runs by hand against any server (see the README's development section).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import RATE_LIMIT_SETTINGS, ROOT

pytestmark = pytest.mark.e2e

TESTS = os.path.join(ROOT, "tests")
EXAMPLES_PER_OPERATION = 50
# The limits would turn most of a long run into 429s; they have tests of their own.
GENEROUS = "100000 per minute"


def schemathesis_command(base_url: str, report_dir) -> list[str]:
    schemathesis_cli = os.path.join(os.path.dirname(sys.executable), "st")
    return [
        schemathesis_cli,
        "--config-file",
        os.path.join(TESTS, "schemathesis.toml"),
        "run",
        f"{base_url}/openapi.json",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--report-dir",
        str(report_dir),
        "--no-color",
    ]


def test_schemathesis_with_every_check_finds_nothing_but_the_named_exception(launcher, tmp_path):
    launcher.env.update(dict.fromkeys(RATE_LIMIT_SETTINGS, GENEROUS))
    launcher.env.update(
        PASSWORD_HASH_TIME_COST="1",  # cheap hashes: the run signs up many accounts
        PASSWORD_HASH_MEMORY_KIB="1024",
        LOGIN_LOCKOUT_THRESHOLD="1000000",
        REQUEST_LOG="false",
    )
    launcher.start()
    result = subprocess.run(
        schemathesis_command(launcher.base_url, tmp_path / "report"),
        cwd=TESTS,
        env=dict(os.environ, CONTRACT_BASE_URL=launcher.base_url, PYTHONPATH=TESTS),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    print(output[-3000:])  # the summary, with -s
    assert result.returncode == 0, f"{output}\n--- server log\n{launcher.log()}"
    assert "selected / " in output and "Selected: 0" not in output
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output, phase
