"""Sign-up, log-in and password-reset forms: the account itself is made by accounts.services."""

from __future__ import annotations

import datetime
from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm

from accounts import verification


class NewPasswordForm(forms.Form):
    """A new password, typed twice (sign-up and password change)."""

    password = forms.CharField(
        label="Password",
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not a common or all-numeric password.",
    )
    confirm = forms.CharField(
        label="Confirm password",
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        password, confirm = data.get("password"), data.get("confirm")
        if password and confirm and password != confirm:
            self.add_error("confirm", "The two passwords differ.")
        return data


class SignupForm(NewPasswordForm):
    field_order = ["email", "password", "confirm"]

    email = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


class LoginForm(AuthenticationForm):
    """Django's log-in form; the username is the email address."""

    username = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_messages = {
            **self.error_messages,
            "invalid_login": "That email and password do not match an account.",
        }

    def clean_username(self) -> str:
        # Accounts store their email in lower case.
        return self.cleaned_data["username"].strip().lower()

    def confirm_login_allowed(self, user: Any) -> None:
        # Reached only with the right password: says nothing to someone who lacks it.
        super().confirm_login_allowed(user)
        if not verification.is_verified(user):
            raise forms.ValidationError(verification.UNVERIFIED, code="email_unverified")


class ResendVerificationForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


class ResetRequestForm(PasswordResetForm):
    """Django's reset request; the address is matched in lower case, as accounts store it."""

    email = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


class PasswordChangeForm(NewPasswordForm):
    """Change one's own password: the current one first (accounts.services.user_update checks it)."""

    field_order = ["current_password", "password", "confirm"]

    current_password = forms.CharField(
        label="Current password",
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password"].label = "New password"
        self.fields["confirm"].label = "Confirm the new password"


class KeyForm(forms.Form):
    """A new personal API key (accounts.keys.key_create checks it again)."""

    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="What will use it, so you know which to revoke (“CI upload job”, “Claude Desktop”).",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        widget=forms.CheckboxSelectMultiple,
        help_text="Only what the tool needs. It never gets more than your own role in a project.",
    )
    projects = forms.MultipleChoiceField(
        label="Projects",
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="Limit the key to these projects; choose none for all your projects.",
    )
    expires = forms.DateField(
        label="Expires after",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key stops working at the end of this day. Empty: it never expires.",
    )

    def __init__(
        self, *args: Any, scopes: list[tuple[str, str]], projects: list[tuple[Any, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.MultipleChoiceField, self.fields["scopes"]).choices = scopes
        cast(forms.MultipleChoiceField, self.fields["projects"]).choices = [
            (str(pk), title) for pk, title in projects
        ]
        if not projects:
            self.fields["projects"].help_text = "You are in no project yet: it will reach those you join."

    def clean_expires(self) -> Any:
        day = self.cleaned_data.get("expires")
        if day is not None and day >= datetime.date(9999, 12, 31):
            raise forms.ValidationError("Choose a date before 31 December 9999, or leave it empty.")
        return day
