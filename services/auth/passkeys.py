"""Passkeys (WebAuthn level 3) as a second factor, through the `webauthn` library: the options a
browser needs, and the checks of what it answers. User verification is required (the passkey
itself asks for a PIN or a fingerprint), so a passkey is a factor of its own beside the password.

The relying party id is the host of the login pages' public URL. Browsers accept a domain name
or `localhost` there, never an IP address: with the run command's default
(http://127.0.0.1:8002) passkeys are offered but the browser refuses them; set
SAMENVEILIG_AUTH_URL to http://localhost:8002 (or the deployment's https name) to use them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import webauthn
from webauthn.helpers import exceptions
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

RP_NAME = "Kindkans (PPO Rotterdam)"
# Whatever a browser (or someone posing as one) sends that is not a valid answer.
REFUSED = (exceptions.InvalidRegistrationResponse, exceptions.InvalidAuthenticationResponse,
           exceptions.InvalidJSONStructure, exceptions.InvalidCBORData, exceptions.InvalidAuthenticatorDataStructure,
           exceptions.InvalidAttestationObjectStructure, exceptions.InvalidPublicKeyStructure,
           exceptions.InvalidBackupFlags, ValueError, KeyError, TypeError)
TIMEOUT_MS = 120_000


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def from_b64url(value: str) -> bytes:
    return webauthn.base64url_to_bytes(value)


def passkey_id(credential_id: str) -> str:
    """What the log says of a passkey: a digest, not the credential id itself."""
    return hashlib.sha256(credential_id.encode()).hexdigest()[:16]


def challenge_of(credential: dict[str, Any]) -> str | None:
    """The challenge the browser signed (base64url), read from its clientDataJSON; None when the
    answer is not a WebAuthn credential."""
    try:
        client_data = base64.urlsafe_b64decode(credential["response"]["clientDataJSON"] + "==")
        challenge = json.loads(client_data)["challenge"]
    except (KeyError, TypeError, ValueError):
        return None
    return challenge if isinstance(challenge, str) and len(challenge) <= 200 else None


@dataclass(frozen=True)
class NewPasskey:
    credential_id: str
    public_key: bytes
    sign_count: int


class WebAuthn:
    def __init__(self, public_url: str) -> None:
        self.origin = public_url.rstrip("/")
        self.rp_id = urlsplit(self.origin).hostname or "localhost"

    def registration_options(self, staff_id: str, username: str, existing: list[str], challenge: bytes) -> str:
        options = webauthn.generate_registration_options(
            rp_id=self.rp_id, rp_name=RP_NAME, user_id=staff_id.encode(), user_name=username,
            user_display_name=username, challenge=challenge, timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                # Discoverable: the login's options then need no list of the account's
                # credentials, which would tell a stranger which names have passkeys.
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c)) for c in existing])
        return webauthn.options_to_json(options)

    def verify_registration(self, credential: dict[str, Any], challenge: bytes) -> NewPasskey | None:
        try:
            verified = webauthn.verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, require_user_verification=True)
        except REFUSED:
            return None
        return NewPasskey(b64url(verified.credential_id), verified.credential_public_key, verified.sign_count)

    def authentication_options(self, challenge: bytes) -> str:
        options = webauthn.generate_authentication_options(
            rp_id=self.rp_id, challenge=challenge, timeout=TIMEOUT_MS, allow_credentials=[],
            user_verification=UserVerificationRequirement.REQUIRED)
        return webauthn.options_to_json(options)

    def verify_authentication(self, credential: dict[str, Any], challenge: bytes, public_key: bytes,
                              sign_count: int) -> int | None:
        """The authenticator's new signature counter, or None when the assertion is not valid."""
        try:
            verified = webauthn.verify_authentication_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, credential_public_key=public_key,
                credential_current_sign_count=sign_count, require_user_verification=True)
        except REFUSED:
            return None
        return int(verified.new_sign_count)
