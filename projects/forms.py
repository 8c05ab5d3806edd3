"""Forms of the project pages: projects and members."""

from __future__ import annotations

from django import forms

from projects.models import Role, WebhookEvent
from projects.services import TITLE_MAX


class ProjectForm(forms.Form):
    title = forms.CharField(
        label="Title",
        max_length=TITLE_MAX,
        error_messages={
            "required": "A title is required.",
            "max_length": f"A title has at most {TITLE_MAX} characters.",
        },
        widget=forms.TextInput(attrs={"autofocus": True}),
    )
    description = forms.CharField(
        label="Description", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


def add_service_errors(form: forms.Form, exc: forms.ValidationError, fields: dict[str, str | None]) -> None:
    """Put a service's ValidationError on the form: known keys on fields, the rest on top."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for key, messages in exc.message_dict.items():
        field = fields.get(key)
        form.add_error(field if field in form.fields else None, messages)


class WebhookForm(forms.Form):
    url = forms.CharField(
        label="Address",
        max_length=2000,
        help_text="An https:// address on a public network; every event is POSTed there, signed.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/docent"}),
    )
    description = forms.CharField(label="Description", max_length=200, required=False)
    events = forms.MultipleChoiceField(
        label="Events",
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event."},
    )
