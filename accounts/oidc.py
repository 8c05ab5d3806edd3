"""Single sign-on with an OpenID Connect provider, through mozilla-django-oidc.

The flow is the library's (authorization code with PKCE and a nonce, RS256 ID tokens checked
against the provider's JWKS); what Docent adds:

- Endpoints are resolved when someone signs in, never at start-up: the explicit
  DOCENT_OIDC_*_ENDPOINT settings, else the issuer's discovery document, fetched once with
  DOCENT_OIDC_TIMEOUT_S and cached for an hour. A provider that is down costs a message on the
  login page, not a process that will not start.
- The ID token must name this client in `aud` and, when the issuer is known, the issuer in
  `iss`; userinfo must be about the same `sub`.
- An account is found or made only from an address the provider says it verified
  (`email_verified`, or DOCENT_OIDC_EMAIL_VERIFIED_CLAIM), matched case-insensitively. Linking an account whose own address was never
  confirmed also drops its password: whoever registered the address before its owner cannot
  sign in with it afterwards (pre-account hijacking).
- DOCENT_OIDC_STAFF_GROUP makes the provider's group claim the source of Docent's staff
  (staff and superuser, as the first account is), granted or removed on each sign-in.
- The first account of a fresh install, made by SSO, is its administrator as with a password
  sign-up (DOCENT_FIRST_SIGNUP_ADMIN), so an SSO-only install gets one; not when a staff group
  is configured, which alone then decides who is staff.
- Every SSO sign-in and failure is audited, and a failure is explained on the login page.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts import audit, services
from core import ratelimit

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_CACHE_S = 3600

PROVIDER_DOWN = (
    "{provider} cannot be reached just now, so signing in with it is not possible. Try again shortly."
)
FAILED = "Signing in with {provider} did not work: {reason}"
REASONS = {
    "no_email": "the provider did not share a valid email address. Ask your administrator to release the "
    "`email` claim to Docent.",
    "email_unverified": "the provider has not verified your email address, and Docent links accounts by "
    "verified addresses only. Verify the address with the provider, then try again.",
    "inactive": "this account is disabled on Docent.",
    "invalid_token": "the provider's answer could not be verified. Start again.",
    "provider_error": "the provider did not answer as expected. Try again shortly.",
    "provider_refused": "the provider refused or cancelled the sign-in{detail}.",
    "expired": "this sign-in was started in another browser or has expired. Start again.",
    "refused": "the provider's answer was refused. Start again.",
    "bound_elsewhere": "this email address belongs to a Docent account that signs in as another "
    "{provider} account. Ask your administrator.",
}


# --- configuration -------------------------------------------------------------


def enabled() -> bool:
    return bool(settings.OIDC_RP_CLIENT_ID)


def sso_only() -> bool:
    """Whether the provider is the only way in (password sign-in, sign-up and reset are off)."""
    return enabled() and bool(settings.OIDC_ONLY)


def provider_name() -> str:
    return str(settings.OIDC_PROVIDER_NAME)


def login_context() -> dict[str, Any]:
    """What the login page and the pages that point at SSO need to know."""
    only = sso_only()
    return {
        "sso": enabled(),
        "sso_name": provider_name(),
        "sso_only": only,
        "password_sign_in": not only or bool(settings.OIDC_STAFF_PASSWORD),
    }


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


class ProviderUnavailable(Exception):
    """The discovery document could not be fetched or is not one."""


def _discover(issuer: str) -> dict[str, Any]:
    key = f"oidc:discovery:{issuer}"
    document = cache.get(key)
    if document is not None:
        return document
    url = issuer.rstrip("/") + DISCOVERY_PATH
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"discovery at {url} failed: {exc}") from None
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"discovery at {url} is not a JSON object")
    # OpenID Connect Discovery 1.0, section 4.3: the document must be the issuer's own.
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise ProviderUnavailable(f"discovery at {url} names another issuer: {document.get('issuer')!r}")
    cache.set(key, document, DISCOVERY_CACHE_S)
    return document


def provider() -> Provider:
    """The provider's endpoints: explicit settings first, then the issuer's discovery document."""
    explicit = {
        "authorization_endpoint": settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        "token_endpoint": settings.OIDC_OP_TOKEN_ENDPOINT,
        "userinfo_endpoint": settings.OIDC_OP_USER_ENDPOINT,
        "jwks_uri": settings.OIDC_OP_JWKS_ENDPOINT,
    }
    issuer = str(settings.OIDC_ISSUER or "")
    if all(explicit.values()):
        return Provider(issuer=issuer, **explicit)
    document = _discover(issuer)
    resolved = {name: value or document.get(name) for name, value in explicit.items()}
    missing = sorted(name for name, value in resolved.items() if not isinstance(value, str) or not value)
    if missing:
        raise ProviderUnavailable(f"the discovery document of {issuer} lacks {missing}")
    return Provider(issuer=str(document["issuer"]), **{name: str(value) for name, value in resolved.items()})


# --- failures ------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    code: str
    message: str


def _fail(request: HttpRequest | None, code: str, **detail: str) -> None:
    """Remember why the sign-in failed (the first reason wins: it is the most specific)."""
    if request is None or getattr(request, "oidc_failure", None) is not None:
        return
    reason = REASONS[code].format(detail=detail.get("detail", ""), provider=provider_name())
    request.oidc_failure = Failure(code, FAILED.format(provider=provider_name(), reason=reason))  # type: ignore[attr-defined]


def _subject(claims: dict[str, Any]) -> str:
    """The provider's id of the person (`sub`): stable where the email address may not be."""
    return str(claims.get("sub") or "").strip()[:255]


