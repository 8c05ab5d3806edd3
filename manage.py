#!/usr/bin/env python
"""Django's command-line utility for Docent.

On the embedded default (no DATABASE_URL) a command that needs the database finds the
private servers `make run` started, or starts them for itself and stops them when it is
done: `manage.py createsuperuser` works whether or not Docent is running.

Like `make run`, it first reads `.env` (the repository root's, or $DOCENT_ENV_FILE;
core/envfile.py), which `make run` writes on its first start: a command run with no
environment uses the same data folder and servers as the running Docent.
"""

import os
import sys

# Commands that never open the database.
WITHOUT_DATABASE = {"check", "collectstatic", "help", "version", "compilemessages", "makemessages"}


def main() -> None:
    from core.envfile import load_env_file

    load_env_file()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    if os.environ.get("DATABASE_URL") or command in WITHOUT_DATABASE or command.startswith("-"):
        execute_from_command_line(sys.argv)
        return
    from config import servers

    stack = servers.Stack(servers.data_dir_from_env())
    try:
        stack.start()
    except servers.ServerError as exc:
        sys.exit(f"docent: {exc}")
    try:
        execute_from_command_line(sys.argv)
    finally:
        if stack.started:  # only what this command started: a running Docent keeps its servers
            if "valkey" in stack.started:
                stack.stop_valkey()
            if "postgres" in stack.started:
                stack.stop_postgres()


if __name__ == "__main__":
    main()
