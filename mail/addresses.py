"""Addresses as mail carries them: the domain in its ASCII (IDNA) form, so that only an
address with a non-ASCII part before the @ needs a server that speaks SMTPUTF8 (RFC 6531)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def on_the_wire(address: str) -> str:
    """`ada@bücher.example` -> `ada@xn--bcher-kva.example`; the part before the @ as it is."""
    if address.isascii():
        return address
    try:
        # The same conversion as at sign-up (IDNA 2008 with UTS 46), not the older codec's.
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:  # stored under other rules: left as it is
        return address
    return f"{checked.local_part}@{checked.ascii_domain}"


def needs_smtputf8(address: str) -> bool:
    """Whether the address, as on_the_wire gives it, can travel only with SMTPUTF8."""
    return not address.isascii()
