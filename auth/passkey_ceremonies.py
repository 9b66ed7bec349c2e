"""The WebAuthn ceremonies: options for the browser's navigator.credentials.create() and .get(),
and the verification of what it answers, by the `webauthn` library. The relying party id and
origins come from the configuration (config.py), never from a request."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import orjson
from bson import ObjectId
from flask import current_app
from pymongo.errors import DuplicateKeyError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from auth.passkeys import Passkeys, WebauthnChallenges, authenticator_name
from database.documents import Document, utcnow

CHALLENGE_SECONDS = 300
REGISTER, LOGIN = "register", "login"
# What malformed input makes the library (or the base64 and JSON decoders under it) raise.
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, AttributeError, IndexError)

NOT_VERIFIED = "The passkey could not be verified."
CHALLENGE_SPENT = "The passkey request is unknown, used or expired; start again."
REGISTERED_ALREADY = "This passkey is registered already."


class PasskeyRefused(Exception):
    """A ceremony that did not pass; `reason` is for the audit log, not the client."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message, self.reason = message, reason


class CloneSignal(PasskeyRefused):
    """The authenticator's counter did not move forward: the key may have been copied."""


def _party() -> tuple[str, list[str]]:
    config = current_app.config
    return config["PASSKEY_RP_ID"], config["PASSKEY_ORIGINS"]


def _new_challenge(purpose: str, user_id: ObjectId | None) -> bytes:
    challenge = secrets.token_bytes(32)
    expires_at = utcnow() + timedelta(seconds=CHALLENGE_SECONDS)
    WebauthnChallenges.create(bytes_to_base64url(challenge), purpose, user_id, expires_at)
    return challenge


def registration_options(user: Document, existing: list[Document]) -> dict[str, Any]:
    """publicKey options for navigator.credentials.create(): a discoverable credential with
    user verification, none of the user's existing ones again."""
    rp_id, _ = _party()
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=current_app.config["APP_NAME"],
        user_name=user["email"],
        user_id=user["_id"].binary,  # 12 opaque bytes: no email or name in the authenticator's handle
        user_display_name=user["name"],
        challenge=_new_challenge(REGISTER, user["_id"]),
        timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=bytes(p["credential_id"])) for p in existing],
    )
    result: dict[str, Any] = orjson.loads(options_to_json(options))
    return result


def authentication_options() -> dict[str, Any]:
    """publicKey options for navigator.credentials.get(): no email and no list of credentials,
    so the browser offers whichever passkeys it holds for this site."""
    rp_id, _ = _party()
    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=_new_challenge(LOGIN, None),
        timeout=CHALLENGE_SECONDS * 1000,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    result: dict[str, Any] = orjson.loads(options_to_json(options))
    return result


def _spend_challenge(credential: dict[str, Any], purpose: str, user_id: ObjectId | None = None) -> bytes:
    """The challenge the browser signed, spent now (single use) whatever follows."""
    try:
        client_data = orjson.loads(base64url_to_bytes(credential["response"]["clientDataJSON"]))
        challenge = client_data["challenge"]
        spent = WebauthnChallenges.spend(challenge, purpose) if isinstance(challenge, str) else None
    except (*MALFORMED, orjson.JSONDecodeError) as exc:
        raise PasskeyRefused(NOT_VERIFIED, f"malformed client data: {type(exc).__name__}") from exc
    if spent is None or (user_id is not None and spent["user_id"] != user_id):
        raise PasskeyRefused(CHALLENGE_SPENT, "challenge unknown, used, expired or another user's")
    return base64url_to_bytes(challenge)


def finish_registration(user: Document, credential: dict[str, Any], name: str | None) -> Document:
    """Verify navigator.credentials.create()'s answer and keep the passkey (named after its
    authenticator when no name is given)."""
    challenge = _spend_challenge(credential, REGISTER, user["_id"])
    rp_id, origins = _party()
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            require_user_verification=True,
        )
    except MALFORMED as exc:
        raise PasskeyRefused(NOT_VERIFIED, str(exc)[:200]) from exc
    try:
        return Passkeys.create(
            user["_id"],
            verified.credential_id,
            verified.credential_public_key,
            verified.sign_count,
            aaguid=verified.aaguid,
            name=name or authenticator_name(verified.aaguid) or "Passkey",
            backed_up=verified.credential_backed_up,
        )
    except DuplicateKeyError as exc:
        raise PasskeyRefused(REGISTERED_ALREADY, "credential registered already") from exc


def _handle_matches(credential: dict[str, Any], user_id: ObjectId) -> bool:
    """The account the authenticator stored with the passkey is the passkey's (when it says)."""
    handle = credential["response"].get("userHandle")
    try:
        return not handle or base64url_to_bytes(handle) == user_id.binary
    except MALFORMED:
        return False


def credential_id(credential: dict[str, Any]) -> bytes | None:
    """The credential's id as the browser sent it; None when it is not base64url."""
    raw = credential.get("rawId")
    try:
        return base64url_to_bytes(raw) if isinstance(raw, str) and raw else None
    except MALFORMED:
        return None


def find_passkey(credential: dict[str, Any]) -> Document | None:
    """The stored passkey the browser's answer names, if any."""
    raw = credential_id(credential)
    return Passkeys.by_credential_id(raw) if raw else None


def verify_assertion(credential: dict[str, Any], passkey: Document | None, user_id: ObjectId | None) -> None:
    """Verify navigator.credentials.get()'s answer against the stored passkey of `user_id`, with
    user verification required, and move its counter on. The challenge is spent even when the
    passkey is unknown. A counter that did not go forward where the authenticator keeps one is
    a CloneSignal."""
    challenge = _spend_challenge(credential, LOGIN)
    if passkey is None or user_id is None or passkey["user_id"] != user_id:
        raise PasskeyRefused(NOT_VERIFIED, "no such passkey for this account")
    if not _handle_matches(credential, passkey["user_id"]):
        raise PasskeyRefused(NOT_VERIFIED, "user handle is not the passkey's account")
    rp_id, origins = _party()
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            credential_public_key=bytes(passkey["public_key"]),
            credential_current_sign_count=0,  # judged below, once the signature is known good
            require_user_verification=True,
        )
    except MALFORMED as exc:
        raise PasskeyRefused(NOT_VERIFIED, str(exc)[:200]) from exc
    old, new = passkey["sign_count"], verified.new_sign_count
    if (old or new) and new <= old:
        raise CloneSignal(NOT_VERIFIED, f"sign count {new} after {old}")
    if not Passkeys.used(passkey, new):
        raise PasskeyRefused(NOT_VERIFIED, "another login used this passkey at the same moment")
