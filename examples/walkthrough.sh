#!/usr/bin/env bash
# A walk through every endpoint of the Book Library API with curl (and jq).
# Run it against a running server:   bash examples/walkthrough.sh
# Point it elsewhere with BASE_URL:  BASE_URL=http://127.0.0.1:8000 bash examples/walkthrough.sh
set -euo pipefail

BASE_URL="${BASE_URL:-http://127.0.0.1:5000}"
# Plays the authenticator app: computes a code from the secret with pyotp (make run installs it).
PYTHON="${PYTHON:-.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
body="$work/body"

# call EXPECTED_STATUS "what this step does" CURL_ARGS...
# Runs curl, prints the status and the response (tokens and secrets show as "<hidden>"),
# and stops the script when the status is not the expected one.
call() {
  local expected="$1" step="$2" result status type
  shift 2
  result="$(curl -sS -o "$body" -w '%{http_code} %{content_type}' "$@")" ||
    { echo "FAILED: $step: could not reach $BASE_URL" >&2; exit 1; }
  status="${result%% *}" type="${result#* }"
  echo "== $step: HTTP $status"
  if [[ "$type" == application/json* ]]; then
    jq '.data |= (objects |= with_entries(if .key | test("token$|ticket$|secret$|^qr_code$|^recovery_codes$")
                                            then .value = "<hidden>" else . end))' "$body"
  elif [ -s "$body" ]; then
    echo "($(wc -c <"$body") bytes of $type)"
  fi
  if [ "$status" != "$expected" ]; then
    echo "FAILED: $step: expected HTTP $expected, got $status" >&2
    exit 1
  fi
}

# The banner and the health check need no token.
call 200 "GET /" "$BASE_URL/"
call 200 "GET /healthz" "$BASE_URL/healthz"

# Sign up, with a new email on every run.
EMAIL="reader-$(date +%s)-$RANDOM@example.com"
PASSWORD='Corr3ct horse battery staple!'
call 201 "Sign up" -X POST "$BASE_URL/users/" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg email "$EMAIL" --arg password "$PASSWORD" \
        '{name: "Ada Lovelace", email: $email, password: $password}')"

# Log in: a short-lived access token (data.token) and a refresh token.
login() {
  call 200 "Log in" -X POST "$BASE_URL/users/login" -H 'Content-Type: application/json' \
    -d "$(jq -n --arg email "$EMAIL" --arg password "$PASSWORD" '{email: $email, password: $password}')"
  TOKEN="$(jq -r .data.token "$body")" REFRESH_TOKEN="$(jq -r .data.refresh_token "$body")"
}
login

# Before the access token expires (data.expires_in seconds), trade the refresh token
# for new tokens. The old refresh token stops working; using it again ends the session.
call 200 "Refresh the tokens" -X POST "$BASE_URL/users/token/refresh" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg token "$REFRESH_TOKEN" '{refresh_token: $token}')"
TOKEN="$(jq -r .data.token "$body")" REFRESH_TOKEN="$(jq -r .data.refresh_token "$body")"

# Who am I? Every request below sends a token.
call 200 "GET /users/" "$BASE_URL/users/" -H "Authorization: Bearer $TOKEN"

# Change the name (the only field a user may change).
call 200 "PUT /users/" -X PUT "$BASE_URL/users/" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"name": "Augusta Ada King"}'

# A script gets a personal access token of its own instead of the password: scoped,
# expiring (30 days unless you say, at most 365), shown only in this answer. Creating one
# needs the password again. The book steps below use it.
call 201 "POST /users/tokens" -X POST "$BASE_URL/users/tokens" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d "$(jq -n --arg password "$PASSWORD" \
        '{name: "walk-through", scopes: ["books:read", "books:write"], expires_in_days: 7, password: $password}')"
PAT="$(jq -r .data.token "$body")" PAT_ID="$(jq -r .data.id "$body")"

# Afterwards only its description is shown: name, scopes, prefix, dates, last use.
call 200 "GET /users/tokens" "$BASE_URL/users/tokens" -H "Authorization: Bearer $TOKEN"

