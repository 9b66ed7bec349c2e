"""Postman: the shipped collection runs green with newman against the real server, and
/openapi.json converts with openapi-to-postmanv2 (the converter Postman's importer uses) into
requests a user can send as they are."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from helpers import ROOT

POSTMAN = os.path.join(ROOT, "examples", "postman")
COLLECTION = os.path.join(POSTMAN, "book-library.postman_collection.json")
ENVIRONMENT = os.path.join(POSTMAN, "local.postman_environment.json")
NODE_BIN = os.path.join(ROOT, "node_modules", ".bin")


def node_tool(name: str) -> str:
    """The path of an npm tool from package.json; skipped (failed in CI) when it is missing."""
    path = os.path.join(NODE_BIN, name)
    if shutil.which("node") and os.path.exists(path):
        return path
    message = f"{name} is not installed: run `npm ci` (Node.js 18 or later) for the Postman tests"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def requests_of(items: list) -> list[dict]:
    """Every request of a collection, in run order, folders flattened."""
    found = []
    for item in items:
        found.extend(requests_of(item["item"]) if "item" in item else [item])
    return found


def script(item: dict, listen: str) -> str:
    return "\n".join(
        line for event in item.get("event", []) if event["listen"] == listen for line in event["script"]["exec"]
    )


# --- the shipped collection ------------------------------------------------------------------


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_every_request_of_the_collection_has_a_test_script():
    for item in requests_of(load(COLLECTION)["item"]):
        assert "pm.test(" in script(item, "test"), item["name"]


def test_the_collection_keeps_tokens_in_collection_variables_after_login_and_refresh():
    items = {item["name"]: item for item in requests_of(load(COLLECTION)["item"])}
    for name in ("Log in", "Refresh the tokens", "Log in, step 2: the code"):
        assert 'pm.collectionVariables.set("token"' in script(items[name], "test"), name
        assert 'pm.collectionVariables.set("refresh_token"' in script(items[name], "test"), name
    assert load(COLLECTION)["auth"]["bearer"][0]["value"] == "{{token}}"


def test_the_cover_upload_sends_a_file_of_the_repository():
    uploads = [
        field
        for item in requests_of(load(COLLECTION)["item"])
        for field in item["request"].get("body", {}).get("formdata", [])
        if field["type"] == "file"
    ]
    assert uploads and all(field["key"] == "cover_image" for field in uploads)
    for field in uploads:
        assert os.path.isfile(os.path.join(ROOT, field["src"])), field["src"]


def test_the_environment_points_at_the_address_make_run_serves():
    values = {value["key"]: value["value"] for value in load(ENVIRONMENT)["values"]}
    assert values == {"baseUrl": "http://127.0.0.1:5000"}


@pytest.mark.e2e
def test_newman_runs_the_collection_green_against_the_real_server(launcher, tmp_path):
    newman = node_tool("newman")
    launcher.start()
    report = tmp_path / "newman.json"
    result = subprocess.run(
        [
            newman,
            "run",
            COLLECTION,
            "--environment",
            ENVIRONMENT,
            "--env-var",
            f"baseUrl={launcher.base_url}",
            "--working-dir",
            ROOT,
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--color",
            "off",
            "--disable-unicode",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    print("\n".join(result.stdout.splitlines()[-18:]))  # newman's summary table (shown with -s)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- server log\n{launcher.log()}"
    stats = load(str(report))["run"]["stats"]
    assert stats["requests"]["total"] == len(requests_of(load(COLLECTION)["item"]))
    assert stats["requests"]["failed"] == 0
    assert stats["assertions"]["failed"] == 0
    assert stats["assertions"]["total"] >= stats["requests"]["total"]
