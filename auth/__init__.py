"""Authentication services, between the views and the models.

Rooms: state.py (this concern's per-app state, made at app creation), passwords.py (hashing and
the one `confirm_password` every password check goes through), sessions.py (sessions and
refresh tokens), totp.py (the second factor), mfa_tickets.py (the second login step's tickets),
throttling.py (rate limits and the lock-out), audit.py (the audit log).
They may import models, database/ and auth_middleware's JWT functions; never a view, never mail/.
"""
