"""What browser clients rely on: offline docs, the OpenAPI document, CORS, security headers,
cover caching, pagination links and 415s, all checked over HTTP."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from api.openapi import SERVER_ERRORS
from helpers import (
    COVER_NOT_FOUND,
    INVALID_FIELDS,
    JSON_ONLY,
    NO_SUCH_URL,
    TOKEN_MISSING,
    WRONG_METHOD,
    api_operations,
    assert_envelope,
    concrete_path,
    image_bytes,
    openapi_path,
)
from mail.messages import KINDS

DEV_ORIGIN = "http://localhost:5173"
EVIL_ORIGIN = "http://evil.example"
EXPOSED = ("WWW-Authenticate", "Retry-After", "Link", "X-Total-Count")

# The status code each operation answers on success.
SUCCESS = {
    ("GET", "/"): 200,
    ("GET", "/healthz"): 200,
    ("POST", "/users/"): 201,
    ("POST", "/users/login"): 200,
    ("POST", "/users/token/refresh"): 200,
    ("POST", "/users/logout"): 204,
    ("POST", "/users/logout-all"): 204,
    ("GET", "/users/sessions"): 200,
    ("DELETE", "/users/sessions/{session_id}"): 204,
    ("PUT", "/users/password"): 200,
    ("GET", "/users/events"): 200,
    ("GET", "/users/"): 200,
    ("PUT", "/users/"): 200,
    ("DELETE", "/users/"): 204,
    ("POST", "/books/"): 201,
    ("GET", "/books/"): 200,
    ("GET", "/books/{book_id}"): 200,
    ("PUT", "/books/{book_id}"): 200,
    ("DELETE", "/books/{book_id}"): 204,
    ("POST", "/users/passkeys"): 201,
    ("DELETE", "/users/passkeys/{passkey_id}"): 204,
}
# The operations anyone may call without a token. Every other one must need an access token, so a
# new route is protected unless it is deliberately added here.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/healthz"),
    ("POST", "/users/"),
    ("POST", "/users/login"),
    ("POST", "/users/login/mfa"),
    ("POST", "/users/token/refresh"),
    # A mailed link's token is the proof: no access token (reset and verification come from a mailbox).
    ("POST", "/users/password/forgot"),
    ("POST", "/users/password/reset"),
    ("POST", "/users/email/verify"),
    # Signing in with a passkey: its signature is the proof.
    ("POST", "/users/login/passkey/options"),
    ("POST", "/users/login/passkey"),
}


# --- helpers -----------------------------------------------------------------


def resolve(document: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/"), ref
    target = document
    for part in ref[2:].split("/"):
        target = target[part]
    return resolve(document, target)


def has_example(document: dict, media: dict) -> bool:
    schema = resolve(document, media.get("schema", {}))
    return bool(media.get("example") or media.get("examples") or schema.get("example") or schema.get("examples"))


def header_list(response, name: str) -> set[str]:
    return {item.strip().lower() for item in response.headers.get(name, "").split(",") if item.strip()}


def csp_directives(response) -> dict[str, list[str]]:
    policy = response.headers.get("Content-Security-Policy", "")
    directives = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def parse_links(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]*)>\s*;\s*rel="([^"]+)"', header)}


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


class _Assets(HTMLParser):
    """Every <script> and <link> of a page, and whether any script is inline."""

    def __init__(self):
        super().__init__()
        self.scripts, self.links, self.inline_scripts, self.handlers = [], [], 0, []
        self._in_script_without_src = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.handlers += [name for name in attrs if name.startswith("on")]
        if tag == "script":
            if attrs.get("src"):
                self.scripts.append(attrs["src"])
            else:
                self._in_script_without_src = True
        elif tag == "link" and attrs.get("href"):
            self.links.append((attrs.get("rel", ""), attrs["href"]))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script_without_src = False

    def handle_data(self, data):
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1


# --- /docs renders offline ---------------------------------------------------------


def test_docs_page_is_html(client):
    with client.get("/docs") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/html"
        assert 'id="swagger-ui"' in response.get_data(as_text=True)


def test_docs_page_loads_every_asset_from_the_app_itself(client):
    with client.get("/docs") as page:
        parser = _Assets()
        parser.feed(page.get_data(as_text=True))
    assets = [(src, "javascript") for src in parser.scripts]
    assets += [(href, "css" if "stylesheet" in rel.lower() else None) for rel, href in parser.links]
    assert parser.scripts and any(kind == "css" for _, kind in assets)
    for url, kind in assets:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{url} is not served by the app"
        with client.get(urljoin("/docs", url)) as asset:
            assert asset.status_code == 200, url
            if kind is not None:
                assert kind in asset.mimetype, (url, asset.mimetype)
            assert len(asset.get_data()) > 100, url


def test_docs_page_has_no_inline_script_its_policy_would_block(client):
    with client.get("/docs") as page:
        parser = _Assets()
        parser.feed(page.get_data(as_text=True))
    assert parser.inline_scripts == 0
    assert parser.handlers == []


def test_docs_init_script_loads_the_apps_openapi_document(client):
    with client.get("/docs") as page:
        parser = _Assets()
        parser.feed(page.get_data(as_text=True))
    init = [src for src in parser.scripts if src.endswith("init.js")]
    assert init, parser.scripts
    with client.get(urljoin("/docs", init[0])) as script:
        source = script.get_data(as_text=True)
    urls = re.findall(r"""\burl\s*:\s*["']([^"']+)["']""", source)
    assert urls == ["/openapi.json"]
    assert client.get(urls[0]).status_code == 200


def test_docs_do_not_keep_the_pasted_token_in_local_storage(client):
    """Swagger UI's persistAuthorization writes the token to localStorage, where it outlives the tab."""
    with client.get("/docs") as page:
        parser = _Assets()
        parser.feed(page.get_data(as_text=True))
    init = next(src for src in parser.scripts if src.endswith("init.js"))
    with client.get(urljoin("/docs", init)) as script:
        source = script.get_data(as_text=True)
    assert re.findall(r"\bpersistAuthorization\s*:\s*(\w+)", source) in ([], ["false"])
    assert "localStorage" not in re.sub(r"//.*", "", source)


