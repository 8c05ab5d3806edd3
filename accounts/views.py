"""Sign up, log in, log out and password-reset pages.

None of them says whether an email address has an account: sign-up answers
the same for a new and a taken address (the owner of a taken one is emailed),
a failed log-in names no reason, and a reset request always ends on the same
"check your inbox" page. Attempts are limited per IP and per address by the
policy in core.ratelimit.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import services, verification
from accounts.forms import (
    LoginForm,
    PasswordChangeForm,
    ResendVerificationForm,
    ResetRequestForm,
    SignupForm,
)
from accounts.mail import mail_goes_to_outbox
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


def _refused(response: HttpResponse, refusal: ratelimit.Refusal) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(refusal.retry_after_s)
    return response


@sensitive_post_parameters("password", "confirm")
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("projects:list")
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

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
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

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        services.user_tokens_revoke(user=form.user)
        # The reset link reached the inbox: that proves the address as well as a confirmation link.
        verification.email_mark_verified(user=form.user)
        services.user_password_changed_notify(user=form.user, base_url=self.request.build_absolute_uri("/"))
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