def _identity() -> str:
    """Which provider an account is bound to: its issuer, or its authorization endpoint when the
    endpoints are configured without one."""
    return str(settings.OIDC_ISSUER or settings.OIDC_OP_AUTHORIZATION_ENDPOINT or "")[:500]


def _is_true(value: Any) -> bool:
    # Some providers (Amazon Cognito) send the boolean as a string.
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _groups(claims: dict[str, Any]) -> list[str]:
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return []


# --- authentication backends -------------------------------------------------------


class PasswordBackend(ModelBackend):
    """Django's password check, used in place of ModelBackend when DOCENT_OIDC_ONLY is on: it
    refuses everyone but staff, and staff too unless DOCENT_OIDC_STAFF_PASSWORD (break-glass)."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or not sso_only():
            return user
        if settings.OIDC_STAFF_PASSWORD and user.is_staff:
            return user
        return None


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, linking accounts by verified email only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django makes a backend for every authenticate() call, password sign-ins included:
        # nothing is read from the network here; authenticate() resolves the endpoints.
        self.UserModel = get_user_model()
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_OP_TOKEN_ENDPOINT = self.OIDC_OP_USER_ENDPOINT = self.OIDC_OP_JWKS_ENDPOINT = ""
        self.issuer = ""

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        # Only the callback view passes a nonce. A password sign-in, or a form posted to some
        # page with ?code=&state= in its address, never exchanges a code here.
        if request is None or not enabled() or "nonce" not in kwargs or "password" in kwargs:
            return None
        try:
            endpoints = provider()
        except ProviderUnavailable as exc:
            log.warning("oidc provider unavailable", extra={"error": str(exc)})
            _fail(request, "provider_error")
            return None
        self.OIDC_OP_TOKEN_ENDPOINT = endpoints.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = endpoints.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = endpoints.jwks_uri
        self.issuer = endpoints.issuer
        try:
            user = super().authenticate(request, **kwargs)
        except SuspiciousOperation as exc:  # signature, algorithm, nonce, audience, issuer, key
            log.warning("oidc token refused", extra={"error": str(exc)})
            _fail(request, "invalid_token")
            return None
        except jwt.PyJWTError as exc:  # expired, malformed
            log.warning("oidc token refused", extra={"error": str(exc)})
            _fail(request, "invalid_token")
            return None
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            log.warning("oidc provider error", extra={"error": str(exc)})
            _fail(request, "provider_error")
            return None
        if user is None:
            _fail(request, "refused")
        return user

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token was issued to another client (aud).")
        if self.issuer and str(payload.get("iss", "")).rstrip("/") != self.issuer.rstrip("/"):
            raise SuspiciousOperation("The ID token comes from another issuer (iss).")
        if "exp" not in payload:
            raise SuspiciousOperation("The ID token has no expiry (exp).")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The userinfo claims over the ID token's (groups and email_verified are often in only one)."""
        info = super().get_userinfo(access_token, id_token, payload)
        if not isinstance(info, dict) or info.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo answer is about another subject (sub).")
        return {**payload, **info}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        email = str(claims.get("email") or "").strip()
        try:
            validate_email(email)
        except ValidationError:
            _fail(self.request, "no_email")
            return False
        self.request.oidc_email = email.lower()  # for the audit event of a failure
        if not _is_true(claims.get(settings.OIDC_EMAIL_VERIFIED_CLAIM)):
            _fail(self.request, "email_unverified")
            return False
        subject = _subject(claims)
        if not subject:
            _fail(self.request, "invalid_token")
            return False
        bound = self.UserModel.objects.filter(oidc_issuer=_identity(), oidc_subject=subject)
        elsewhere = (
            self.UserModel.objects.filter(email__iexact=email)
            .exclude(oidc_subject="")
            .exclude(oidc_issuer=_identity(), oidc_subject=subject)
        )
        if not bound.exists() and elsewhere.exists():
            # The address was given to someone else at the provider (a new colleague, a renamed
            # mailbox): the account stays with the identity it was first linked to.
            _fail(self.request, "bound_elsewhere")
            return False
        return True

    def get_user(self, user_id: Any) -> Any:
        # The library's returns disabled accounts too: their sessions must end, as
        # ModelBackend's do.
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        """The account bound to this provider identity; else the one with the verified address
        (linked now, and bound from then on)."""
        bound = self.UserModel.objects.filter(oidc_issuer=_identity(), oidc_subject=_subject(claims))
        if bound.exists():
            return bound
        return self.UserModel.objects.filter(email__iexact=str(claims["email"]).strip(), oidc_subject="")

    def create_user(self, claims: dict[str, Any]) -> Any:
        """A new account for a verified address: confirmed at once, no password, the default tier."""
        email = str(claims["email"]).strip().lower()
        try:
            with transaction.atomic():
                user = self.UserModel.objects.create_user(
                    email=email, password=None, name=_name(claims), email_verified=True
                )
                user.oidc_issuer, user.oidc_subject = _identity(), _subject(claims)
                user.save(update_fields=["oidc_issuer", "oidc_subject"])
                # The first account of an install is its administrator, as with a password
                # sign-up (DOCENT_FIRST_SIGNUP_ADMIN), unless the provider's group decides staff.
                first_admin = not settings.OIDC_STAFF_GROUP and services._first_account_claim(user=user)
        except IntegrityError:  # the same person's sign-in in another tab made it a moment ago
            return self.update_user(self.filter_users_by_claims(claims).get(), claims)
        log.info("account created by single sign-on", extra={"user_id": str(user.pk), "first": first_admin})
        fields = self._staff_from_groups(user, claims)
        if fields:
            user.save(update_fields=fields)
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        """Link an existing account: its address is now verified, staff follows the group claim."""
        fields: list[str] = []
        if not user.oidc_subject:
            user.oidc_issuer, user.oidc_subject = _identity(), _subject(claims)
            fields += ["oidc_issuer", "oidc_subject"]
        if user.email_verified_at is None:
            # Whoever set this password never proved the address: it must not survive the
            # link, or they could sign in to the account its real owner now uses.
            user.email_verified_at = timezone.now()
            user.set_unusable_password()
            fields += ["email_verified_at", "password"]
            services.user_tokens_revoke(user=user)
        if not user.name and _name(claims):
            user.name = _name(claims)
            fields.append("name")
        fields += self._staff_from_groups(user, claims)
        if fields:
            user.save(update_fields=fields)
        if not user.is_active:
            _fail(self.request, "inactive")
        return user

    def _staff_from_groups(self, user: Any, claims: dict[str, Any]) -> list[str]:
        group = settings.OIDC_STAFF_GROUP
        if not group:
            return []
        staff = group in _groups(claims)
        if user.is_staff == staff and user.is_superuser == staff:
            return []
        user.is_staff = user.is_superuser = staff
        audit.record(
            "staff.user_changed",
            target=user.email,
            request=self.request,
            detail={"is_staff": staff, "source": "oidc_group", "group": group},
        )
        log.info("staff changed by the provider's group", extra={"user_id": str(user.pk), "staff": staff})
        return ["is_staff", "is_superuser"]


