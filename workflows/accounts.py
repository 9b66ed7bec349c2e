"""What changes several collections at once: setting a password, resetting it, claiming an
unverified account, changing the email, disabling an account, logging out everywhere, and
numbering an account's books."""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId

from auth.access_tokens import AccessTokens
from auth.audit import record
from auth.passkeys import Passkeys
from auth.passwords import hash_password
from auth.sessions import Sessions
from covers.storage import covers
from database.documents import Document, parse_object_id, utcnow
from mail.link_tokens import CHANGE_EMAIL, RESET_PASSWORD, LinkTokens
from mail.outbox import cancel_queued, link_kinds
from models import Books, User


def set_password(user_id: ObjectId, password: str, reason: str = "password_changed") -> Document:
    """A new password, by whatever route: the account moves to a new token version (every
    access token signed before now stops working), and any password-reset or email-change
    link still out stops working, mails still waiting to carry one included: a reset must
    also evict whoever asked for those. Every personal access token is revoked too: a new
    password is what an owner sets who fears someone else knows the old one, and that someone
    could have made tokens with it. Returns {_id, email, token_version}."""
    user = User.set_password_hash(user_id, hash_password(password))
    if user is None:
        raise LookupError("the account to set a password for does not exist")
    _discard_links(user_id, user["email"], reason, RESET_PASSWORD, CHANGE_EMAIL)
    revoke_access_tokens(user_id, reason)
    return user


def revoke_access_tokens(user_id: ObjectId, reason: str) -> None:
    """Revoke every personal access token of the account, with one audit event when any was live."""
    revoked = AccessTokens.revoke_all(user_id, reason)
    if revoked:
        record("access_tokens_revoked", user_id, reason=reason, count=revoked)


def log_out_everywhere(user_id: ObjectId) -> None:
    """End every session and revoke every personal access token: "log out everywhere" is
    what an owner asks for who fears a device or a script has fallen into other hands."""
    Sessions.revoke_all(user_id, reason="logout_all")
    revoke_access_tokens(user_id, "logout_all")


def reset_password(user: Document, password: str, proven_email: str) -> None:
    """A reset by mailed link: the new password, every session ended (and every token
    revoked), and the address proven (the link reached the account's mailbox). An account
    nobody had verified becomes the prover's alone: its second factor and anything else
    still waiting go too."""
    if not user.get("email_verified") and User.discard_unproven(user["_id"]):
        _discard_links(user["_id"], user["email"], "password_reset")
    set_password(user["_id"], password, reason="password_reset")
    Sessions.revoke_all(user["_id"], reason="password_reset")
    User.mark_email_verified(user["_id"], proven_email)


def claim_account(user_id: ObjectId, email: str, claim_id: str) -> bool:
    """A later sign-up's link proved the address of an account nobody had verified: the account
    becomes that sign-up's (its name and password); sessions, second factor, links and mails of
    whoever held it before go. False when that sign-up is no longer the newest waiting."""
    if not User.apply_claim(user_id, email, claim_id):
        return False
    Sessions.revoke_all(user_id, reason="account_claimed")
    _discard_links(user_id, email, "account_claimed")
    return True


def _discard_links(user_id: ObjectId, email: str, reason: str, *purposes: str) -> None:
    """End the account's links of these purposes (all when none is named): first the mails
    still waiting to carry one (the sender makes a link only for a mail still waiting), then
    the links already out."""
    cancel_queued(user_id, email, link_kinds(*purposes), reason)
    LinkTokens.discard(user_id, *purposes)


def change_email(user_id: ObjectId, new_email: str, keep_session: str | None) -> Document | None:
    """Move the account to its proven new address: links mailed to the old one stop working,
    and every session but the one that asked ends. Returns the account as it was (None when
    it was disabled meanwhile); DuplicateKeyError when another account has the address."""
    before = User.change_email(user_id, new_email)
    if before is None:
        return None
    _discard_links(user_id, before["email"], "email_changed")
    Sessions.revoke_all(user_id, reason="email_changed", keep=parse_object_id(keep_session))
    return before


def disable_account(user_id: ObjectId, keep_days: int) -> None:
    """Disable the account: every session ends and every personal access token is revoked, it
    and its books are scheduled for deletion in `keep_days` (the purge TTL indexes) with its
    passkeys, and its covers, public by URL, go at once."""
    purge_at = utcnow() + timedelta(days=keep_days)
    User.disable(user_id, purge_at)
    Books.schedule_purge(user_id, purge_at)
    Passkeys.schedule_purge(user_id, purge_at)
    Sessions.revoke_all(user_id, reason="account_disabled")
    revoke_access_tokens(user_id, "account_disabled")
    covers().remove_many(Books.images(user_id))


def newest_book_position(user: Document) -> int:
    """The list position of the account's newest book, from its record as just read."""
    if "book_seq" in user:
        return int(user["book_seq"])
    return number_books(user["_id"])


def next_book_position(user_id: ObjectId) -> int:
    """A list position for a new book (never given twice)."""
    for _ in range(2):
        position = User.next_book_position(user_id)
        if position is not None:
            return position
        number_books(user_id)
    raise LookupError("the user to number books for does not exist")


def number_books(user_id: ObjectId) -> int:
    """Give positions to the books of an account from before positions existed, oldest first,
    and start its counter after them; returns the last. Safe to run twice at once: both
    compute the same numbers, and each write only fills in what is missing."""
    books = Books.positions(user_id)
    # One write per book, once per account (bulk_write would do; mongomock cannot run it).
    for position, book in enumerate(books, start=1):
        if "seq" not in book:
            Books.set_missing_position(book["_id"], user_id, position)
    last: int = max([len(books)] + [book.get("seq", 0) for book in books])
    User.start_book_positions(user_id, last)
    return last
