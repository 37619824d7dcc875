"""The OpenID Connect provider: Kindkans login for other applications (Kindkans itself, the
console, the SWV's tools) by the field's conventions: discovery, JWKS with rotation, the
authorization code flow with PKCE (S256 only), ID tokens, short-lived JWT access tokens, refresh
tokens with rotation and reuse detection, client credentials for services, RFC 7662
introspection and RFC 7009 revocation for authenticated clients, RP-initiated logout, and
Back-Channel Logout 1.0 at the end of every session (a departure ends them at once).

JOSE is joserfc's (ES256 keys, sealed under the master key at rest); PKCE is authlib's. The
rules (lifetimes, what a code or a refresh token may be exchanged for) are in domain.py. Each
method runs in the caller's transaction, like AuthService's; the back-channel delivery is the
relay's task (`deliver_logouts`) and does its HTTP outside any transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwk, jwt
from joserfc.errors import JoseError
from sqlalchemy.engine import Connection, Engine, Row

from services.auth import store
from services.auth.domain import (
    ABSOLUTE_TIMEOUT,
    ACCESS_TOKEN_LIFETIME,
    ACCESS_TOKEN_TYPE,
    CODE_LIFETIME,
    ID_TOKEN_LIFETIME,
    KEY_PUBLISHED_AFTER_RETIREMENT,
    LOGOUT_TOKEN_LIFETIME,
    TOKEN_EXCHANGE,
    CodeGrant,
    RefreshGrant,
    Session,
    authentication_methods,
    decide_code_exchange,
    decide_refresh,
    decide_token_exchange,
    granted_scopes,
    next_logout_attempt,
    session_state,
    token_audience,
)
from shared.clock import Clock
from shared.crypto import seal, unseal

log = logging.getLogger(__name__)

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE)
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHM = "ES256"
GIVEN_UP = timedelta(days=36500)  # a delivery given up is never due again (and stays, with its status)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class OAuthError(Exception):
    """An error answer of the token, introspection or revocation endpoint (RFC 6749 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: str | None


@dataclass(frozen=True)
class AuthorizationRefused:
    """`redirect`: the error goes back to the client's (verified) redirect URI; otherwise the
    user is shown a page, because the redirect URI itself is not to be trusted."""

    error: str
    description: str
    redirect: str | None = None


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    secret: str  # shown once


class OpenIdProvider:
    def __init__(self, clock: Clock, master_key: bytes, issuer: str) -> None:
        self._clock = clock
        self._master = master_key
        self.issuer = issuer.rstrip("/")
        self._private_keys: dict[str, jwk.ECKey] = {}
        self._public_keys: dict[str, jwk.ECKey] = {}
        self._http: httpx.Client | None = None  # the back channel's, made by the relay's first round

    # --- discovery and keys -----------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "token_endpoint": f"{base}/oauth2/token",
            "jwks_uri": f"{base}/oauth2/jwks",
            "introspection_endpoint": f"{base}/oauth2/introspect",
            "revocation_endpoint": f"{base}/oauth2/revoke",
            "end_session_endpoint": f"{base}/oauth2/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(GRANT_TYPES),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile"],
            "claims_supported": ["sub", "sid", "amr", "auth_time", "role", "branch_id", "nonce"],
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "authorization_response_iss_parameter_supported": True,
        }

    def rotate_signing_key(self, connection: Connection) -> str:
        """A new key signs from now; the old one stays in the JWKS until what it signed expired."""
        now = self._clock.now()
        store.retire_signing_keys(connection, now)
        store.drop_signing_keys_retired_before(connection, now - KEY_PUBLISHED_AFTER_RETIREMENT)
        kid = f"{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        key = jwk.ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True)
        store.add_signing_key(connection, kid, seal(self._master, json.dumps(key.as_dict(private=True)).encode(),
                                                    f"signing-key/{kid}".encode()),
                              json.dumps(key.as_dict(private=False)), now)
        return kid

    def jwks(self, connection: Connection) -> dict[str, Any]:
        self._signing_key(connection)  # a provider without keys makes its first one
        published = store.published_signing_keys(connection, self._clock.now() - KEY_PUBLISHED_AFTER_RETIREMENT)
        return {"keys": [json.loads(row.public_jwk) for row in published]}

    def _signing_key(self, connection: Connection) -> jwk.ECKey:
        row = store.current_signing_key(connection)
        if row is None:
            self.rotate_signing_key(connection)
            row = store.current_signing_key(connection)
            assert row is not None
        # A key never changes under its kid: unsealed once per process, not per token.
        cached = self._private_keys.get(row.kid)
        if cached is None:
            private = unseal(self._master, row.private_jwk, f"signing-key/{row.kid}".encode())
            imported = jwk.import_key(json.loads(private))
            assert isinstance(imported, jwk.ECKey)
            cached = self._private_keys[row.kid] = imported
        return cached

    def _public_key(self, published: dict[str, Any]) -> jwk.ECKey:
        cached = self._public_keys.get(published["kid"])
        if cached is None:
            imported = jwk.import_key(published)
            assert isinstance(imported, jwk.ECKey)
            cached = self._public_keys[published["kid"]] = imported
        return cached

    def _sign(self, connection: Connection, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        key = self._signing_key(connection)
        return jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": typ}, dict(claims), key)

    def verify_jwt(self, connection: Connection, token: str, audience: str | None = None,
                   check_expiry: bool = True, typ: str | None = None) -> dict[str, Any] | None:
        """The claims of a token we signed (a published key, our issuer, the audience when one is
        asked for, the type when one is asked for, not expired); None for anything else. An ID
        token or a logout token is never taken for an access token: their `typ` differs."""
        keys = jwk.KeySet([self._public_key(key) for key in self.jwks(connection)["keys"]])
        try:
            decoded = jwt.decode(token[:8000], keys, algorithms=[ALGORITHM])
            if typ is not None and decoded.header.get("typ") != typ:
                return None
            options: dict[str, Any] = {"iss": {"essential": True, "value": self.issuer}}
            if audience:
                options["aud"] = {"essential": True, "value": audience}
            registry = jwt.JWTClaimsRegistry(now=int(self._clock.now().timestamp()), leeway=0, **options)
            if check_expiry:
                registry.validate(decoded.claims)
            else:
                registry.validate_iss(decoded.claims.get("iss"))
        except (JoseError, ValueError, TypeError):
            return None
        return dict(decoded.claims)

    # --- clients ----------------------------------------------------------------------------

    def register_client(self, connection: Connection, name: str, redirect_uris: list[str],
                        post_logout_redirect_uris: list[str], backchannel_logout_uri: str | None,
                        grant_types: list[str], scopes: list[str]) -> RegisteredClient:
        unknown = set(grant_types) - set(GRANT_TYPES)
        if unknown or not grant_types:
            raise ValueError(f"grant types must be among {', '.join(GRANT_TYPES)}")
        if "authorization_code" in grant_types and not redirect_uris:
            raise ValueError("a client of the authorization code flow needs a redirect URI")
        extra = [backchannel_logout_uri] if backchannel_logout_uri else []
        for uri in [*redirect_uris, *post_logout_redirect_uris, *extra]:
            if uri and not (uri.startswith("https://") or uri.startswith("http://127.0.0.1")
                            or uri.startswith("http://localhost")):
                raise ValueError(f"{uri}: only https (or loopback http) URIs")
            if uri and "#" in uri:
                raise ValueError(f"{uri}: no fragment")
        client_id = f"kk_{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        store.add_client(connection, client_id=client_id, secret_hash=_hash(secret), name=name,
                         redirect_uris=json.dumps(redirect_uris),
                         post_logout_redirect_uris=json.dumps(post_logout_redirect_uris),
                         backchannel_logout_uri=backchannel_logout_uri, grant_types=json.dumps(grant_types),
                         scopes=json.dumps(scopes), created_at=self._clock.now())
        return RegisteredClient(client_id, secret)

    def authenticate_client(self, connection: Connection, client_id: str | None, secret: str | None) -> Row[Any]:
        """The client whose id and secret these are, else invalid_client (401)."""
        row = store.find_client(connection, client_id[:64]) if client_id else None
        expected = row.secret_hash if row is not None else _hash("no such client")
        matches = hmac.compare_digest(expected, _hash(secret or ""))
        if row is None or not matches or row.revoked_at is not None:
            raise OAuthError("invalid_client", "Client authentication failed", 401)
        return row

    # --- the authorization endpoint ---------------------------------------------------------

    def authorization_request(self, connection: Connection, params: Mapping[str, str]
                              ) -> AuthorizationRequest | AuthorizationRefused:
        client = store.find_client(connection, params.get("client_id", "")[:64])
        redirect_uri = params.get("redirect_uri", "")
        if client is None or client.revoked_at is not None:
            return AuthorizationRefused("invalid_client", "Onbekende toepassing.")
        if redirect_uri not in json.loads(client.redirect_uris):
            # Exact match only; an unregistered URI gets no redirect (it could be an attacker's).
            return AuthorizationRefused("invalid_request", "Het terugkeeradres van deze toepassing klopt niet.")
        state = params.get("state")

        def refused(error: str, description: str) -> AuthorizationRefused:
            query = {"error": error, "error_description": description, "iss": self.issuer,
                     **({"state": state} if state else {})}
            return AuthorizationRefused(error, description, f"{redirect_uri}?{urlencode(query)}")

        if "authorization_code" not in json.loads(client.grant_types):
            return refused("unauthorized_client", "The client may not use the authorization code flow")
        if params.get("response_type") != "code":
            return refused("unsupported_response_type", "Only response_type=code")
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            return refused("invalid_scope", "The openid scope is required")
        if params.get("code_challenge_method") != "S256" or not 43 <= len(params.get("code_challenge", "")) <= 128:
            return refused("invalid_request", "PKCE with code_challenge_method=S256 is required")
        prompt = params.get("prompt")
        # OpenID's own scopes, and the API scopes this client is registered for (its users' tokens
        # then name those APIs as audience); anything else asked is left out, not refused.
        allowed = {"openid", "profile", *json.loads(client.scopes)}
        return AuthorizationRequest(client.client_id, redirect_uri, " ".join(s for s in scopes if s in allowed),
                                    state, params.get("nonce"), params["code_challenge"], prompt)

    def refused_login_required(self, request: AuthorizationRequest) -> str:
        query = {"error": "login_required", "iss": self.issuer, **({"state": request.state} if request.state else {})}
        return f"{request.redirect_uri}?{urlencode(query)}"

    def issue_code(self, connection: Connection, request: AuthorizationRequest, session_id: str, staff_id: str) -> str:
        """The redirect back to the client, with a single-use code bound to the session."""
        code = secrets.token_urlsafe(32)
        store.add_code(connection, code_hash=_hash(code), client_id=request.client_id, session_id=session_id,
                       staff_id=staff_id, redirect_uri=request.redirect_uri, code_challenge=request.code_challenge,
                       nonce=request.nonce, scope=request.scope, expires_at=self._clock.now() + CODE_LIFETIME)
        query = {"code": code, "iss": self.issuer, **({"state": request.state} if request.state else {})}
        return f"{request.redirect_uri}?{urlencode(query)}"

    # --- the token endpoint -----------------------------------------------------------------

    def token(self, connection: Connection, client: Row[Any], form: Mapping[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if grant_type not in json.loads(client.grant_types):
            raise OAuthError("unauthorized_client", "The client may not use this grant type")
        if grant_type == "authorization_code":
            return self._exchange_code(connection, client, form.get("code", ""), form.get("redirect_uri", ""),
                                       form.get("code_verifier", ""))
        if grant_type == "refresh_token":
            return self._refresh(connection, client, form.get("refresh_token", ""))
        if grant_type == "client_credentials":
            return self._client_credentials(connection, client, form.get("scope", ""))
        if grant_type == TOKEN_EXCHANGE:
            return self._exchange_token(connection, client, form)
        raise OAuthError("unsupported_grant_type", "Unsupported grant type")

    def _exchange_code(self, connection: Connection, client: Row[Any], code: str, redirect_uri: str,
                       verifier: str) -> dict[str, Any]:
        now = self._clock.now()
        row, first_use = store.take_code(connection, _hash(code), now) if code else (None, False)
        grant = None if row is None else CodeGrant(row.client_id, row.redirect_uri, row.code_challenge,
                                                    row.expires_at, used=not first_use)
        decision = decide_code_exchange(grant, client.client_id, redirect_uri, verifier, now)
        if decision == "replayed" and row is not None:
            # RFC 6749 4.1.2: a code used twice revokes the tokens issued on it.
            store.revoke_refresh_tokens_of_session(connection, row.session_id, now)
            log.warning("authorization code replayed", extra={"client_id": client.client_id})
        if decision != "issue" or row is None:
            raise OAuthError("invalid_grant", "The code is invalid, expired, used, or not for this client")
        if not self._session_active(connection, row.session_id):
            raise OAuthError("invalid_grant", "The session ended")
        return self._tokens(connection, client.client_id, row.session_id, row.staff_id, row.scope, row.nonce,
                            family_id=str(uuid.uuid4()))

    def _refresh(self, connection: Connection, client: Row[Any], refresh_token: str) -> dict[str, Any]:
        now = self._clock.now()
        row = store.find_refresh_token(connection, _hash(refresh_token)) if refresh_token else None
        grant = None if row is None else RefreshGrant(row.client_id, row.expires_at, row.rotated_at is not None,
                                                       row.revoked_at is not None)
        active = row is not None and self._session_active(connection, row.session_id)
        decision = decide_refresh(grant, client.client_id, now, active)
        if decision == "rotate" and row is not None and not store.rotate_refresh_token(connection, row.token_hash,
                                                                                     now):
            decision = "reuse"  # rotated by a parallel request in the meantime
        if decision == "reuse" and row is not None:
            store.revoke_family(connection, row.family_id, now)
            log.warning("refresh token reused: its family is revoked", extra={"client_id": client.client_id})
        if decision != "rotate" or row is None:
            raise OAuthError("invalid_grant", "The refresh token is invalid, expired, used or revoked")
        return self._tokens(connection, client.client_id, row.session_id, row.staff_id, row.scope, None,
                            family_id=row.family_id)

    def _client_credentials(self, connection: Connection, client: Row[Any], scope: str) -> dict[str, Any]:
        scopes = granted_scopes(scope, json.loads(client.scopes))
        if scopes is None:
            raise OAuthError("invalid_scope", "The client may not ask for that scope")
        now = self._clock.now()
        claims = {"iss": self.issuer, "sub": client.client_id, "aud": token_audience(client.client_id, scopes),
                  "client_id": client.client_id,
                  "scope": " ".join(scopes), "iat": int(now.timestamp()),
                  "exp": int((now + ACCESS_TOKEN_LIFETIME).timestamp()), "jti": str(uuid.uuid4())}
        return {"access_token": self._sign(connection, claims, "at+jwt"), "token_type": "Bearer",
                "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()), "scope": claims["scope"]}

    def _exchange_token(self, connection: Connection, client: Row[Any], form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 8693 token exchange: the client acting for the person whose token it holds. The new
        token names the person (`sub`, `role`, `branch_id`) and the client as actor (`act`), so an
        API records both; it lives no longer than the person's token and dies with their session."""
        if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
            raise OAuthError("invalid_request", "subject_token_type must be an access token")
        if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE or form.get("actor_token"):
            raise OAuthError("invalid_request", "only an access token for the authenticated client can be issued")
        subject = self.verify_jwt(connection, form.get("subject_token", ""), typ="at+jwt")
        if subject is not None and not self._session_active(connection, str(subject.get("sid", ""))):
            subject = None
        scopes = decide_token_exchange(subject, client.client_id, json.loads(client.scopes), form.get("scope", ""))
        if isinstance(scopes, str) or subject is None:
            raise OAuthError("invalid_grant" if subject is None or "scope" not in str(scopes) else "invalid_scope",
                             str(scopes))
        now = self._clock.now()
        expires = min(int(subject["exp"]), int((now + ACCESS_TOKEN_LIFETIME).timestamp()))
        claims = {"iss": self.issuer, "sub": subject["sub"], "aud": token_audience(client.client_id, scopes),
                  "client_id": client.client_id, "act": {"sub": client.client_id},
                  "scope": " ".join(scopes), "role": subject["role"], "branch_id": subject.get("branch_id"),
                  "sid": subject["sid"], "iat": int(now.timestamp()), "exp": expires, "jti": str(uuid.uuid4())}
        return {"access_token": self._sign(connection, claims, "at+jwt"), "token_type": "Bearer",
                "issued_token_type": ACCESS_TOKEN_TYPE, "expires_in": max(0, expires - int(now.timestamp())),
                "scope": claims["scope"]}

    def _tokens(self, connection: Connection, client_id: str, session_id: str, staff_id: str, scope: str,
                nonce: str | None, family_id: str) -> dict[str, Any]:
        now = self._clock.now()
        session = store.find_session_by_id(connection, session_id)
        account = store.find_account(connection, staff_id)
        assert session is not None and account is not None
        common = {"iss": self.issuer, "sub": staff_id, "aud": client_id, "iat": int(now.timestamp()),
                  "sid": session_id, "auth_time": int(session.created_at.timestamp()),
                  "amr": authentication_methods(session.second_factor)}
        facts = {"role": account.role, "branch_id": account.branch_id}
        access = {**common, **facts, "aud": token_audience(client_id, scope.split()), "client_id": client_id,
                  "scope": scope, "jti": str(uuid.uuid4()),
                  "exp": int((now + ACCESS_TOKEN_LIFETIME).timestamp())}
        identity = {**common, **facts, "exp": int((now + ID_TOKEN_LIFETIME).timestamp()),
                    **({"nonce": nonce} if nonce else {})}
        refresh = secrets.token_urlsafe(32)
        store.add_refresh_token(connection, token_hash=_hash(refresh), family_id=family_id, client_id=client_id,
                                session_id=session_id, staff_id=staff_id, scope=scope, issued_at=now,
                                expires_at=session.created_at + ABSOLUTE_TIMEOUT)
        return {"access_token": self._sign(connection, access, "at+jwt"), "token_type": "Bearer",
                "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()), "scope": scope,
                "id_token": self._sign(connection, identity), "refresh_token": refresh}

    # --- introspection and revocation -------------------------------------------------------

    def introspect(self, connection: Connection, token: str) -> dict[str, Any]:
        """RFC 7662: an access token (a JWT we signed, its session still active) or a refresh token
        (not rotated, not revoked, its session still active). No personal data beyond the ids."""
        now = self._clock.now()
        claims = self.verify_jwt(connection, token, typ="at+jwt") if token.count(".") == 2 else None
        if claims is not None:
            if "sid" in claims and not self._session_active(connection, str(claims["sid"])):
                return {"active": False}
            if not self._client_active(connection, str(claims.get("client_id", ""))):
                return {"active": False}
            return {"active": True, "token_type": "access_token",
                    **{key: claims[key] for key in ("sub", "client_id", "scope", "exp", "iat", "aud", "iss", "sid",
                                                    "amr", "role", "branch_id", "act") if key in claims}}
        row = store.find_refresh_token(connection, _hash(token))
        if row is None or row.rotated_at is not None or row.revoked_at is not None or now >= row.expires_at \
                or not self._session_active(connection, row.session_id) \
                or not self._client_active(connection, row.client_id):
            return {"active": False}
        return {"active": True, "token_type": "refresh_token", "sub": row.staff_id, "client_id": row.client_id,
                "scope": row.scope, "sid": row.session_id, "exp": int(row.expires_at.timestamp()),
                "iss": self.issuer}

    def revoke(self, connection: Connection, client: Row[Any], token: str) -> None:
        """RFC 7009: a refresh token of this client dies with its family. An access token lives at
        most five minutes and is not listed; revoking it is answered 200 like any other token."""
        row = store.find_refresh_token(connection, _hash(token))
        if row is not None and row.client_id == client.client_id:
            store.revoke_family(connection, row.family_id, self._clock.now())

    # --- sessions and logout ----------------------------------------------------------------

    def _client_active(self, connection: Connection, client_id: str) -> bool:
        """A revoked client's tokens die with it, at introspection at once."""
        client = store.find_client(connection, client_id[:64])
        return client is not None and client.revoked_at is None

    def _session_active(self, connection: Connection, session_id: str) -> bool:
        row = store.find_session_by_id(connection, session_id)
        if row is None or not row.active:
            return False
        account = store.find_account(connection, row.staff_id)
        session = Session(row.session_id, row.staff_id, row.created_at, row.last_seen_at, row.ended_at)
        return session_state(session, self._clock.now(), account.disabled_at if account else None) == "active"

    def session_ended(self, connection: Connection, session_id: str, staff_id: str) -> None:
        """Whatever any client holds of the session dies with it, and every client that was given
        it and asked to be told hears of it over the back channel (delivered by the relay)."""
        now = self._clock.now()
        store.revoke_refresh_tokens_of_session(connection, session_id, now)
        for client_id in store.clients_of_session(connection, session_id):
            client = store.find_client(connection, client_id)
            if client is not None and client.backchannel_logout_uri and client.revoked_at is None:
                store.add_logout_delivery(connection, client_id, client.backchannel_logout_uri, staff_id, session_id,
                                          now)

    def logout_redirect(self, connection: Connection, id_token_hint: str | None,
                        post_logout_redirect_uri: str | None, state: str | None) -> tuple[str | None, str | None]:
        """RP-initiated logout: (the session the hint names, where to send the browser). The
        redirect is only to a URI registered for the client the ID token was issued to."""
        claims = self.verify_jwt(connection, id_token_hint, check_expiry=False, typ="JWT") if id_token_hint else None
        session_id = str(claims["sid"]) if claims and "sid" in claims else None
        if not (claims and post_logout_redirect_uri):
            return session_id, None
        client = store.find_client(connection, str(claims.get("aud", ""))[:64])
        if client is None or post_logout_redirect_uri not in json.loads(client.post_logout_redirect_uris):
            return session_id, None
        return session_id, post_logout_redirect_uri + (f"?{urlencode({'state': state})}" if state else "")

    def logout_token(self, connection: Connection, client_id: str, staff_id: str, session_id: str) -> str:
        now = self._clock.now()
        return self._sign(connection, {
            "iss": self.issuer, "aud": client_id, "iat": int(now.timestamp()),
            "exp": int((now + LOGOUT_TOKEN_LIFETIME).timestamp()), "jti": str(uuid.uuid4()), "sub": staff_id,
            "sid": session_id, "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}, "logout+jwt")

    def deliver_logouts(self, engine: Engine, timeout_s: float = 2.0, limit: int = 50) -> int:
        """The relay's task: POST a freshly signed logout token to every client due one, until it
        answers 2xx (OpenID Back-Channel Logout 1.0 section 2.5), retrying with growing pauses.
        A client that fails is not tried again this round, so one that hangs costs a round at
        most `timeout_s`, not a timeout per ended session."""
        with engine.connect() as connection:
            due = store.due_logout_deliveries(connection, self._clock.now(), limit)
        if self._http is None:
            self._http = httpx.Client(timeout=timeout_s, headers={"Cache-Control": "no-store"})
        failing: set[str] = set()
        delivered = 0
        for row in due:
            if row.client_id in failing:
                continue
            with engine.connect() as connection:
                token = self.logout_token(connection, row.client_id, row.staff_id, row.session_id)
            try:
                answer = self._http.post(row.uri, data={"logout_token": token})
                status, ok = str(answer.status_code), 200 <= answer.status_code < 300
            except httpx.HTTPError as error:
                status, ok = type(error).__name__, False
            now = self._clock.now()
            with engine.begin() as connection:
                if ok:
                    store.record_logout_attempt(connection, row.id, status, now, now)
                    delivered += 1
                    continue
                failing.add(row.client_id)
                retry_at = next_logout_attempt(row.attempts, row.created_at, now)
                if retry_at is None:
                    log.error("back-channel logout given up", extra={"client_id": row.client_id})
                store.record_logout_attempt(connection, row.id, status, None, retry_at or now + GIVEN_UP)
        return delivered