def test_docs_policy_allows_own_scripts_and_no_other_host(client):
    with client.get("/docs") as response:
        directives = csp_directives(response)
        assert response.headers["X-Frame-Options"] == "DENY"
    assert "'self'" in directives["script-src"]
    assert "'self'" in directives["connect-src"]  # Swagger UI fetches the document and tries requests
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'none'"]
    for name, sources in directives.items():
        for source in sources:
            assert "*" not in source and "://" not in source and source not in ("http:", "https:"), (name, source)
    assert "'unsafe-eval'" not in directives["script-src"]
    assert "'unsafe-inline'" not in directives["script-src"]


# --- the browser app at /app/ ---------------------------------------------------------


class _Controls(HTMLParser):
    """The form controls, labels and buttons of a page, its <template>s included."""

    def __init__(self):
        super().__init__()
        self.controls, self.label_for, self.buttons = [], set(), []
        self._button_text = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "select", "textarea", "progress") and attrs.get("type") != "hidden":
            self.controls.append(attrs.get("id") or f"<{tag} name={attrs.get('name')}>")
        elif tag == "label" and attrs.get("for"):
            self.label_for.add(attrs["for"])
        elif tag == "button":
            self._button_text = ""

    def handle_endtag(self, tag):
        if tag == "button":
            self.buttons.append(self._button_text.strip())
            self._button_text = None

    def handle_data(self, data):
        if self._button_text is not None:
            self._button_text += data


