"""Sign up, log in, log out and password-reset pages.

None of them says whether an email address has an account: sign-up answers
the same for a new and a taken address (the owner of a taken one is emailed),
a failed log-in names no reason, and a reset request always ends on the same
"check your inbox" page. Attempts are limited per IP and per address by the
policy in core.ratelimit.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import audit, keys, oidc, services, verification
from accounts.forms import (
    KeyForm,
    LoginForm,
    PasswordChangeForm,
    ResendVerificationForm,
    ResetRequestForm,
    SignupForm,
)
from accounts.mail import mail_goes_to_outbox
from accounts.models import Scope
from core import ratelimit


def _form_error_from_service(form: SignupForm, exc: ValidationError) -> None:
    fields = {"email": "email", "password": "password"}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(fields.get(field), errors)


def signup_done_message(email: str) -> str:
    if mail_goes_to_outbox():
        return signup_outbox_message(email)
    return (
        f"We have sent a message to {email}. If the address was new to Docent, "
        "open the link in it to confirm the address, then log in below."
    )


def signup_outbox_message(email: str) -> str:
    return (
        f"Your confirmation is waiting for an administrator. This Docent sends no email yet, so the "
        f"message for {email} went to the outbox in its admin: ask an administrator of this Docent "
        "for the confirmation link in it, open the link, then log in below."
    )


FIRST_ADMIN_DONE = (
    "Welcome: yours is the first account of this Docent, so it is confirmed and you are its "
    "administrator. The admin, at /admin/, manages accounts and holds the outbox, where the "
    "confirmation links of people who sign up later wait while no mail server is configured."
)


RESEND_DONE = (
    "If {email} has an account still waiting for confirmation, a new link is on its way. "
    "It works for {hours} hours."
)
RESEND_DONE_OUTBOX = (
    "If {email} has an account still waiting for confirmation, a new link is waiting for an "
    "administrator in the outbox of this Docent's admin (it sends no email yet): ask them for it. "
    "It works for {hours} hours."
)


# With DOCENT_OIDC_ONLY the provider is the only way in (accounts/oidc.py).
PASSWORD_OFF = "Password sign-in is off on this Docent: sign in with {provider}."  # noqa: S105  (a message)
STAFF_SIGN_IN_ONLY = (
    "That email and password do not match a staff account. Only staff may sign in with a password "
    "here: everyone else signs in with {provider}."
)
SIGNUP_OFF = (
    "Accounts on this Docent are made by signing in with {provider}: your first sign-in creates yours."
)
RESET_OFF = "Docent keeps no passwords here: sign in with {provider}, where your password is managed."


def _sso_only(request: HttpRequest, title: str, message: str) -> HttpResponse:
    """403 for a password page that single-sign-on-only mode turns off, pointing at the provider."""
    context = {
        "title": title,
        "message": message.format(provider=oidc.provider_name()),
        **oidc.login_context(),
    }
    return render(request, "accounts/sso_only.html", context, status=403)


def _refused(response: HttpResponse, refusal: ratelimit.Refusal) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(refusal.retry_after_s)
    return response


@sensitive_post_parameters("password", "confirm")
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("projects:list")
    if oidc.sso_only():
        return _sso_only(request, "Create your account", SIGNUP_OFF)
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        refusal = ratelimit.hit(ratelimit.SIGNUP_IP, request)
        if refusal is not None:
            form = SignupForm(initial={"email": request.POST.get("email", "")})
            messages.error(request, refusal.message)
            return _refused(render(request, "accounts/signup.html", {"form": form}), refusal)
        if form.is_valid():
            email = form.cleaned_data["email"].strip().lower()
            try:
                registration = services.user_register(
                    email=email,
                    password=form.cleaned_data["password"],
                    base_url=request.build_absolute_uri("/"),
                )
            except ValidationError as exc:
                _form_error_from_service(form, exc)
            else:
                if registration.first_admin:
                    # Nobody else can have the address on an install with no account: in at once.
                    auth_login(request, registration.user, backend=settings.AUTHENTICATION_BACKENDS[0])
                    messages.success(request, FIRST_ADMIN_DONE)
                    return redirect(settings.LOGIN_REDIRECT_URL)
                # The same answer whether or not the address had an account.
                messages.success(request, signup_done_message(email))
                return redirect("accounts:login")
    status = 400 if form.errors else 200
    context = {"form": form, "first_account": services.first_signup_open()}
    return render(request, "accounts/signup.html", context, status=status)


@require_http_methods(["GET", "POST"])
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the sign-up email: GET shows a button, its POST confirms the address.

    A GET changes nothing, so mail scanners that fetch links confirm nothing.
    """
    try:
        if request.method == "POST":
            user = verification.email_verify(token=token)
        else:
            user = verification.email_verification_check(token=token)
    except ValidationError as exc:
        context = {"error": " ".join(exc.messages), "form": ResendVerificationForm()}
        return render(request, "accounts/verify_email.html", context, status=400)
    if request.method == "POST":
        messages.success(request, f"{user.email} is confirmed: log in.")
        return redirect("accounts:login")
    return render(request, "accounts/verify_email.html", {"email": user.email, "token": token})