def _name(claims: dict[str, Any]) -> str:
    name = claims.get("name") or " ".join(
        str(claims[part]) for part in ("given_name", "family_name") if claims.get(part)
    )
    return str(name or "").strip()[:150]


# --- views (mozilla_django_oidc.urls loads them: OIDC_AUTHENTICATE_CLASS, OIDC_CALLBACK_CLASS) ---


class AuthenticationRequestView(OIDCAuthenticationRequestView):
    """/oidc/authenticate/: off (404) until configured; sends the browser to the provider."""

    def __init__(self, **kwargs: Any) -> None:
        # The library reads the endpoint here; it is resolved per request in get().
        View.__init__(self, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider().authorization_endpoint
        except ProviderUnavailable as exc:
            log.warning("oidc provider unavailable", extra={"error": str(exc)})
            messages.error(request, PROVIDER_DOWN.format(provider=provider_name()))
            return redirect("accounts:login")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class CallbackView(OIDCAuthenticationCallbackView):
    """/oidc/callback/: the provider sends the browser back here with a code (or an error)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("Single sign-on is not configured.")
        # Each callback costs requests to the provider: limited like password sign-ins.
        refusal = ratelimit.hit(ratelimit.SIGNIN_IP, request)
        if refusal is not None:
            messages.error(request, refusal.message)
            return redirect("accounts:login")
        if request.GET.get("error"):
            code = str(request.GET["error"])
            shown = f" ({code})" if re.fullmatch(r"[a-z_]{1,40}", code) else ""
            _fail(request, "provider_refused", detail=shown)
        try:
            return super().get(request)
        except SuspiciousOperation:  # a state this browser's session never started
            _fail(request, "expired")
            return self.login_failure()

    # A sign-in is audited by accounts.signals (Django's user_logged_in, detail.backend
    # "OIDCBackend"); a failure here, with its reason (that receiver skips SSO attempts).
    def login_failure(self) -> HttpResponse:
        request = self.request
        if getattr(request, "oidc_failure", None) is None and getattr(self, "user", None) is not None:
            _fail(request, "inactive")
        failure = getattr(request, "oidc_failure", None) or Failure(
            "refused", FAILED.format(provider=provider_name(), reason=REASONS["refused"])
        )
        audit.record(
            "auth.sign_in_failed",
            target=getattr(request, "oidc_email", ""),
            request=request,
            detail={"method": "oidc", "reason": failure.code},
        )
        messages.error(request, failure.message)
        return redirect("accounts:login")
