"""The rate-limit policy: every limit Docent enforces, by tier, in one place.

Counting is django-ratelimit's fixed windows on the Django cache (Redis via
django-redis in production, so every web process shares one count). The
allowances per hour come from settings.RATE_LIMITS (the DOCENT_RATE_*
variables). Three hooks apply the policy:

- `PolicyThrottle`, DRF's throttle for every API view: each request counts
  against `api` (per user, by tier) or `anon` (per IP), and creating a run or
  a document also against `runs` or `uploads`; a token refresh counts against
  the token owner's `api`, and a request refused with 401 before the throttle
  ran is counted by core.api_errors against `anon`;
- `PageLimitMiddleware` counts the page forms that create runs and documents
  against the same `runs` and `uploads` allowances, and `page_counts_against`
  counts page searches against `api`, as API searches are;
- the sign-in, sign-up and password-reset views call `signin_refusal`,
  `signin_passed` and `hit` for the per-IP and per-account limits.

Every sign-in attempt counts as a failure the moment it arrives (an atomic increment, then
the decision), and is taken back once it proves not to be one; so attempts made at the
same moment can never check more passwords than the allowance.
Failed sign-ins lock out the address and the client together (OWASP): one
client that keeps failing for an address is refused after `signin_client`
failures, while the owner signing in from elsewhere is not. A much higher
`signin_account` ceiling bounds guesses spread over many clients; past it, a
client with no recent failures for the address still gets its password
checked, so a correct one signs in and a wrong one locks that client out too.

Over a limit the API answers 429 with `{"detail", "limit"}` and Retry-After;
pages show the same message on a 429 page.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

HOUR_S = 3600


@dataclass(frozen=True)
class Limit:
    name: str  # the `limit` field of a 429 body and the key in settings.RATE_LIMITS
    per: str  # "user", "ip", "account" (the email address typed in a form) or "account+ip"
    counts: str  # what is counted, for messages
    tiered: bool = False


API = Limit("api", "user", "API requests", tiered=True)
ANON = Limit("anon", "ip", "API requests without signing in")
RUNS = Limit("runs", "user", "agent runs", tiered=True)
UPLOADS = Limit("uploads", "user", "new documents", tiered=True)
SIGNIN_IP = Limit("signin_ip", "ip", "sign-in attempts from your network")
SIGNIN_CLIENT = Limit(
    "signin_client", "account+ip", "failed sign-ins for this email address from your network"
)
SIGNIN_ACCOUNT = Limit("signin_account", "account", "failed sign-ins for this email address")
SIGNUP_IP = Limit("signup_ip", "ip", "sign-ups from your network")
RESET_IP = Limit("reset_ip", "ip", "password-reset requests from your network")
RESET_ACCOUNT = Limit("reset_account", "account", "password-reset requests for this email address")

ALL = (
    API,
    ANON,
    RUNS,
    UPLOADS,
    SIGNIN_IP,
    SIGNIN_CLIENT,
    SIGNIN_ACCOUNT,
    SIGNUP_IP,
    RESET_IP,
    RESET_ACCOUNT,
)

# The actions with an allowance of their own, on top of `api`: starting an agent run, and
# adding or re-indexing a document, through the API (config/api_urls.py) or a page form (workspace/urls.py)
# alike. Keyed by the route's URL name and method; core/tests checks that every name resolves.
COUNTED_ACTIONS: dict[tuple[str, str], Limit] = {
    ("run-list", "POST"): RUNS,  # POST /api/v1/runs/
    ("agents:create", "POST"): RUNS,  # every page form that starts a run
    ("document-list", "POST"): UPLOADS,  # POST /api/v1/documents/
    ("projects:upload", "POST"): UPLOADS,  # the project page's file, text and URL form
    # Re-indexing embeds a document again on the shared worker: it costs what adding one does.
    ("document-reindex", "POST"): UPLOADS,  # POST /api/v1/documents/{id}/reindex/
    ("documents:reindex", "POST"): UPLOADS,  # the document page's Re-index button
}


@dataclass(frozen=True)
class Refusal:
    """A request over a limit: which one, how many it allows, and when it resets."""

    limit: Limit
    allowance: int
    retry_after_s: int
    tier: str = ""

    @property
    def message(self) -> str:
        plan = f" on the {self.tier} plan" if self.tier else ""
        minutes = max(1, math.ceil(self.retry_after_s / 60))
        wait = "a minute" if minutes == 1 else f"{minutes} minutes"
        return (
            f"Too many {self.limit.counts}: the limit is {self.allowance:,} per hour{plan}. "
            f"Try again in {wait}."
        )


class RateLimited(exceptions.Throttled):
    """The API's 429: DRF adds Retry-After, core.api_errors adds the `limit` field."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(wait=refusal.retry_after_s)
        self.detail = exceptions.ErrorDetail(refusal.message, code="throttled")
        self.limit = refusal.limit.name
        self.refusal = refusal