@require_http_methods(["GET", "POST"])
def verification_resend(request: HttpRequest) -> HttpResponse:
    """Ask for a new confirmation link; the same answer whether or not the address has an account."""
    form = ResendVerificationForm(request.POST or None)
    if request.method == "POST":
        refusal = verification.verification_resend_refusal(request, request.POST.get("email", ""))
        if refusal is not None:
            messages.error(request, refusal.message)
            form = ResendVerificationForm(initial={"email": request.POST.get("email", "")})
            return _refused(render(request, "accounts/verify_resend.html", {"form": form}), refusal)
        if form.is_valid():
            email = ratelimit.normalise_email(form.cleaned_data["email"])
            verification.verification_resend(email=email, base_url=request.build_absolute_uri("/"))
            hours = settings.EMAIL_VERIFY_HOURS
            done = RESEND_DONE_OUTBOX if mail_goes_to_outbox() else RESEND_DONE
            messages.success(request, done.format(email=email, hours=hours))
            return redirect("accounts:login")
    status = 400 if form.errors else 200
    return render(request, "accounts/verify_resend.html", {"form": form}, status=status)


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **oidc.login_context()}

    def get_form(self, form_class: Any = None) -> Any:
        form = super().get_form(form_class)
        if oidc.sso_only():  # break-glass: only staff get past accounts.oidc.PasswordBackend
            message = STAFF_SIGN_IN_ONLY.format(provider=oidc.provider_name())
            form.error_messages = {**form.error_messages, "invalid_login": message}
        return form

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not oidc.login_context()["password_sign_in"]:
            messages.error(request, PASSWORD_OFF.format(provider=oidc.provider_name()))
            context = self.get_context_data(form=self.form_class(request))
            return self.render_to_response(context, status=403)
        email = request.POST.get("username", "")
        refusal = ratelimit.signin_refusal(request, email)
        if refusal is not None:
            # Not even checked: a refused attempt never reaches authenticate().
            messages.error(request, refusal.message)
            form = self.form_class(request, initial={"username": email})
            return _refused(self.render_to_response(self.get_context_data(form=form)), refusal)
        response = super().post(request, *args, **kwargs)
        if response.status_code != 200:  # 200: the form came back, the credentials did not match
            ratelimit.signin_passed(request, email)
        return response


class LogoutView(auth_views.LogoutView):
    """POST only (Django's own rule): a link cannot log anyone out."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out.")
        return response


@login_required
@sensitive_post_parameters("current_password", "password", "confirm")
def password_change(request: HttpRequest) -> HttpResponse:
    """Change one's own password; the current one is required and the address is told by email."""
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST":
        # Guesses at the current password count as failed sign-ins for the address.
        refusal = ratelimit.signin_refusal(request, request.user.email)
        if refusal is not None:
            messages.error(request, refusal.message)
            return _refused(
                render(request, "accounts/password_change.html", {"form": PasswordChangeForm()}), refusal
            )
        wrong_password = False
        if form.is_valid():
            try:
                services.user_update(
                    user=request.user,
                    password=form.cleaned_data["password"],
                    current_password=form.cleaned_data["current_password"],
                    base_url=request.build_absolute_uri("/"),
                )
            except ValidationError as exc:
                wrong_password = "current_password" in exc.message_dict
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                update_session_auth_hash(request, request.user)  # this session stays signed in
                ratelimit.signin_passed(request, request.user.email)
                messages.success(request, "Your password was changed.")
                return redirect("projects:list")
        if not wrong_password:  # the current password was not what failed: no guess was made
            ratelimit.signin_passed(request, request.user.email)
    status = 400 if form.errors else 200
    return render(request, "accounts/password_change.html", {"form": form}, status=status)


