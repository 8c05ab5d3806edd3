"""Staff admin for users: Django's UserAdmin, adapted to email login and tiers."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from accounts.mail import links_in
from accounts.models import OutboxMessage, User


class UserCreationForm(BaseUserCreationForm):
    """Add a user by email with a password typed twice (validated by the password validators)."""

    class Meta:
        model = User
        fields = ("email", "name", "tier")
        field_classes: ClassVar[dict[str, type[forms.Field]]] = {}

    def clean_email(self) -> str:
        # The manager stores emails lower-cased; reject addresses differing only in case.
        email = User.objects.normalize_email(self.cleaned_data.get("email", "")).lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("A user with that email address already exists.")
        return email


class UserEditForm(UserChangeForm):
    """Edit a user; the password shows as its read-only hash with a link to reset it."""

    class Meta:
        model = User
        fields = "__all__"
        field_classes: ClassVar[dict[str, type[forms.Field]]] = {}

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data.get("email", "")).lower()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A user with that email address already exists.")
        return email


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    # The stock add template expects the "usable password" switch, which this form leaves out.
    add_form_template = None
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "tier")}),
        (
            "Permissions",
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        # Staff may confirm an address by hand (set the date) or withdraw a confirmation (clear it).
        ("Important dates", {"fields": ("last_login", "date_joined", "email_verified_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "name", "tier", "password1", "password2"),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("email", "name", "tier", "is_active", "is_staff", "date_joined")
    list_filter = ("tier", "is_staff", "is_active", ("email_verified_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "name")
    ordering = ("email",)
    filter_horizontal = ("groups", "user_permissions")

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        # The add form has no date fields to show.
        return () if obj is None else self.readonly_fields


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """The email a server without SMTP kept instead of sending: read-only, for staff.

    Superusers see it, and staff given the "Can view outbox message" permission: the
    messages hold password-reset links, so grant it only to whom may take over accounts.
    """

    list_display = ("sent_at", "to", "subject")
    list_display_links = ("sent_at", "subject")
    search_fields = ("to", "subject")
    date_hierarchy = "sent_at"
    fields = ("sent_at", "to", "from_email", "subject", "links", "body")
    readonly_fields = fields

    @admin.display(description="Links (copy one and pass it on)")
    def links(self, obj: OutboxMessage) -> str:
        found = links_in(obj.body)
        if not found:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "", '<li><a href="{}" rel="noreferrer">{}</a></li>', ((link, link) for link in found)
            ),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
