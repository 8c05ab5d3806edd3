"""Forms of the project pages: projects, members, uploads and questions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from agents.services import QUESTION_MAX
from documents.fetching import MAX_URL_CHARS
from documents.services import TITLE_MAX as DOCUMENT_TITLE_MAX
from projects.models import Role
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


class UploadForm(forms.Form):
    """A file (title optional), a title with pasted text, or the address of a web page."""

    file = forms.FileField(
        label="File",
        required=False,
        allow_empty_file=True,  # the service says "The file is empty." in its own words
        help_text=(
            "PDF (scans too), Word, PowerPoint, Excel, CSV, EPUB, HTML, Markdown, text, "
            "or a PNG, JPEG or TIFF image, up to {} MB."
        ),
        widget=forms.ClearableFileInput(
            attrs={
                "accept": ".txt,.md,.markdown,.html,.htm,.pdf,.docx,.pptx,.xlsx,.csv,.tsv,.epub,"
                ".png,.jpg,.jpeg,.tif,.tiff"
            }
        ),
    )
    title = forms.CharField(label="Title", required=False, max_length=DOCUMENT_TITLE_MAX)
    text = forms.CharField(
        label="Or paste text",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "Paste text here instead of a file"}),
    )
    url = forms.CharField(
        label="Or add a web page",
        required=False,
        max_length=MAX_URL_CHARS,
        help_text="Its address; the page is fetched now and its main text indexed.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/article", "inputmode": "url"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = self.fields["file"].help_text.format(settings.DOCENT_MAX_UPLOAD_MB)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        upload, text, url = data.get("file"), data.get("text") or "", (data.get("url") or "").strip()
        given = sum(1 for present in (bool(upload), bool(text.strip()), bool(url)) if present)
        if given > 1:
            raise forms.ValidationError("Choose a file, paste text or give a web address, not more than one.")
        if not given and "file" not in self.errors:
            raise forms.ValidationError("Choose a file, paste some text or give a web address.")
        if text.strip() and not (data.get("title") or "").strip():
            self.add_error("title", "A title is required with pasted text.")
        return data


class AskForm(forms.Form):
    question = forms.CharField(
        label="Ask a question",
        max_length=QUESTION_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What do these documents say about …?"}),
    )


def add_service_errors(form: forms.Form, exc: forms.ValidationError, fields: dict[str, str | None]) -> None:
    """Put a service's ValidationError on the form: known keys on fields, the rest on top."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for key, messages in exc.message_dict.items():
        field = fields.get(key)
        form.add_error(field if field in form.fields else None, messages)