class PasswordResetView(auth_views.PasswordResetView):
    """Always ends on the same "check your inbox" page, whether or not the address has an account."""

    form_class = ResetRequestForm
    template_name = "accounts/password_reset_form.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if oidc.sso_only():
            return _sso_only(request, "Reset your password", RESET_OFF)
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        email = ratelimit.normalise_email(request.POST.get("email", ""))
        refusal = ratelimit.hit(ratelimit.RESET_IP, request)
        if refusal is None and email:
            refusal = ratelimit.hit(ratelimit.RESET_ACCOUNT, request, account=email)
        if refusal is not None:
            messages.error(request, refusal.message)
            form = self.form_class(initial={"email": email})
            return _refused(self.render_to_response(self.get_context_data(form=form)), refusal)
        return super().post(request, *args, **kwargs)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "outbox": mail_goes_to_outbox()}


@method_decorator(sensitive_post_parameters("new_password1", "new_password2"), name="dispatch")
class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if oidc.sso_only():  # a link mailed before the switch sets no password now
            return _sso_only(request, "Reset your password", RESET_OFF)
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        services.user_tokens_revoke(user=form.user)
        # The reset link reached the inbox: that proves the address as well as a confirmation link.
        verification.email_mark_verified(user=form.user)
        services.user_password_changed_notify(user=form.user, base_url=self.request.build_absolute_uri("/"))
        audit.record(
            "account.password_changed", actor=form.user, target=form.user.email, detail={"via": "reset"}
        )
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


# --- personal API keys -------------------------------------------------------------


def _key_form(request: HttpRequest, data: Any = None) -> KeyForm:
    return KeyForm(
        data,
        scopes=[(scope.value, f"{scope.value}: {scope.label}") for scope in Scope],
        projects=keys.projects_of(request.user),
        initial={"scopes": [Scope.READ, Scope.SEARCH]},
    )


def _expiry(day: date | None) -> datetime | None:
    """The end of the chosen day (the start of the next one), in the site's time zone."""
    if day is None:
        return None
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def _keys_page(
    request: HttpRequest, form: KeyForm, *, created: Any = None, status: int = 200
) -> HttpResponse:
    titles = dict(keys.projects_of(request.user))
    rows = [
        (key, keys.key_status(key), [titles.get(pid, "a project you left") for pid in key.project_ids])
        for key in keys.keys_of(request.user)
    ]
    response = render(
        request, "accounts/keys.html", {"form": form, "rows": rows, "created": created}, status=status
    )
    if created is not None:
        response["Cache-Control"] = "no-store"  # the secret is on this page, once
    return response


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    """The person's API keys: make one (its secret shown on this answer only), list and revoke them."""
    if request.method != "POST":
        return _keys_page(request, _key_form(request))
    form = _key_form(request, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            key, raw = keys.key_create(
                user=request.user,
                name=data["name"],
                scopes=data["scopes"],
                projects=data["projects"],
                expires_at=_expiry(data["expires"]),
                request=request,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(KEY_FORM_FIELDS.get(field), errors)
        else:
            return _keys_page(request, _key_form(request), created={"key": key, "raw": raw})
    return _keys_page(request, form, status=400)


# The service's field names -> the form's (None: an error for the whole form).
KEY_FORM_FIELDS = {"name": "name", "scopes": "scopes", "projects": "projects", "expires_at": "expires"}


@login_required
@require_http_methods(["POST"])
def api_key_revoke(request: HttpRequest, pk: str) -> HttpResponse:
    """Revoke one of the person's keys; its next request is refused."""
    key = keys.key_of(request.user, pk)
    if keys.key_revoke(key=key, actor=request.user, request=request):
        messages.success(request, f"The key “{key.name}” is revoked.")
    return redirect("accounts:keys")