def app_files(client, page_url="/app/") -> dict[str, str]:
    """Every file the app's page loads, following its ES module imports: {url: mimetype}."""
    with client.get(page_url) as page:
        parser = _Assets()
        parser.feed(page.get_data(as_text=True))
    pending = [urljoin(page_url, url) for url in parser.scripts + [href for _, href in parser.links]]
    seen = {}
    while pending:
        url = pending.pop()
        if url in seen or url.startswith("data:"):
            continue
        with client.get(url) as response:
            assert response.status_code == 200, url
            seen[url] = response.mimetype
            if url.endswith(".js"):
                source = response.get_data(as_text=True)
                imports = re.findall(r"""^import\b[^;]*?from\s+["']([^"']+)["']""", source, re.M)
                pending += [urljoin(url, name) for name in imports]
    return seen


def test_app_page_is_html_under_its_own_policy(client):
    with client.get("/app/") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/html"
        directives = csp_directives(response)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]  # a password typed here goes to this API only
    assert directives["img-src"] == ["'self'", "data:", "blob:"]  # covers, and previews of a chosen file
    assert directives["frame-ancestors"] == ["'none'"]


def test_app_without_its_slash_redirects_so_relative_urls_resolve(client):
    response = client.get("/app")
    assert response.status_code in (301, 308)
    assert urlsplit(response.headers["Location"]).path == "/app/"


def test_app_loads_only_its_own_files_as_modules_and_a_stylesheet(client):
    files = app_files(client)
    assert {urlsplit(url).netloc for url in files} == {""}
    scripts = {url for url, mimetype in files.items() if url.endswith(".js")}
    assert {"/app/app.js", "/app/api.js", "/app/config.js", "/app/ui.js"} <= scripts
    assert all("javascript" in files[url] for url in scripts), files  # modules need a JavaScript type
    assert files["/app/app.css"] == "text/css"


def test_app_page_has_no_inline_script_or_handler(client):
    with client.get("/app/") as page:
        parser = _Assets()
        parser.feed(page.get_data(as_text=True))
    assert parser.inline_scripts == 0
    assert parser.handlers == []


def test_every_control_of_the_app_has_a_label_and_every_button_a_name(client):
    with client.get("/app/") as page:
        parser = _Controls()
        parser.feed(page.get_data(as_text=True))
    assert parser.controls and parser.buttons
    assert [control for control in parser.controls if control not in parser.label_for] == []
    assert "" not in parser.buttons


# The pages that mailed links open, at the default FRONTEND_URL (PUBLIC_URL + "/app").
LINK_PAGES = sorted({"/app" + kind.path for kind in KINDS.values() if kind.path})


@pytest.mark.parametrize("path", LINK_PAGES)
def test_pages_that_mailed_links_open_are_the_app_under_its_policy(client, path):
    with client.get(path) as page, client.get("/app/") as index:
        assert page.status_code == 200
        assert page.get_data() == index.get_data()
        assert page.headers["Content-Security-Policy"] == index.headers["Content-Security-Policy"]
    # The page's relative URLs resolve under /app/ from there too.
    assert app_files(client, path) == app_files(client)


def test_a_file_the_app_lacks_is_a_json_404(client):
    with client.get("/app/missing.js") as response:
        assert response.status_code == 404
        assert response.get_json()["error"] == "Not Found"


# --- /openapi.json -------------------------------------------------------------


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_openapi_document_validates_as_3_1(document):
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_openapi_document_describes_every_api_route_and_method(app, document):
    operations = api_operations(app)
    assert set(SUCCESS) <= {(method, openapi_path(rule)) for method, rule in operations}
    missing = [
        (method, rule)
        for method, rule in operations
        if method.lower() not in document["paths"].get(openapi_path(rule), {})
    ]
    assert missing == []


def test_openapi_document_has_no_operation_the_app_lacks(app, document):
    routed = {(openapi_path(rule), method.lower()) for method, rule in api_operations(app)}
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace")
    }
    assert documented - routed == set()


