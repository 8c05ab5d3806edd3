"""Make the SQLite data folder that `migrate_from_sqlite`'s tests move into PostgreSQL.

It ran once, on the last commit whose embedded default was SQLite, with
`DOCENT_DATA_DIR=<folder> python workspace/tests/data/make_sqlite_datafolder.py`, then
`tar czf sqlite-datafolder.tar.gz docent.sqlite3 media` in that folder, to capture
what a data folder made by that code holds: accounts (one staff, one unconfirmed),
a shared project with an open invitation, documents in every state (ready from
pasted text and from an uploaded file, failed, pending), their chunks and vectors,
a conversation of two turns, a summary, an extraction and a bulk import.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DOCENT_LLM_PROVIDER", "offline")
os.environ.setdefault("DOCENT_TASKS_EAGER", "true")

import django  # noqa: E402

django.setup()

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

call_command("migrate", verbosity=0)

from accounts.models import User  # noqa: E402
from agents import services as agents  # noqa: E402
from agents.models import AgentRun  # noqa: E402
from documents import services as documents  # noqa: E402
from documents.models import Document, DocumentStatus  # noqa: E402
from projects import services as projects  # noqa: E402
from projects.invitations import invitation_create  # noqa: E402
from projects.models import Membership, Role  # noqa: E402

owner = User.objects.create_user(email="ada@example.com", password="correct-horse-battery", name="Ada")
editor = User.objects.create_user(email="grace@example.com", password="another-long-phrase", name="Grace")
viewer = User.objects.create_user(email="linus@example.com", password="yet-another-phrase", tier="pro")
User.objects.create_superuser(email="staff@example.com", password="staff-pass-phrase")
pending = User.objects.create_user(email="new@example.com", password="a-new-long-phrase")
User.objects.filter(pk=pending.pk).update(email_verified_at=None)

project = projects.project_create(user=owner, title="Chiller handbook", description="Maintenance notes")
Membership.objects.get_or_create(project=project, user=editor, defaults={"role": Role.EDITOR})
Membership.objects.get_or_create(project=project, user=viewer, defaults={"role": Role.VIEWER})
invitation_create(user=owner, project=project, email="newcomer@example.com", role=Role.VIEWER)
other = projects.project_create(user=editor, title="Grace's own")

HANDBOOK = (
    "Northwind Chiller X-40 Maintenance Handbook\n\n"
    "The chiller must be serviced every six months. The warranty lasts three years from installation.\n\n"
    "When the red button is pressed, the compressor stops and the pumps keep running for two minutes.\n\n"
    "After shutting it down, call the service desk at extension 4410. The refrigerant is R-134a."
)
pasted = documents.document_create(user=owner, project=project, title="Handbook", text=HANDBOOK)
upload = SimpleUploadedFile(
    "safety.md",
    b"# Safety rules\n\nWear gloves near the condenser. Never open the refrigerant circuit alone.\n",
    content_type="text/markdown",
)
uploaded = documents.document_create(user=editor, project=project, upload=upload)
documents.document_create(user=editor, project=other, title="Grace's note", text="Tea at four, always.")
failed = documents.document_create(user=owner, project=project, title="Broken", text="Will fail.")
Document.objects.filter(pk=failed.pk).update(
    status=DocumentStatus.FAILED,
    error="The file is damaged or not a PDF: EOF marker not found",
    chunk_count=0,
)
waiting = documents.document_create(user=owner, project=project, title="Waiting", text="Not ingested yet.")
Document.objects.filter(pk=waiting.pk).update(status=DocumentStatus.PENDING, indexed_hash="")
from documents.models import Chunk  # noqa: E402

Chunk.objects.filter(document_id=waiting.pk).delete()

records = Path(os.environ["DOCENT_DATA_DIR"]) / "records.jsonl"
records.write_text('{"_id": "r1", "title": "Imported one", "text": "Imported text about the valves."}\n')
documents.documents_import(user=owner, project=project, paths=[records], sync=True)
records.unlink()

first = agents.run_create(user=owner, project=project, kind="ask", question="How long is the warranty?")
agents.run_execute(run_id=first.pk)
second = agents.run_create(user=viewer, project=project, kind="ask", question="Who do I call?", parent=first)
agents.run_execute(run_id=second.pk)
summary = agents.run_create(
    user=owner, project=project, kind="summarize", document=Document.objects.get(pk=pasted.pk)
)
agents.run_execute(run_id=summary.pk)
extract = agents.run_create(
    user=editor, project=project, kind="extract", document=Document.objects.get(pk=uploaded.pk)
)
agents.run_execute(run_id=extract.pk)

print("users", User.objects.count(), "documents", Document.objects.count(), "chunks", Chunk.objects.count())
print("runs", AgentRun.objects.count(), "statuses", list(Document.objects.values_list("title", "status")))
print("done at", timezone.now().isoformat())
