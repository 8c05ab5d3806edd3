"""Single sign-on against a real OpenID provider on loopback, through mozilla-django-oidc's flow.

The provider is a small HTTP server started by the tests (discovery, /authorize, /token,
/userinfo, /jwks) that signs RS256 ID tokens with a key made here. Docent's side is not
mocked: the test client starts the sign-in, the test plays the browser at the provider's
/authorize, and the callback exchanges the code over HTTP, fetches the JWKS and userinfo and
checks the signature, nonce, PKCE, audience and issuer for real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD, UserFactory
from config.tests.processes import manage

pytestmark = pytest.mark.django_db

CLIENT_ID = "docent-test"
CLIENT_SECRET = "s3cret-of-the-client"  # noqa: S105
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeProvider:
    """A minimal OpenID provider: authorization code flow with PKCE, RS256 ID tokens."""

    def __init__(self) -> None:
        self.person: dict[str, Any] = {}
        self.groups_in_id_token: list[str] | None = None
        self.audience = CLIENT_ID
        self.tamper = False
        self.sign_with = KEY
        self.discoveries = 0
        self.token_requests = 0
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def sign_in_as(
        self, email: str, *, verified: Any = True, name: str = "Ada Lovelace", **extra: Any
    ) -> None:
        self.person = {"sub": "sub-" + email.lower(), "email": email, "name": name, **extra}
        if verified is not None:
            self.person["email_verified"] = verified

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "userinfo_endpoint": self.issuer + "/userinfo",
            "jwks_uri": self.issuer + "/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": grant["person"]["sub"],
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            "email": grant["person"]["email"],
        }
        if self.groups_in_id_token is not None:
            claims["groups"] = self.groups_in_id_token
        token = jwt.encode(claims, self.sign_with, algorithm="RS256", headers={"kid": "test-key"})
        if self.tamper:  # another payload under the original signature
            header, _, signature = token.split(".")
            forged = {**claims, "email": "mallory@example.com"}
            body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
            token = f"{header}.{body}.{signature}"
        return token

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path.endswith("/.well-known/openid-configuration"):  # any issuer path: its own issuer
                    provider.discoveries += 1
                    return self._json(200, provider.discovery())
                if url.path == "/jwks":
                    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
                    return self._json(
                        200, {"keys": [{**jwk, "kid": "test-key", "alg": "RS256", "use": "sig"}]}
                    )
                if url.path == "/authorize":
                    if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                        return self._json(400, {"error": "invalid_request"})
                    if query.get("code_challenge_method") != "S256" or not query.get("nonce"):
                        return self._json(400, {"error": "invalid_request"})
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {**query, "person": dict(provider.person)}
                    target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                    return None
                if url.path == "/userinfo":
                    grant = provider.tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
                    if grant is None:
                        return self._json(401, {"error": "invalid_token"})
                    return self._json(200, grant["person"])
                return self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                if urlsplit(self.path).path != "/token":
                    return self._json(404, {"error": "not_found"})
                provider.token_requests += 1
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                grant = provider.codes.pop(form.get("code", ""), None)
                if grant is None or form.get("grant_type") != "authorization_code":
                    return self._json(400, {"error": "invalid_grant"})
                if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                    return self._json(401, {"error": "invalid_client"})
                if form.get("redirect_uri") != grant["redirect_uri"]:
                    return self._json(400, {"error": "invalid_grant"})
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["code_challenge"]:
                    return self._json(400, {"error": "invalid_grant", "error_description": "PKCE"})
                access = secrets.token_urlsafe(16)
                provider.tokens[access] = grant
                return self._json(
                    200,
                    {
                        "access_token": access,
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": provider.id_token(grant),
                    },
                )

        return Handler


@pytest.fixture
def provider(settings: Any) -> Iterator[FakeProvider]:
    fake = FakeProvider()
    fake.thread.start()
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ISSUER = fake.issuer  # the endpoints are discovered on the first sign-in
    settings.OIDC_PROVIDER_NAME = "Acme ID"
    settings.OIDC_ONLY = False
    settings.OIDC_STAFF_PASSWORD = False
    settings.OIDC_STAFF_GROUP = ""
    settings.OIDC_GROUPS_CLAIM = "groups"
    settings.OIDC_EMAIL_VERIFIED_CLAIM = "email_verified"
    settings.OIDC_TIMEOUT = 5.0
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def sso_only(settings: Any, provider: FakeProvider) -> FakeProvider:
    """DOCENT_OIDC_ONLY as settings.py sets it up: the password backend refuses all but break-glass staff."""
    settings.OIDC_ONLY = True
    settings.AUTHENTICATION_BACKENDS = ["accounts.oidc.PasswordBackend", "accounts.oidc.OIDCBackend"]
    return provider


def sign_in(client: Client, provider: FakeProvider, *, start: str = "/oidc/authenticate/") -> Any:
    """The browser's round trip: Docent -> the provider's /authorize -> Docent's callback."""
    begun = client.get(start)
    assert begun.status_code == 302, begun.content[:300]
    assert begun["Location"].startswith(provider.issuer + "/authorize?")
    at_provider = requests.get(begun["Location"], allow_redirects=False, timeout=5)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["Location"])
    assert (back.netloc, back.path) == ("testserver", "/oidc/callback/")
    return client.get(f"{back.path}?{back.query}", follow=True)