# Its scopes are all it can do: the account itself (account:read) is out of its reach,
# and so is every sensitive action (here, making another token) whatever its scopes.
call 403 "GET /users/ with the token" "$BASE_URL/users/" -H "Authorization: Bearer $PAT"
call 403 "POST /users/tokens with the token" -X POST "$BASE_URL/users/tokens" -H "Authorization: Bearer $PAT" \
  -H 'Content-Type: application/json' -d '{"name": "another", "scopes": ["books:read"], "password": "?"}'

# Two tiny covers, a 1x1 PNG and a 1x1 GIF (any JPEG, PNG, GIF or WebP will do).
echo 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==' |
  base64 -d >"$work/cover.png"
echo 'R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7' | base64 -d >"$work/cover.gif"

# Add a book: a multipart form with the cover file, as Postman's form-data sends it.
call 201 "POST /books/" -X POST "$BASE_URL/books/" -H "Authorization: Bearer $PAT" \
  -F 'title=Dune' -F 'category=science' -F 'description=Spice and sand.' \
  -F "cover_image=@$work/cover.png"
BOOK_ID="$(jq -r .data.id "$body")"
IMAGE_URL="$(jq -r .data.image_url "$body")"

# image_url serves the 150x150 thumbnail.
call 200 "GET the cover" "$IMAGE_URL"

# List the books a page at a time, then only one category.
call 200 "GET /books/ (page 1)" "$BASE_URL/books/?page=1&per_page=20" -H "Authorization: Bearer $PAT"
call 200 "GET /books/ (science)" -G "$BASE_URL/books/" --data-urlencode 'category=science' \
  -H "Authorization: Bearer $PAT"

# Or by cursor: `limit` books, then `after=` the page's meta.next_cursor until it is null.
# Every page costs the same however deep, and books added meanwhile do not shift it.
call 200 "GET /books/ (cursor, first page)" "$BASE_URL/books/?limit=10" -H "Authorization: Bearer $PAT"

# One book. Its ETag header names this state of it.
call 200 "GET /books/$BOOK_ID" "$BASE_URL/books/$BOOK_ID" -H "Authorization: Bearer $PAT"
ETAG="$(curl -sS -o /dev/null -D - "$BASE_URL/books/$BOOK_ID" -H "Authorization: Bearer $PAT" |
  tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')"

# Update fields with JSON, only if nobody changed the book since we read it (If-Match)...
call 200 "PUT /books/$BOOK_ID (JSON, If-Match)" -X PUT "$BASE_URL/books/$BOOK_ID" \
  -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' -H "If-Match: $ETAG" \
  -d '{"title": "Dune Messiah", "category": "Fantasy"}'
# ...so a second tab still holding the old ETag is refused instead of overwriting it.
call 412 "PUT /books/$BOOK_ID (stale If-Match)" -X PUT "$BASE_URL/books/$BOOK_ID" \
  -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' -H "If-Match: $ETAG" \
  -d '{"title": "Dune"}'

# ...or with a multipart form, which can also replace the cover.
call 200 "PUT /books/$BOOK_ID (multipart)" -X PUT "$BASE_URL/books/$BOOK_ID" \
  -H "Authorization: Bearer $PAT" -F 'description=The sequel.' -F "cover_image=@$work/cover.gif"

# The old cover file is gone.
call 404 "GET the old cover" "$IMAGE_URL"

# Delete the book; it is then not found.
call 204 "DELETE /books/$BOOK_ID" -X DELETE "$BASE_URL/books/$BOOK_ID" -H "Authorization: Bearer $PAT"
call 404 "GET /books/$BOOK_ID" "$BASE_URL/books/$BOOK_ID" -H "Authorization: Bearer $PAT"

# Revoke it: it stops working at once, on every server. (A password change, a reset by
# mail, "log out everywhere" and disabling the account revoke every token too.)
call 204 "DELETE /users/tokens/$PAT_ID" -X DELETE "$BASE_URL/users/tokens/$PAT_ID" -H "Authorization: Bearer $TOKEN"
call 401 "GET /books/ with the revoked token" "$BASE_URL/books/" -H "Authorization: Bearer $PAT"

# Each login is a session. Log in again (another device, say) and list them.
FIRST_TOKEN="$TOKEN"
login
call 200 "GET /users/sessions" "$BASE_URL/users/sessions" -H "Authorization: Bearer $TOKEN"

