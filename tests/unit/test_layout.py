"""The house rules, read from the source: dependencies run one way (views, then services, then
models, then the database client), nothing imports a view but app.py, no import cycles, every
logger in the app's namespace, every collection with one owner. No app, no database."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

import helpers

ROOT = Path(helpers.ROOT)
PACKAGES = ("api", "auth", "covers", "database", "logs", "mail", "workflows")
ROOT_MODULES = ("app", "auth_middleware", "models", "validate", "save_image", "config", "launcher")
# The views: one blueprint module per URL. The rest of api/ is what they share.
VIEWS = {f"api.{name}" for name in ("users", "login", "sessions", "password", "email", "mfa", "books", "covers")} | {
    "api.meta",
    "api.docs",
    "api.web_app",
}
SERVICES = ("auth", "mail", "covers", "workflows")


def module_files() -> dict[str, Path]:
    found = {name: ROOT / f"{name}.py" for name in ROOT_MODULES}
    for package in PACKAGES:
        for path in (ROOT / package).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


MODULES = module_files()


def imports_of(path: Path) -> set[str]:
    """The project's modules a file imports (at any depth of the file: lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in MODULES}
    return found


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def layer(name: str) -> str:
    top = name.split(".")[0]
    if name in VIEWS:
        return "view"
    return {"api": "http", "database": "database", "logs": "logs", "models": "models"}.get(
        top, "service" if top in SERVICES else top
    )


def test_the_modules_were_found():
    assert {"app", "models", "api.books", "auth.passwords", "mail.outbox", "workflows.accounts"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_app_imports_a_view(name):
    if name == "app":
        return
    assert not GRAPH[name] & VIEWS, f"{name} imports a view: {sorted(GRAPH[name] & VIEWS)}"


@pytest.mark.parametrize("name", sorted(name for name in MODULES if layer(name) in ("service", "models", "database")))
def test_services_models_and_the_database_never_import_the_http_layer(name):
    upward = {other for other in GRAPH[name] if other.split(".")[0] == "api" or other == "app"}
    assert not upward, f"{name} imports {sorted(upward)}"


@pytest.mark.parametrize("name", sorted(name for name in MODULES if layer(name) in ("models", "database")))
def test_models_and_the_database_import_no_service(name):
    services = {other for other in GRAPH[name] if layer(other) == "service" or other == "auth_middleware"}
    assert not services, f"{name} imports {sorted(services)}"


@pytest.mark.parametrize("name", sorted(name for name in MODULES if layer(name) == "database"))
def test_the_database_layer_imports_only_itself(name):
    assert all(other.startswith("database") for other in GRAPH[name]), sorted(GRAPH[name])


def test_there_are_no_import_cycles():
    def visit(name: str, trail: list[str]) -> None:
        for other in GRAPH[name]:
            if other in trail:
                raise AssertionError(" -> ".join([*trail[trail.index(other) :], name, other]))
            if other not in done:
                visit(other, [*trail, name])
        done.add(name)

    done: set[str] = set()
    for name in MODULES:
        visit(name, [])


LOGGER = re.compile(r"logging\.getLogger\((?P<name>[^)]*)\)")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_logger_is_in_the_apps_namespace(name):
    for match in LOGGER.finditer(MODULES[name].read_text()):
        argument = match.group("name")
        assert argument == "" or "book_library" in argument or "NAMESPACE" in argument, f"{name}: {match.group()}"


def test_every_collection_has_one_owner():
    import app  # noqa: F401  (imports every model)
    from database.documents import Model

    owners = {collection: model.__qualname__ for collection, model in Model.owners.items()}
    assert owners == {
        "users": "User",
        "books": "Books",
        "sessions": "Sessions",
        "access_tokens": "AccessTokens",
        "request_counts": "RequestCounts",
        "mfa_tickets": "MfaTickets",
        "auth_events": "Events",
        "login_failures": "LoginThrottle",
        "link_tokens": "LinkTokens",
        "outbox": "Outbox",
        "passkeys": "Passkeys",
        "webauthn_challenges": "WebauthnChallenges",
    }


def test_a_second_owner_of_a_collection_is_refused():
    from database.documents import Model

    with pytest.raises(TypeError, match="already belongs to User"):
        type("Squatter", (Model,), {"collection": "users", "__module__": "somewhere_else"})


def test_no_module_edits_sys_path():
    for path in [*MODULES.values(), ROOT / "gunicorn.conf.py", *ROOT.glob("tests/**/*.py")]:
        if path.name == os.path.basename(__file__):
            continue
        assert not re.search(r"sys\.path\.(insert|append)", path.read_text()), path