def signed_in_as(client: Client) -> Any:
    user = client.get("/").wsgi_request.user
    return user if user.is_authenticated else None


def page_text(response: Any) -> str:
    return response.content.decode()


# --- creating and linking accounts -----------------------------------------------------


def test_a_new_verified_address_gets_an_account_and_is_signed_in(
    provider: FakeProvider, client: Client
) -> None:
    provider.sign_in_as("Ada@Example.com")
    response = sign_in(client, provider)
    assert response.redirect_chain[-1][0] == "/"  # projects:list
    user = get_user_model().objects.get(email="ada@example.com")
    assert signed_in_as(client) == user
    assert user.email_verified_at is not None
    assert user.tier == "free"
    assert user.name == "Ada Lovelace"
    assert not user.has_usable_password()
    assert not user.is_staff
    assert AuditEvent.objects.filter(action="auth.sign_in", actor=user).count() == 1
    assert provider.discoveries == 1


def test_an_existing_account_with_that_address_is_linked(provider: FakeProvider, client: Client) -> None:
    existing = UserFactory(email="grace@example.com")
    provider.sign_in_as("GRACE@example.com")
    sign_in(client, provider)
    assert signed_in_as(client).pk == existing.pk
    assert get_user_model().objects.filter(email__iexact="grace@example.com").count() == 1
    existing.refresh_from_db()
    assert existing.check_password(PASSWORD), "a confirmed account keeps its password"


def test_an_account_stays_bound_to_the_provider_identity_it_was_linked_to(
    provider: FakeProvider, client: Client
) -> None:
    """An address the provider later gives someone else (a new colleague, a renamed mailbox)
    does not reach the account: it signs in as the provider's account id (`sub`) it was linked to."""
    provider.sign_in_as("sam@example.com")
    sign_in(client, provider)
    sam = get_user_model().objects.get(email="sam@example.com")
    assert sam.oidc_subject == "sub-sam@example.com"
    client.logout()

    provider.sign_in_as("sam@example.com", sub="someone-new")
    response = sign_in(client, provider)
    assert signed_in_as(client) is None
    assert "belongs to a Docent account that signs in as another" in page_text(response)
    assert AuditEvent.objects.filter(action="auth.sign_in_failed", target="sam@example.com").exists()

    # The identity it is bound to still signs in, even after the provider changed its address.
    provider.sign_in_as("samantha@example.com", sub="sub-sam@example.com")
    sign_in(client, provider)
    assert signed_in_as(client) == sam