# Change the password: every other session ends; this one gets fresh tokens.
NEW_PASSWORD='Tr0ubadour & 3 horses!'
call 200 "PUT /users/password" -X PUT "$BASE_URL/users/password" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d "$(jq -n --arg old "$PASSWORD" --arg new "$NEW_PASSWORD" '{current_password: $old, new_password: $new}')"
TOKEN="$(jq -r .data.token "$body")" PASSWORD="$NEW_PASSWORD"
call 401 "GET /users/ from the other session" "$BASE_URL/users/" -H "Authorization: Bearer $FIRST_TOKEN"

# Log out: this session's tokens stop working at once.
call 204 "POST /users/logout" -X POST "$BASE_URL/users/logout" -H "Authorization: Bearer $TOKEN"
call 401 "GET /users/ after logout" "$BASE_URL/users/" -H "Authorization: Bearer $TOKEN"

# Two-factor needs a verified address: open the link of the sign-up mail. `make run`
# without MAIL_URL writes each mail to a file under instance/mail (MAIL_DIR); the link's
# token follows "#token=". (With real mail, copy it from the mail instead.)
MAIL_DIR="${MAIL_DIR:-instance/mail}"
mailed_token() {
  local file
  for _ in $(seq 50); do # the server's sender writes the file within moments
    file="$(grep -l "^To: $EMAIL" "$MAIL_DIR"/*.eml 2>/dev/null | xargs -r grep -l '#token=' | tail -n 1)" || true
    if [ -n "$file" ]; then
      grep -o '#token=[A-Za-z0-9_-]*' "$file" | head -n 1 | cut -d= -f2
      return
    fi
    sleep 0.2
  done
  echo "FAILED: no mail to $EMAIL in $MAIL_DIR (set MAIL_DIR to the server's mail folder)" >&2
  return 1
}
VERIFY_TOKEN="$(mailed_token)"
call 200 "POST /users/email/verify" -X POST "$BASE_URL/users/email/verify" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg token "$VERIFY_TOKEN" '{token: $token}')"

# Turn on two-factor authentication: enrol with the password (a token alone is not
# enough), scan data.qr_code (or type data.secret into the app), then verify a code
# from the app. The recovery codes are shown only once.
login
call 201 "POST /users/mfa/totp" -X POST "$BASE_URL/users/mfa/totp" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d "$(jq -n --arg password "$PASSWORD" '{password: $password}')"
SECRET="$(jq -r .data.secret "$body")"
code() { "$PYTHON" -c 'import pyotp, sys, time; print(pyotp.TOTP(sys.argv[1]).at(time.time() + 30 * int(sys.argv[2])))' "$SECRET" "$1"; }
call 200 "POST /users/mfa/totp/verify" -X POST "$BASE_URL/users/mfa/totp/verify" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "{\"code\": \"$(code 0)\"}"
RECOVERY_CODE="$(jq -r '.data.recovery_codes[0]' "$body")"

# Now a correct password gives a short-lived ticket, not tokens; the ticket and a code
# finish the login. (A code works once: this one is the next 30-second step's.)
call 200 "Log in (step 1: password)" -X POST "$BASE_URL/users/login" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg email "$EMAIL" --arg password "$PASSWORD" '{email: $email, password: $password}')"
TICKET="$(jq -r .data.mfa_ticket "$body")"
call 200 "Log in (step 2: code)" -X POST "$BASE_URL/users/login/mfa" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg ticket "$TICKET" --arg code "$(code 1)" '{mfa_ticket: $ticket, code: $code}')"
TOKEN="$(jq -r .data.token "$body")"

# The account's recent auth events: sign-up, logins, refresh, password change, logout, MFA.
call 200 "GET /users/events" "$BASE_URL/users/events?limit=10" -H "Authorization: Bearer $TOKEN"

# Disable the account (it needs the password and, with two-factor on, a code or a
# recovery code): its token stops working and it can no longer log in.
call 204 "DELETE /users/" -X DELETE "$BASE_URL/users/" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d "$(jq -n --arg password "$PASSWORD" --arg code "$RECOVERY_CODE" '{password: $password, recovery_code: $code}')"
call 401 "GET /users/ with the old token" "$BASE_URL/users/" -H "Authorization: Bearer $TOKEN"
call 401 "Log in after disabling" -X POST "$BASE_URL/users/login" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg email "$EMAIL" --arg password "$PASSWORD" '{email: $email, password: $password}')"

echo "Walk-through complete."
