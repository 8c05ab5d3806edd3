"""Forms of the workspace pages: adding documents and asking questions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from agents.models import RunKind
from agents.services import QUESTION_MAX
from documents.extraction.fetching import MAX_URL_CHARS
from documents.services import TITLE_MAX as DOCUMENT_TITLE_MAX


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

    # Shown only once an upload turned out to be in the project already (offer_replace).
    replace = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = self.fields["file"].help_text.format(settings.DOCENT_MAX_UPLOAD_MB)

    def offer_replace(self, title: str) -> None:
        """After a duplicate: a box to tick to make the next upload the document that holds these bytes."""
        field = self.fields["replace"]
        field.widget = forms.CheckboxInput()
        field.label = f"Replace “{title}” with this upload"
        field.help_text = "It keeps its place, links and citations. Choose the file again if it was one."
        self._bound_fields_cache.pop("replace", None)  # bound while validating: label it afresh

    # Which one of file, text and url was given is checked by documents.services.document_create.


class AskForm(forms.Form):
    question = forms.CharField(
        label="Ask a question",
        max_length=QUESTION_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What do these documents say about …?"}),
    )


class RunCreateForm(forms.Form):
    """What the ask form, the follow-up form and the run buttons post."""

    project = forms.UUIDField()
    kind = forms.ChoiceField(choices=RunKind.choices)
    question = forms.CharField(required=False, max_length=QUESTION_MAX)
    document = forms.UUIDField(required=False)
    parent = forms.UUIDField(required=False)
    thread = forms.UUIDField(required=False)
    next = forms.CharField(required=False, max_length=2000)