def test_linking_an_unconfirmed_account_confirms_it_and_drops_the_password_someone_else_may_have_set(
    provider: FakeProvider, client: Client
) -> None:
    squatted = UserFactory(email="victim@example.com", email_verified_at=None)
    provider.sign_in_as("victim@example.com")
    sign_in(client, provider)
    squatted.refresh_from_db()
    assert signed_in_as(client).pk == squatted.pk
    assert squatted.email_verified_at is not None
    assert not squatted.has_usable_password()
    assert not Client().login(username="victim@example.com", password=PASSWORD)


@pytest.mark.parametrize("verified", [False, None, "false"], ids=["false", "missing", "string-false"])
def test_an_unverified_address_is_refused_and_nothing_is_created_or_linked(
    provider: FakeProvider, client: Client, verified: Any
) -> None:
    existing = UserFactory(email="linked@example.com")
    for email in ("nobody@example.com", "linked@example.com"):
        provider.sign_in_as(email, verified=verified)
        response = sign_in(client, provider)
        assert response.redirect_chain[-1][0] == "/accounts/login/"
        assert "has not verified your email address" in page_text(response)
        assert signed_in_as(client) is None
    assert not get_user_model().objects.filter(email="nobody@example.com").exists()
    assert not AuditEvent.objects.filter(action="auth.sign_in", actor=existing).exists()
    failures = AuditEvent.objects.filter(action="auth.sign_in_failed").order_by("at")
    assert [(event.target, event.detail) for event in failures] == [
        ("nobody@example.com", {"method": "oidc", "reason": "email_unverified"}),
        ("linked@example.com", {"method": "oidc", "reason": "email_unverified"}),
    ]


def test_a_verified_string_true_from_the_provider_counts_as_verified(
    provider: FakeProvider, client: Client
) -> None:
    provider.sign_in_as("cognito@example.com", verified="true")
    sign_in(client, provider)
    assert signed_in_as(client).email == "cognito@example.com"


def test_a_disabled_account_is_not_signed_in(provider: FakeProvider, client: Client) -> None:
    UserFactory(email="gone@example.com", is_active=False)
    provider.sign_in_as("gone@example.com")
    response = sign_in(client, provider)
    assert "this account is disabled" in page_text(response)
    assert signed_in_as(client) is None


def test_disabling_an_account_ends_its_sso_session(provider: FakeProvider, client: Client) -> None:
    provider.sign_in_as("leaver@example.com")
    sign_in(client, provider)
    user = signed_in_as(client)
    assert user is not None
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert signed_in_as(client) is None


def test_the_verified_claim_can_be_another_one(provider: FakeProvider, settings: Any, client: Client) -> None:
    settings.OIDC_EMAIL_VERIFIED_CLAIM = "xms_edov"  # Entra ID's
    provider.sign_in_as("entra@example.com", verified=None, xms_edov=True)
    sign_in(client, provider)
    assert signed_in_as(client).email == "entra@example.com"
    provider.sign_in_as("entra2@example.com", verified=True)  # email_verified alone is not read now
    assert "has not verified" in page_text(sign_in(Client(), provider))


def test_the_sign_in_returns_to_the_page_that_asked_for_it(provider: FakeProvider, client: Client) -> None:
    provider.sign_in_as("next@example.com")
    response = sign_in(client, provider, start="/oidc/authenticate/?next=/accounts/password/")
    assert response.redirect_chain[-1][0] == "/accounts/password/"
    response = sign_in(Client(), provider, start="/oidc/authenticate/?next=https://evil.example/")
    assert response.redirect_chain[-1][0] == "/"  # projects:list


# --- staff from the provider's group ----------------------------------------------------


