"""Writes on user accounts."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

log = logging.getLogger(__name__)


def user_register(*, email: str, password: str, name: str = "") -> Any:
    """Create an account after validating the email and the password."""
    User = get_user_model()
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    candidate = User(email=email, name=(name or "").strip()[:150])
    try:
        password_validation.validate_password(password or "", user=candidate)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "An account with this email already exists."})
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, name=candidate.name)
    except IntegrityError:
        raise ValidationError({"email": "An account with this email already exists."}) from None
    log.info("user registered", extra={"user_id": str(user.pk)})
    return user


def user_update(*, user: Any, name: str | None = None, password: str | None = None) -> Any:
    """Change the caller's own name or password."""
    fields = []
    if name is not None:
        user.name = name.strip()[:150]
        fields.append("name")
    if password is not None:
        try:
            password_validation.validate_password(password, user=user)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
        user.set_password(password)
        fields.append("password")
    if fields:
        user.save(update_fields=fields)
    return user
