"""The HTTP layer: one blueprint module per URL, so that the URL names the file (users.py: /users/
and /users/events; login.py: /users/login, /users/login/mfa, /users/token/refresh, /users/logout;
sessions.py: /users/sessions; password.py: /users/password…; email.py: /users/email…; mfa.py:
/users/mfa/…; books.py: /books/; covers.py: the cover images; meta.py: / and /healthz; docs.py:
/openapi.json and /docs; web_app.py: /app/), and what they share: responses.py (the envelope and
body parsing), account_requests.py and book_requests.py (what requests carry), schemas.py (what answers look like), openapi.py (the document), cookies.py (how
tokens travel), cursors.py, body_limit.py, policies.py (CORS and security headers).

A view module imports services (auth/, mail/, covers/, workflows/), models and validate, and the
shared modules here; never another view module. Only app.py imports the views.
"""