def test_the_staff_group_makes_staff_and_leaving_it_removes_staff(
    provider: FakeProvider, settings: Any
) -> None:
    settings.OIDC_STAFF_GROUP = "docent-admins"
    provider.sign_in_as("admin@example.com")
    provider.groups_in_id_token = ["engineering", "docent-admins"]  # the claim is in the ID token only
    browser = Client()
    sign_in(browser, provider)
    user = get_user_model().objects.get(email="admin@example.com")
    assert (user.is_staff, user.is_superuser) == (True, True)
    assert browser.get("/admin/").status_code == 200

    provider.groups_in_id_token = ["engineering"]
    browser = Client()
    sign_in(browser, provider)
    user.refresh_from_db()
    assert (user.is_staff, user.is_superuser) == (False, False)
    assert browser.get("/admin/").status_code == 302
    changes = AuditEvent.objects.filter(action="staff.user_changed", target="admin@example.com").order_by(
        "at"
    )
    assert [event.detail["is_staff"] for event in changes] == [True, False]


def test_the_groups_claim_name_is_configurable(provider: FakeProvider, settings: Any) -> None:
    settings.OIDC_STAFF_GROUP = "/docent/admins"
    settings.OIDC_GROUPS_CLAIM = "roles"
    provider.sign_in_as("keycloak@example.com", roles=["/docent/admins"])  # from userinfo
    sign_in(Client(), provider)
    assert get_user_model().objects.get(email="keycloak@example.com").is_staff


def test_without_a_staff_group_sign_in_never_changes_staff(provider: FakeProvider) -> None:
    staff = UserFactory(email="boss@example.com", is_staff=True, is_superuser=True)
    provider.sign_in_as("boss@example.com")
    provider.groups_in_id_token = []
    sign_in(Client(), provider)
    staff.refresh_from_db()
    assert staff.is_staff


def test_the_first_account_of_a_fresh_install_made_by_sso_is_its_administrator(
    fresh_install: None, provider: FakeProvider, settings: Any
) -> None:
    settings.FIRST_SIGNUP_ADMIN = True
    provider.sign_in_as("founder@example.com")
    sign_in(Client(), provider)
    provider.sign_in_as("second@example.com")
    sign_in(Client(), provider)
    users = get_user_model().objects
    assert users.get(email="founder@example.com").is_superuser
    assert not users.get(email="second@example.com").is_staff


# --- what is refused -------------------------------------------------------------------


def test_a_tampered_id_token_signature_is_refused(provider: FakeProvider, client: Client) -> None:
    provider.tamper = True
    provider.sign_in_as("honest@example.com")
    response = sign_in(client, provider)
    assert "could not be verified" in page_text(response)
    assert signed_in_as(client) is None
    assert (
        get_user_model().objects.filter(email__in=["honest@example.com", "mallory@example.com"]).count() == 0
    )
    assert AuditEvent.objects.get(action="auth.sign_in_failed").detail["reason"] == "invalid_token"


def test_an_id_token_signed_with_another_key_is_refused(provider: FakeProvider, client: Client) -> None:
    provider.sign_with = OTHER_KEY
    provider.sign_in_as("honest@example.com")
    assert "could not be verified" in page_text(sign_in(client, provider))
    assert signed_in_as(client) is None


def test_an_id_token_issued_to_another_client_is_refused(provider: FakeProvider, client: Client) -> None:
    provider.audience = "another-app"
    provider.sign_in_as("honest@example.com")
    assert "could not be verified" in page_text(sign_in(client, provider))
    assert not get_user_model().objects.filter(email="honest@example.com").exists()


