"""Mail: every mail goes through the outbox (outbox.py: `queue()`), and a sender thread in each
process (sender.py) claims due mails with a lease, retries failures with backoff, and gives up
only after a day or once the mail's link has expired. Each attempt prepares the message afresh
(messages.py): its link token (link_tokens.py) is made then, so no usable token ever sits in
the database. settings.py reads MAIL_URL and keeps this concern's per-app state.

May import models, database/ and auth/'s audit log; never a view.
"""