def test_openapi_path_parameters_match_the_routes(app, document):
    for method, rule in api_operations(app):
        operation = document["paths"][openapi_path(rule)][method.lower()]
        in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{([^}]+)\}", openapi_path(rule))), (method, rule)


def test_every_operation_documents_its_success_code(app, document):
    """Known operations document their own code; any newer one at least some 2xx."""
    wrong = []
    for method, rule in api_operations(app):
        responses = document["paths"][openapi_path(rule)][method.lower()]["responses"]
        if (method, openapi_path(rule)) in SUCCESS:
            documented = str(SUCCESS[method, openapi_path(rule)]) in responses
        else:
            documented = any(code.startswith("2") for code in responses)
        if not documented:
            wrong.append((method, rule, sorted(responses)))
    assert wrong == []


def test_operations_document_bearer_security_exactly_where_the_app_asks_for_a_token(app, client, document):
    """Protected means: the running app answers 401 without a token. Only the PUBLIC operations are not."""
    public = set()
    for method, rule in api_operations(app):
        operation = document["paths"][openapi_path(rule)][method.lower()]
        response = client.open(concrete_path(rule), method=method)
        if response.status_code == 401:
            assert_envelope(response, 401, TOKEN_MISSING, "Unauthorized")
            assert "401" in operation["responses"], (method, rule)
            # The list names the scopes a personal access token needs; empty: a login's token only.
            [requirement] = operation.get("security")
            assert list(requirement) == ["bearerAuth"], (method, rule)
        else:
            assert not operation.get("security"), (method, rule, response.status_code)
            public.add((method, rule))
    assert public == PUBLIC


