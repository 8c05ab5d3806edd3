"""The workspace pages: `projects` (the project page and its uploads), `documents` (document
pages, document state and search) and `runs` (agent runs and conversations)."""
