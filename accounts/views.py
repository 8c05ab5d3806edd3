"""Sign up, log in and log out pages."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from django_ratelimit.decorators import ratelimit

from accounts import services
from accounts.forms import LoginForm, SignupForm

# Password guessing and sign-up floods from one address, per minute.
AUTH_POST_RATE = "20/m"
TOO_MANY = "Too many attempts from your network; wait a minute and try again."


def _form_error_from_service(form: SignupForm, exc: ValidationError) -> None:
    fields = {"email": "email", "password": "password"}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(fields.get(field), errors)


@sensitive_post_parameters("password", "confirm")
@ratelimit(key="ip", rate=AUTH_POST_RATE, method="POST", block=False)
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("projects:list")
    form = SignupForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if getattr(request, "limited", False):
            form.add_error(None, TOO_MANY)
            status = 429
        elif form.is_valid():
            try:
                user = services.user_register(
                    email=form.cleaned_data["email"],
                    password=form.cleaned_data["password"],
                )
            except ValidationError as exc:
                _form_error_from_service(form, exc)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, "Welcome to Docent. Create a project to get started.")
                return redirect("projects:list")
        if status == 200:
            status = 400 if form.errors else 200
    return render(request, "accounts/signup.html", {"form": form}, status=status)


@method_decorator(
    ratelimit(key="ip", rate=AUTH_POST_RATE, method="POST", block=False),
    name="dispatch",
)
class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "limited", False):
            # Not even checked: a limited request never reaches authenticate().
            messages.error(request, TOO_MANY)
            form = self.form_class(request, initial={"username": request.POST.get("username", "")})
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    """POST only (Django's own rule): a link cannot log anyone out."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out.")
        return response