def test_bearer_security_scheme_is_jwt_or_a_personal_access_token(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert {key: scheme[key] for key in ("type", "scheme", "bearerFormat")} == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert "personal access token" in scheme["description"] and "`books:read`" in scheme["description"]


def test_sign_up_body_is_json_with_an_example(document):
    content = document["paths"]["/users/"]["post"]["requestBody"]["content"]
    assert list(content) == ["application/json"]
    assert has_example(document, content["application/json"])


def test_every_request_body_has_an_example(document):
    without = [
        (path, method, media_type)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items()
        if not has_example(document, media)
    ]
    assert without == []


def test_create_book_body_is_multipart_with_a_binary_cover(document):
    content = document["paths"]["/books/"]["post"]["requestBody"]["content"]
    assert list(content) == ["multipart/form-data"]
    schema = resolve(document, content["multipart/form-data"]["schema"])
    assert schema["properties"]["cover_image"]["format"] == "binary"
    assert {"title", "category", "cover_image"} <= set(schema["required"])


def test_update_book_body_is_json_or_multipart(document):
    content = document["paths"]["/books/{book_id}"]["put"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(content)
    form = resolve(document, content["multipart/form-data"]["schema"])
    cover = form["properties"]["cover_image"]
    formats = [cover.get("format")] + [option.get("format") for option in cover.get("anyOf", [])]
    assert "binary" in formats
    assert "cover_image" not in form.get("required", [])


def test_bad_request_responses_use_the_field_error_envelope(document):
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if code != "400":
                    continue
                checked += 1
                schema = resolve(document, response["content"]["application/json"]["schema"])
                assert schema["properties"]["error"]["type"] == "object", (path, method)
                assert schema["properties"]["error"]["additionalProperties"] == {"type": "string"}, (path, method)
                assert {"message", "error"} <= set(schema["required"])
    assert checked > 0


def test_other_error_responses_use_the_error_envelope(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if int(code) in SERVER_ERRORS:  # answered by gunicorn itself, in the same envelope
                    example = response["content"]["application/json"]["example"]
                    assert (example["message"], example["error"]) == SERVER_ERRORS[int(code)], (path, method, code)
                if code.startswith(("4", "5")) and code != "400":
                    schema = resolve(document, response["content"]["application/json"]["schema"])
                    assert schema["properties"]["error"]["type"] == "string", (path, method, code)
                    assert schema["properties"]["data"]["type"] == "null", (path, method, code)


# --- one validation-error shape for JSON and multipart --------------------------------------


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_bad_title_gives_the_same_error_with_json_and_multipart(client, auth, create_book, title):
    headers = auth.headers()
    book = create_book(headers)
    url = f"/books/{book['id']}"
    as_json = client.put(url, json={"title": title}, headers=headers)
    as_form = client.put(url, data={"title": title}, headers=headers, content_type="multipart/form-data")
    expected = {"title": "Title must be 1 to 200 characters."}
    assert_envelope(as_json, 400, INVALID_FIELDS, expected)
    assert_envelope(as_form, 400, INVALID_FIELDS, expected)


# --- CORS ----------------------------------------------------------------------------------


def preflight(client, path, method, origin=DEV_ORIGIN):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )


def test_preflight_is_answered_for_every_api_route_and_method(app, client):
    failures = []
    operations = api_operations(app)
    assert set(SUCCESS) <= {(method, openapi_path(rule)) for method, rule in operations}
    for method, rule in operations:
        response = preflight(client, concrete_path(rule), method)
        problems = []
        if not 200 <= response.status_code < 300:
            problems.append(f"status {response.status_code}")
        if response.headers.get("Access-Control-Allow-Origin") != DEV_ORIGIN:
            problems.append(f"allow-origin {response.headers.get('Access-Control-Allow-Origin')}")
        if method.lower() not in header_list(response, "Access-Control-Allow-Methods"):
            problems.append(f"allow-methods {response.headers.get('Access-Control-Allow-Methods')}")
        if not {"authorization", "content-type"} <= header_list(response, "Access-Control-Allow-Headers"):
            problems.append(f"allow-headers {response.headers.get('Access-Control-Allow-Headers')}")
        if problems:
            failures.append((method, rule, problems))
    assert failures == []


@pytest.mark.parametrize("kind", ["ok", "unauthorized", "paginated"])
def test_responses_expose_the_headers_a_browser_client_reads(client, auth, kind):
    origin = {"Origin": DEV_ORIGIN}
    if kind == "ok":
        response = client.get("/", headers=origin)
    elif kind == "unauthorized":
        response = client.get("/users/", headers=origin)
        assert_envelope(response, 401, TOKEN_MISSING, "Unauthorized")
    else:
        response = client.get("/books/", headers={**origin, **auth.headers()})
        assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == DEV_ORIGIN
    assert "origin" in header_list(response, "Vary")
    assert {name.lower() for name in EXPOSED} <= header_list(response, "Access-Control-Expose-Headers")


@pytest.mark.parametrize("origin", [None, DEV_ORIGIN, EVIL_ORIGIN])
@pytest.mark.parametrize("resource", ["cover", "docs asset"])
def test_publicly_cached_response_varies_on_origin_whatever_the_origin(client, auth, create_book, resource, origin):
    """Its CORS headers depend on Origin, so a shared cache must key on it: otherwise a copy
    fetched from an unlisted origin (no Allow-Origin) is served to the browser app."""
    url = create_book(auth.headers())["image_url"] if resource == "cover" else "/docs/assets/css/swagger-ui.css"
    with client.get(url, headers={"Origin": origin} if origin else {}) as response:
        assert response.status_code == 200
        assert response.cache_control.public
        assert "origin" in header_list(response, "Vary")


def test_origin_not_listed_gets_no_allow_origin(client):
    assert "Access-Control-Allow-Origin" not in preflight(client, "/books/", "GET", EVIL_ORIGIN).headers
    assert "Access-Control-Allow-Origin" not in client.get("/", headers={"Origin": EVIL_ORIGIN}).headers


def test_credentials_are_not_allowed_by_default(client):
    assert "Access-Control-Allow-Credentials" not in preflight(client, "/users/token/refresh", "POST").headers
    assert "Access-Control-Allow-Credentials" not in client.get("/", headers={"Origin": DEV_ORIGIN}).headers


class TestCorsWithRefreshCookie:
    @pytest.fixture
    def app_config(self):
        return {"REFRESH_TOKEN_COOKIE": True}

    def test_credentials_are_allowed(self, client):
        response = preflight(client, "/users/token/refresh", "POST")
        assert response.headers["Access-Control-Allow-Origin"] == DEV_ORIGIN
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        actual = client.get("/", headers={"Origin": DEV_ORIGIN})
        assert actual.headers["Access-Control-Allow-Credentials"] == "true"

    def test_csrf_header_may_be_sent(self, client):
        response = client.options(
            "/users/token/refresh",
            headers={
                "Origin": DEV_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-CSRF-Token",
            },
        )
        assert "x-csrf-token" in header_list(response, "Access-Control-Allow-Headers")

    def test_origin_not_listed_gets_no_credentials(self, client):
        response = preflight(client, "/users/token/refresh", "POST", EVIL_ORIGIN)
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers


class TestCorsInProduction:
    @pytest.fixture
    def app_config(self):
        return {"APP_ENV": "production", "PUBLIC_URL": "http://localhost"}

    @pytest.mark.parametrize("origin", [DEV_ORIGIN, "https://app.example.com"])
    def test_no_origin_is_allowed_without_cors_origins(self, client, origin):
        responses = [preflight(client, "/books/", "GET", origin), client.get("/", headers={"Origin": origin})]
        for response in responses:
            assert 200 <= response.status_code < 300
            assert [name for name in response.headers.keys() if name.lower().startswith("access-control-")] == []


class TestCorsWithConfiguredOrigins:
    @pytest.fixture
    def app_config(self):
        return {"CORS_ORIGINS": "https://app.example.com"}

    def test_the_configured_origin_is_allowed(self, client):
        response = preflight(client, "/books/", "POST", "https://app.example.com")
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        actual = client.get("/", headers={"Origin": "https://app.example.com"})
        assert actual.headers["Access-Control-Allow-Origin"] == "https://app.example.com"

    @pytest.mark.parametrize("origin", [DEV_ORIGIN, "http://app.example.com", "https://app.example.com.evil.example"])
    def test_other_origins_are_not_allowed(self, client, origin):
        assert "Access-Control-Allow-Origin" not in preflight(client, "/books/", "POST", origin).headers
        assert "Access-Control-Allow-Origin" not in client.get("/", headers={"Origin": origin}).headers


# --- security headers ------------------------------------------------------------------------


def _json_ok(client, auth, create_book):
    return client.get("/")


def _json_authenticated(client, auth, create_book):
    return client.get("/users/", headers=auth.headers())


def _json_unauthorized(client, auth, create_book):
    return client.get("/users/")


def _json_bad_request(client, auth, create_book):
    return client.get("/books/?page=0", headers=auth.headers())


def _json_not_found(client, auth, create_book):
    return client.get("/no/such/route")


def _json_method_not_allowed(client, auth, create_book):
    return client.patch("/books/")


def _json_unsupported_media_type(client, auth, create_book):
    return client.post("/users/", data="hello", content_type="text/plain")


def _openapi(client, auth, create_book):
    return client.get("/openapi.json")


def _cover(client, auth, create_book):
    return client.get(create_book(auth.headers())["image_url"])


def _docs(client, auth, create_book):
    return client.get("/docs")


def _docs_asset(client, auth, create_book):
    return client.get("/docs/assets/js/swagger-ui-bundle.js")


# The response, its status, and for an envelope its message and error.
RESPONSE_KINDS = {
    "json 200": (_json_ok, 200, "Book Library API", None),
    "json 200 authenticated": (_json_authenticated, 200, "Current user.", None),
    "json 400": (_json_bad_request, 400, INVALID_FIELDS, {"page": "Must be at least 1."}),
    "json 401": (_json_unauthorized, 401, TOKEN_MISSING, "Unauthorized"),
    "json 404": (_json_not_found, 404, NO_SUCH_URL, "Not Found"),
    "json 405": (_json_method_not_allowed, 405, WRONG_METHOD, "Method Not Allowed"),
    "json 415": (_json_unsupported_media_type, 415, JSON_ONLY, "Unsupported Media Type"),
    "openapi": (_openapi, 200, None, None),
    "cover": (_cover, 200, None, None),
    "docs": (_docs, 200, None, None),
    "docs asset": (_docs_asset, 200, None, None),
}


@pytest.mark.parametrize("kind", list(RESPONSE_KINDS))
def test_security_headers_on_every_kind_of_response(client, auth, create_book, kind):
    fetch, status, message, error = RESPONSE_KINDS[kind]
    with fetch(client, auth, create_book) as response:
        if message is None:
            assert response.status_code == status
        else:
            assert_envelope(response, status, message, error)
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        directives = csp_directives(response)
        assert directives["frame-ancestors"] == ["'none'"]
        assert directives["default-src"] == ["'none'"]
        if response.mimetype == "application/json":
            assert "no-store" in header_list(response, "Cache-Control")
        assert "Strict-Transport-Security" not in headers
        assert not re.search(r"\d", headers.get("Server", "")), headers.get("Server")


def test_json_body_of_an_error_is_the_envelope(client):
    assert_envelope(client.get("/no/such/route"), 404, NO_SUCH_URL, "Not Found")
    response = client.patch("/books/")
    assert_envelope(response, 405, WRONG_METHOD, "Method Not Allowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/", "/users/", "/docs", "/no/such/route"])
def test_hsts_is_sent_over_https(client, path):
    with client.get(path, base_url="https://localhost") as response:
        hsts = response.headers["Strict-Transport-Security"]
    max_age = re.search(r"max-age=(\d+)", hsts)
    assert max_age and int(max_age.group(1)) >= 31536000


# --- covers ------------------------------------------------------------------------------


@pytest.mark.each_cover_storage
def test_cover_is_served_as_png_with_a_long_immutable_cache(client, auth, create_book):
    book = create_book(auth.headers(), cover=image_bytes("PNG"), filename="cover.png")
    with client.get(book["image_url"]) as response:
        assert response.status_code == 200
        assert response.mimetype == "image/png"
        assert response.get_data()[:8] == b"\x89PNG\r\n\x1a\n"
        cache = response.cache_control
        assert cache.public
        assert cache.max_age == 31536000
        assert cache.immutable
        assert not cache.no_store


@pytest.mark.each_cover_storage
def test_missing_cover_is_a_404_envelope_that_is_not_cached(client):
    with client.get("/static/images/books/" + "0" * 32 + ".png") as response:
        assert_envelope(response, 404, COVER_NOT_FOUND, "Not Found")
        cache = response.cache_control
        assert cache.no_store
        assert not cache.immutable and not cache.public


# --- pagination Link header ------------------------------------------------------------------


@pytest.fixture
def five_books(auth, create_book):
    headers = auth.headers()
    for number, category in enumerate(["science", "fantasy", "science", "fantasy", "science"]):
        create_book(headers, title=f"Book {number}", category=category)
    return headers


def test_middle_page_links_to_first_prev_next_and_last(client, five_books):
    response = client.get("/books/?page=2&per_page=2", headers=five_books)
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "5"
    links = parse_links(response.headers["Link"])
    assert set(links) == {"first", "prev", "next", "last"}
    for url in links.values():
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("http", "localhost", "/books/")
        assert query_of(url)["per_page"] == "2"
    assert {rel: query_of(url)["page"] for rel, url in links.items()} == {
        "first": "1",
        "prev": "1",
        "next": "3",
        "last": "3",
    }


def test_page_links_lead_to_the_pages_they_name(client, five_books):
    links = parse_links(client.get("/books/?page=2&per_page=2", headers=five_books).headers["Link"])
    seen = []
    for rel in ("first", "next"):
        page = client.get(links[rel], headers=five_books).get_json()
        assert page["meta"]["page"] == int(query_of(links[rel])["page"])
        seen += [book["id"] for book in page["data"]]
    middle = client.get("/books/?page=2&per_page=2", headers=five_books).get_json()["data"]
    seen += [book["id"] for book in middle]
    assert len(seen) == len(set(seen)) == 5


def test_first_page_has_no_prev_link(client, five_books):
    response = client.get("/books/?per_page=2", headers=five_books)
    links = parse_links(response.headers["Link"])
    assert set(links) == {"first", "next", "last"}
    assert query_of(links["next"])["page"] == "2"


def test_last_page_has_no_next_link(client, five_books):
    response = client.get("/books/?page=3&per_page=2", headers=five_books)
    links = parse_links(response.headers["Link"])
    assert set(links) == {"first", "prev", "last"}
    assert query_of(links["prev"])["page"] == "2"
    assert query_of(links["last"])["page"] == "3"


def test_page_past_the_end_links_back_to_the_last_page(client, five_books):
    response = client.get("/books/?page=9&per_page=2", headers=five_books)
    assert response.get_json()["data"] == []
    links = parse_links(response.headers["Link"])
    assert set(links) == {"first", "prev", "last"}
    assert query_of(links["prev"])["page"] == query_of(links["last"])["page"] == "3"


def test_single_page_links_only_to_itself(client, five_books):
    links = parse_links(client.get("/books/", headers=five_books).headers["Link"])
    assert set(links) == {"first", "last"}
    assert query_of(links["first"]) == query_of(links["last"]) == {"page": "1", "per_page": "20"}


def test_filtered_page_links_keep_the_category(client, five_books):
    response = client.get("/books/?category=science&per_page=2", headers=five_books)
    assert response.headers["X-Total-Count"] == "3"
    links = parse_links(response.headers["Link"])
    assert set(links) == {"first", "next", "last"}
    for url in links.values():
        assert query_of(url)["category"] == "science"
        assert query_of(url)["per_page"] == "2"
    assert query_of(links["last"])["page"] == "2"


def test_empty_library_has_no_link_header(client, auth):
    response = client.get("/books/?per_page=2", headers=auth.headers())
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "0"
    assert "Link" not in response.headers


# --- 415 for a body the endpoint does not take -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "content_type", "message"),
    [
        ("POST", "/users/", "text/plain", JSON_ONLY),
        ("POST", "/users/login", "text/plain", JSON_ONLY),
        ("PUT", "/users/", "text/plain", JSON_ONLY),
        ("PUT", "/users/password", "text/plain", JSON_ONLY),
        ("POST", "/users/token/refresh", "text/plain", JSON_ONLY),
        ("POST", "/books/", "application/json", "Content-Type must be multipart/form-data with a cover_image file."),
        (
            "PUT",
            "/books/{id}",
            "text/plain",
            "Content-Type must be multipart/form-data, application/x-www-form-urlencoded or application/json.",
        ),
    ],
)
def test_body_of_an_unsupported_content_type_is_415(
    client, auth, create_book, document, method, path, content_type, message
):
    headers = auth.headers()
    if "{id}" in path:
        path = path.replace("{id}", create_book(headers)["id"])
    body = '{"title": "Dune"}' if content_type == "application/json" else "hello"
    response = client.open(path, method=method, data=body, content_type=content_type, headers=headers)
    assert_envelope(response, 415, message, "Unsupported Media Type")
    operation = document["paths"][re.sub(r"[0-9a-f]{24}", "{book_id}", path)][method.lower()]
    assert "415" in operation["responses"]
