"""Accounts tests run on an installed Docent, whose first account exists already.

On a fresh install the first sign-up becomes the administrator at once
(accounts.services.user_register); tests of that ask for `fresh_install`, every
other test signs up as a later visitor does.
"""

from __future__ import annotations

from typing import Any

import pytest

from accounts.tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _installed(request: pytest.FixtureRequest) -> None:
    if "fresh_install" in request.fixturenames:
        return
    if request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("db" if "transactional_db" not in request.fixturenames else "transactional_db")
    UserFactory(email="operator@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def fresh_install(db: Any) -> None:
    """No account yet: the next sign-up is the install's first."""
