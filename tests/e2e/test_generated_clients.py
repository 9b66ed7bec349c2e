"""Clients generated from /openapi.json, unedited, run a whole flow against the real server
(`make run`): the TypeScript one (openapi-typescript types, openapi-fetch calls, tsc --strict)
and the Python one (openapi-python-client). Tool versions are pinned in package.json and
requirements-dev.txt; each test prints the versions it ran."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

EXAMPLES = os.path.join(ROOT, "examples")
NODE_MODULES = os.path.join(ROOT, "node_modules")
COVER = os.path.join(EXAMPLES, "postman", "cover.png")
PYTHON_CLIENT = os.path.join(EXAMPLES, "python", "client.py")

pytestmark = pytest.mark.e2e


def node_tools(*names: str) -> None:
    """Skip (fail in CI) when the npm tools are not installed."""
    missing = [name for name in names if not os.path.isdir(os.path.join(NODE_MODULES, name))]
    if shutil.which("node") and not missing:
        return
    message = f"{', '.join(missing) or 'node'} not installed: run `npm ci` (Node.js 18 or later)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def version(package: str) -> str:
    with open(os.path.join(NODE_MODULES, package, "package.json"), encoding="utf-8") as handle:
        return f"{package} {json.load(handle)['version']}"


def run(command: list[str], cwd: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    print(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
    return result


def mail_dir(launcher) -> str:
    """Where the server writes its mails, as `make run` does: the clients read the sign-up link there."""
    return str(launcher.instance / "mail")


def test_the_typescript_client_type_checks_strictly_and_runs_the_flow(launcher, tmp_path):
    node_tools("openapi-typescript", "openapi-fetch", "typescript")
    print(", ".join(version(name) for name in ("openapi-typescript", "openapi-fetch", "typescript")))
    launcher.env["MAIL_SENDER"] = "true"  # as `make run`: mails become files, the clients read a link there
    launcher.start()
    for name in ("client.ts", "tsconfig.json"):
        shutil.copy(os.path.join(EXAMPLES, "typescript", name), tmp_path)
    os.symlink(NODE_MODULES, tmp_path / "node_modules")
    generate = os.path.join(EXAMPLES, "typescript", "generate.mjs")
    generated = run(["node", generate, f"{launcher.base_url}/openapi.json", "api.d.ts"], str(tmp_path))
    assert generated.returncode == 0
    tsc = os.path.join(NODE_MODULES, ".bin", "tsc")
    checked = run([tsc, "--strict", "--noEmit", "-p", "."], str(tmp_path))
    assert checked.returncode == 0, "the client does not type-check against the generated types"
    assert run([tsc, "-p", "."], str(tmp_path)).returncode == 0
    flow = run(
        ["node", "build/client.js"],
        str(tmp_path),
        API_URL=launcher.base_url,
        COVER_PATH=COVER,
        MAIL_DIR=mail_dir(launcher),
    )
    assert flow.returncode == 0, f"--- server log\n{launcher.log()}"
    assert flow.stdout.rstrip().endswith("ok - the access token no longer works after logging out")


def test_the_python_client_type_checks_strictly_and_runs_the_flow(launcher, tmp_path):
    generator = shutil.which("openapi-python-client", path=os.path.dirname(sys.executable))
    assert generator, "openapi-python-client is not installed: make install-dev (requirements-dev.txt)"
    launcher.env["MAIL_SENDER"] = "true"  # as `make run`: mails become files, the clients read a link there
    launcher.start()
    tools = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    print(run([generator, "--version"], str(tmp_path)).stdout.strip())
    generated = run(
        [generator, "generate", "--url", f"{launcher.base_url}/openapi.json", "--output-path", "client"],
        str(tmp_path),
        PATH=tools,  # it formats what it writes with ruff
    )
    assert generated.returncode == 0 and "Warning" not in generated.stdout + generated.stderr
    package = str(tmp_path / "client")
    checked = run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file", os.devnull, PYTHON_CLIENT],
        str(tmp_path),
        PYTHONPATH=package,
        MYPY_CACHE_DIR=str(tmp_path / "mypy"),
    )
    assert checked.returncode == 0, "the client does not type-check against the generated package"
    flow = run(
        [sys.executable, PYTHON_CLIENT],
        str(tmp_path),
        PYTHONPATH=package,
        API_URL=launcher.base_url,
        COVER_PATH=COVER,
        MAIL_DIR=mail_dir(launcher),
    )
    assert flow.returncode == 0, f"--- server log\n{launcher.log()}"
    assert flow.stdout.rstrip().endswith("ok - the access token no longer works after logging out")
