import functools
from typing import Any

import factory
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from accounts.models import User

PASSWORD = "correct-horse-battery"  # conftest.PASSWORD


@functools.cache
def _hash_of_the_password() -> str:
    return make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    """A verified account; pass `email_verified_at=None` for one that has not proved its address."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    email_verified_at = factory.LazyFunction(timezone.now)
    password = PASSWORD

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        # An Argon2 hash takes about 0.2 s to make: every user shares the one made for this
        # password (signing in still verifies it the slow way); any other password, or None
        # (an unusable one), is hashed as set_password would.
        raw = kwargs.pop("password", PASSWORD)
        user = model_class(*args, **kwargs)
        if raw == PASSWORD:
            user.password = _hash_of_the_password()
        else:
            user.set_password(raw)
        user.save()
        return user