def tier_of(user: Any) -> str:
    tier = getattr(user, "tier", "") or "free"
    rates: dict[str, Any] = settings.RATE_LIMITS
    return tier if tier in rates[API.name] else "free"


def allowance(limit: Limit, user: Any = None) -> int:
    """Requests per hour the limit allows (for the user's tier when it is tiered)."""
    rates: dict[str, Any] = settings.RATE_LIMITS
    value = rates[limit.name]
    return int(value[tier_of(user)] if limit.tiered else value)


def client_ip(request: HttpRequest) -> str:
    """The caller's address; behind a proxy, the one the proxy appended. IPv6 by /64."""
    address = request.META.get("REMOTE_ADDR", "") or ""
    if getattr(settings, "BEHIND_PROXY", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            address = forwarded.split(",")[-1].strip()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def normalise_email(value: Any) -> str:
    return str(value or "").strip().lower()[:254]


def _key(limit: Limit, request: HttpRequest, user: Any, account: str) -> str:
    if limit.per == "user":
        return f"user:{user.pk}"
    if limit.per == "account":
        return f"account:{account}"
    if limit.per == "account+ip":
        return f"account:{account}|ip:{client_ip(request)}"
    return f"ip:{client_ip(request)}"


def _usage(
    limit: Limit,
    request: HttpRequest,
    *,
    user: Any = None,
    account: str = "",
    increment: bool,
    counter: str = "",
) -> tuple[int, int, int]:
    """(count so far, allowance, seconds until the window resets), from django-ratelimit's counter.

    `counter` names a second count kept beside a limit's own (sign-in: the attempts that passed).
    """
    per_hour = allowance(limit, user)
    value = _key(limit, request, user, account)
    usage = get_usage(
        request,
        group=f"docent:{limit.name}{counter}",
        key=lambda _group, _request: value,
        rate=f"{per_hour}/h",
        increment=increment,
    )
    if usage is None:  # RATELIMIT_ENABLE is off
        return 0, per_hour, HOUR_S
    return int(usage["count"]), per_hour, max(1, int(usage["time_left"]))


def hit(limit: Limit, request: HttpRequest, *, user: Any = None, account: str = "") -> Refusal | None:
    """Count one request against the limit; a Refusal when it goes over."""
    count, per_hour, left = _usage(limit, request, user=user, account=account, increment=True)
    if count > per_hour:
        return Refusal(limit, per_hour, left, tier_of(user) if limit.tiered else "")
    return None


def peek(limit: Limit, request: HttpRequest, *, user: Any = None, account: str = "") -> Refusal | None:
    """A Refusal when the next counted request would go over, without counting this one."""
    count, per_hour, left = _usage(limit, request, user=user, account=account, increment=False)
    if count >= per_hour:
        return Refusal(limit, per_hour, left, tier_of(user) if limit.tiered else "")
    return None


# --- sign-in: attempts count per IP, failures per address+client and per address ----

PASSED = ":passed"


def _failures_with_this_one(limit: Limit, request: HttpRequest, account: str) -> tuple[int, int, int]:
    """Count this attempt as a failure first (one atomic increment), then read how many of the
    window's attempts passed: (failures including this one, allowance, seconds left).

    Deciding on the incremented count means attempts made at the same moment each get their
    own number, so no more than the allowance are ever checked; an attempt that turns out
    not to be a failure is taken back by `signin_passed`.
    """
    attempts, per_hour, left = _usage(limit, request, account=account, increment=True)
    passed = _usage(limit, request, account=account, increment=False, counter=PASSED)[0]
    return attempts - passed, per_hour, left


def signin_refusal(request: HttpRequest, email: Any) -> Refusal | None:
    """Count a sign-in attempt, as a failure until `signin_passed` says otherwise, and refuse it
    before any password is checked when it goes over a limit.

    Past the address's own ceiling only clients that failed for it before are refused: a
    client with a clean record still has its password checked.
    """
    refusal = hit(SIGNIN_IP, request)
    account = normalise_email(email)
    if refusal is not None or not account:
        return refusal
    failures, per_hour, left = _failures_with_this_one(SIGNIN_CLIENT, request, account)
    if failures > per_hour:
        return Refusal(SIGNIN_CLIENT, per_hour, left)
    account_failures, ceiling, account_left = _failures_with_this_one(SIGNIN_ACCOUNT, request, account)
    if account_failures > ceiling and failures > 1:
        return Refusal(SIGNIN_ACCOUNT, ceiling, account_left)
    return None


def signin_passed(request: HttpRequest, email: Any) -> None:
    """The attempt `signin_refusal` let through was not a wrong password (it signed in, or
    failed for another reason): it no longer counts as a failure."""
    account = normalise_email(email)
    if account:
        _usage(SIGNIN_CLIENT, request, account=account, increment=True, counter=PASSED)
        _usage(SIGNIN_ACCOUNT, request, account=account, increment=True, counter=PASSED)


# --- the API -------------------------------------------------------------------


def _route(request: Any) -> tuple[str, str]:
    match = getattr(request, "resolver_match", None)
    return (match.view_name if match else ""), request.method


# Token endpoints that carry a signed token in the body: (URL name) -> field.
TOKEN_FIELDS = {"token-refresh": "refresh", "token-verify": "token", "auth-logout": "refresh"}


def _token_owner(request: Any) -> Any:
    """The user a validly signed token in the body belongs to, for the token endpoints; else None.

    Refreshing every 15 minutes is not anonymous traffic: it counts against the
    owner's allowance, so many people behind one address do not share 60 an hour.
    """
    field = TOKEN_FIELDS.get(_route(request)[0])
    data = request.data if field else None
    raw = data.get(field) if isinstance(data, dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.tokens import UntypedToken

    try:
        # simplejwt annotates its constructor's argument as a Token; it takes the encoded string.
        user_id = UntypedToken(raw).get(api_settings.USER_ID_CLAIM)  # type: ignore[arg-type]
    except TokenError:
        return None
    try:
        return get_user_model().objects.filter(pk=user_id).only("pk", "tier").first()
    except (ValueError, TypeError, DjangoValidationError):
        return None


def api_refusal(request: Any) -> Refusal | None:
    """Count an API request against `api` (per user) or `anon` (per IP), and its action's own limit."""
    user = request.user
    if not getattr(user, "is_authenticated", False):
        try:
            owner = _token_owner(request)
        except exceptions.ParseError:
            # A body that does not parse is refused with a 400, but counted first.
            refusal = hit(ANON, request)
            if refusal is not None:
                return refusal
            raise
        return hit(API, request, user=owner) if owner is not None else hit(ANON, request)
    refusal = hit(API, request, user=user)
    extra = COUNTED_ACTIONS.get(_route(request))
    if refusal is None and extra is not None:
        refusal = hit(extra, request, user=user)
    return refusal


class PolicyThrottle(BaseThrottle):
    """DRF's entry to the policy (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"])."""

    def allow_request(self, request: Any, view: Any) -> bool:
        request._docent_rate_counted = True
        refusal = api_refusal(request)
        if refusal is not None:
            raise RateLimited(refusal)
        return True


def unauthenticated_refusal(request: Any) -> Refusal | None:
    """Count an API request refused before the throttle ran (401): anonymous traffic is bounded too."""
    if request is None or getattr(request, "_docent_rate_counted", False):
        return None
    request._docent_rate_counted = True
    return hit(ANON, request)


# --- pages ---------------------------------------------------------------------


def refused_page(request: HttpRequest, refusal: Refusal, *, template: str = "429.html") -> HttpResponse:
    response = render(request, template, {"message": refusal.message, "refusal": refusal}, status=429)
    response["Retry-After"] = str(refusal.retry_after_s)
    return response


def page_counts_against(
    limit: Limit, *, when: Callable[[HttpRequest], bool] = lambda request: True
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A page view whose requests (those `when` picks) count against a limit of the API's,
    for the signed-in user: the work costs the same whichever face asks for it."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def counted(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.user.is_authenticated and when(request):
                refusal = hit(limit, request, user=request.user)
                if refusal is not None:
                    return refused_page(request, refusal)
            return view(request, *args, **kwargs)

        return counted

    return decorate


class PageLimitMiddleware:
    """Count the page forms that create runs and documents against the API's allowances."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        limit = COUNTED_ACTIONS.get(_route(request))
        if limit is None or request.path.startswith("/api/") or not request.user.is_authenticated:
            return None
        refusal = hit(limit, request, user=request.user)
        return refused_page(request, refusal) if refusal is not None else None