def test_a_callback_this_browser_did_not_start_is_refused(provider: FakeProvider, client: Client) -> None:
    provider.sign_in_as("victim@example.com")
    begun = client.get("/oidc/authenticate/")
    at_provider = requests.get(begun["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(at_provider.headers["Location"])
    attacker = Client()
    attacker.get("/oidc/authenticate/")  # a sign-in of its own, with another state
    response = attacker.get(f"{back.path}?{back.query}", follow=True)
    assert "started in another browser or has expired" in page_text(response)
    assert signed_in_as(attacker) is None
    assert provider.token_requests == 0


def test_the_provider_refusing_is_shown_on_the_login_page(provider: FakeProvider, client: Client) -> None:
    begun = client.get("/oidc/authenticate/")
    state = parse_qs(urlsplit(begun["Location"]).query)["state"][0]
    response = client.get("/oidc/callback/", {"error": "access_denied", "state": state}, follow=True)
    assert "refused or cancelled the sign-in (access_denied)" in page_text(response)
    assert AuditEvent.objects.get(action="auth.sign_in_failed").detail["reason"] == "provider_refused"


def test_a_password_sign_in_with_a_code_in_its_address_never_reaches_the_provider(
    provider: FakeProvider, client: Client
) -> None:
    UserFactory(email="pw@example.com")
    # A wrong password: every backend is asked, the SSO one included.
    wrong = {"username": "pw@example.com", "password": "not-the-password"}
    assert client.post("/accounts/login/?code=abc&state=xyz", wrong).status_code == 200
    right = {"username": "pw@example.com", "password": PASSWORD}
    assert client.post("/accounts/login/?code=abc&state=xyz", right).status_code == 302
    assert provider.token_requests == 0


# --- the provider's endpoints: discovered lazily, or set explicitly -------------------------


def test_a_provider_that_cannot_be_reached_costs_a_message_not_an_error(
    provider: FakeProvider, settings: Any, client: Client
) -> None:
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens on the discard port
    response = client.get("/oidc/authenticate/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "Acme ID cannot be reached just now" in page_text(response)


def test_explicit_endpoints_need_no_discovery(provider: FakeProvider, settings: Any, client: Client) -> None:
    endpoints = provider.discovery()
    settings.OIDC_ISSUER = ""
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = endpoints["authorization_endpoint"]
    settings.OIDC_OP_TOKEN_ENDPOINT = endpoints["token_endpoint"]
    settings.OIDC_OP_USER_ENDPOINT = endpoints["userinfo_endpoint"]
    settings.OIDC_OP_JWKS_ENDPOINT = endpoints["jwks_uri"]
    provider.sign_in_as("explicit@example.com")
    sign_in(client, provider)
    assert signed_in_as(client).email == "explicit@example.com"
    assert provider.discoveries == 0


def test_discovery_naming_another_issuer_is_refused(
    provider: FakeProvider, settings: Any, client: Client
) -> None:
    settings.OIDC_ISSUER = provider.issuer + "/realms/other"
    response = client.get("/oidc/authenticate/", follow=True)
    assert "cannot be reached just now" in page_text(response)


# --- the login page ----------------------------------------------------------------------


def test_the_login_page_offers_the_provider_beside_the_password_form(
    provider: FakeProvider, client: Client
) -> None:
    body = page_text(client.get("/accounts/login/?next=/projects/"))
    assert 'href="/oidc/authenticate/?next=/projects/"' in body
    assert "Sign in with Acme ID" in body
    assert 'name="password"' in body
    assert "Create an account" in body


def test_without_a_provider_there_is_no_button_and_the_sso_urls_are_404(client: Client) -> None:
    assert "Sign in with" not in page_text(client.get("/accounts/login/"))
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=a&state=b").status_code == 404


# --- DOCENT_OIDC_ONLY --------------------------------------------------------------------


def test_sso_only_hides_the_password_form_and_refuses_password_sign_in(
    sso_only: FakeProvider, client: Client
) -> None:
    UserFactory(email="pw@example.com")
    body = page_text(client.get("/accounts/login/"))
    assert "Sign in with Acme ID" in body
    assert 'name="password"' not in body
    assert "Create an account" not in body and "Forgot your password" not in body
    response = client.post("/accounts/login/", {"username": "pw@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert "Password sign-in is off on this Docent: sign in with Acme ID." in page_text(response)
    assert signed_in_as(client) is None


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/accounts/signup/"),
        ("post", "/accounts/signup/"),
        ("get", "/accounts/password-reset/"),
        ("post", "/accounts/password-reset/"),
        ("get", "/accounts/reset/MQ/set-password/"),
    ],
)
def test_sso_only_turns_sign_up_and_password_reset_pages_off(
    sso_only: FakeProvider, client: Client, method: str, path: str
) -> None:
    data = {"email": "new@example.com", "password": PASSWORD, "confirm": PASSWORD}
    response = getattr(client, method)(path, data if method == "post" else None)
    assert response.status_code == 403
    assert "sign in with Acme ID" in page_text(response) or "signing in with Acme ID" in page_text(response)
    assert 'href="/oidc/authenticate/"' in page_text(response)
    assert not get_user_model().objects.filter(email="new@example.com").exists()


def test_sso_only_turns_the_api_password_token_and_sign_up_off(sso_only: FakeProvider) -> None:
    UserFactory(email="pw@example.com")
    api = APIClient()
    token = api.post("/api/v1/auth/token", {"email": "pw@example.com", "password": PASSWORD}, format="json")
    assert token.status_code == 403
    assert token.json()["code"] == "sso_only"
    assert "sign in with Acme ID" in token.json()["detail"]
    register = api.post(
        "/api/v1/auth/register", {"email": "n@example.com", "password": PASSWORD}, format="json"
    )
    assert (register.status_code, register.json()["code"]) == (403, "sso_only")


def test_sso_only_still_signs_people_in_with_the_provider(sso_only: FakeProvider, client: Client) -> None:
    sso_only.sign_in_as("only@example.com")
    sign_in(client, sso_only)
    assert signed_in_as(client).email == "only@example.com"


def test_sso_only_refuses_the_admin_password_form_too(sso_only: FakeProvider) -> None:
    UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    browser = Client()
    assert not browser.login(username="root@example.com", password=PASSWORD)
    response = browser.post("/admin/login/", {"username": "root@example.com", "password": PASSWORD})
    assert response.status_code == 200  # the form again, signed in as no one
    assert signed_in_as(browser) is None


def test_break_glass_lets_staff_and_only_staff_sign_in_with_a_password(
    sso_only: FakeProvider, settings: Any
) -> None:
    settings.OIDC_STAFF_PASSWORD = True
    UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    UserFactory(email="pw@example.com")
    browser = Client()
    body = page_text(browser.get("/accounts/login/"))
    assert "Staff: sign in with a password" in body and 'name="password"' in body
    refused = browser.post("/accounts/login/", {"username": "pw@example.com", "password": PASSWORD})
    assert refused.status_code == 200
    assert "Only staff may sign in with a password" in page_text(refused)
    assert signed_in_as(browser) is None
    allowed = browser.post("/accounts/login/", {"username": "root@example.com", "password": PASSWORD})
    assert allowed.status_code == 302
    assert signed_in_as(browser).email == "root@example.com"
    token = APIClient().post(
        "/api/v1/auth/token", {"email": "root@example.com", "password": PASSWORD}, format="json"
    )
    assert token.status_code == 403, "break-glass is for the pages, never the API"


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env,complaint",
    [
        ({"DOCENT_OIDC_CLIENT_ID": "x", "DOCENT_OIDC_CLIENT_SECRET": "y"}, "set DOCENT_OIDC_ISSUER too"),
        ({"DOCENT_OIDC_ONLY": "true"}, "DOCENT_OIDC_ONLY needs a provider"),
    ],
)
def test_an_incomplete_provider_configuration_stops_start_up(
    tmp_path: Path, env: dict[str, str], complaint: str
) -> None:
    done = manage("check", env=env, tmp_path=tmp_path)
    assert done.returncode != 0
    assert complaint in done.stderr
