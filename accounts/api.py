"""Auth endpoints (register, JWT, logout), the user API and personal API keys."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
    TokenVerifySerializer,
)
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken, UntypedToken
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

from accounts import audit, keys, oidc, services, verification
from accounts.mail import mail_goes_to_outbox
from accounts.models import ApiKey, Scope
from accounts.scopes import NOT_FOR_KEYS, KeyScopePermission
from core import ratelimit

User = get_user_model()


class UserOut(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "tier", "is_staff", "date_joined"]
        read_only_fields = fields


class RegisterIn(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class RegisteredOut(serializers.Serializer):
    email = serializers.EmailField()
    detail = serializers.CharField()


REGISTERED = (
    "A message was sent to this address. If it was new to Docent, open the link in it to confirm "
    "the address (or POST its token to /api/v1/auth/email/verify), then get a token at /api/v1/auth/token."
)
REGISTERED_OUTBOX = (
    "The confirmation is waiting for an administrator: this Docent sends no email yet, so the message "
    "for this address went to the outbox in its admin. Ask an administrator for the confirmation link, "
    "open it (or POST its token to /api/v1/auth/email/verify), then get a token at /api/v1/auth/token."
)
REGISTERED_FIRST_ADMIN = (
    "This is the first account of this Docent: it is confirmed and is the administrator (staff). "
    "Get a token at /api/v1/auth/token; the admin is at /admin/."
)


class UserPatchIn(serializers.Serializer):
    name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    password = serializers.CharField(max_length=128, required=False, write_only=True, trim_whitespace=False)
    # Required with `password`: a stolen access token alone cannot take the account over.
    current_password = serializers.CharField(
        max_length=128, required=False, write_only=True, trim_whitespace=False
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "password" in attrs and not attrs.get("current_password"):
            raise serializers.ValidationError(
                {"current_password": "Give the current password to set a new one."}
            )
        return attrs


class RegisterView(APIView):
    """202 with one body for a new and a taken address alike: sign-up tells no one who has an account."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=RegisterIn, responses={202: RegisteredOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        if oidc.sso_only():
            raise SsoOnly()
        refusal = ratelimit.hit(ratelimit.SIGNUP_IP, request)
        if refusal is not None:
            raise ratelimit.RateLimited(refusal)
        data = RegisterIn(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"].strip().lower()
        registration = services.user_register(**data.validated_data, base_url=request.build_absolute_uri("/"))
        if registration.first_admin:
            detail = REGISTERED_FIRST_ADMIN
        else:  # the same answer whether or not the address had an account
            detail = REGISTERED_OUTBOX if mail_goes_to_outbox() else REGISTERED
        return Response({"email": email, "detail": detail}, status=status.HTTP_202_ACCEPTED)


def _email_of(request: Request) -> str:
    data = request.data
    return ratelimit.normalise_email(data.get("email") if isinstance(data, dict) else "")


class SsoOnly(exceptions.PermissionDenied):
    """403 for a password sign-in or sign-up while DOCENT_OIDC_ONLY makes the provider the only way in."""

    default_code = "sso_only"
    names_its_code = True

    def __init__(self) -> None:
        super().__init__(
            f"Passwords are not used on this Docent: sign in with {oidc.provider_name()} on its website, "
            "then create an API key on your account page and send it as `Authorization: Bearer <key>`."
        )


class EmailUnverified(exceptions.PermissionDenied):
    """403 for the right password of an account that has not confirmed its address."""

    default_detail = verification.UNVERIFIED
    default_code = "email_unverified"
    names_its_code = True  # the body carries {"code": "email_unverified"} (core/api_errors.py)


class TokenObtainIn(TokenObtainPairSerializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        # Accounts store their email in lower case, as the log-in page matches it.
        attrs[self.username_field] = ratelimit.normalise_email(attrs[self.username_field])
        tokens = super().validate(attrs)  # a wrong password raised; user_login_failed recorded it
        audit.record("auth.sign_in", actor=self.user, target=self.user.email, detail={"via": "api"})
        return tokens

    @classmethod
    def get_token(cls, user: Any) -> Any:
        # Called only once the password matched, before any token exists.
        if not verification.is_verified(user):
            raise EmailUnverified()
        return super().get_token(user)


class EmailVerifyIn(serializers.Serializer):
    token = serializers.CharField(max_length=1000)


class EmailVerifiedOut(serializers.Serializer):
    email = serializers.EmailField()
    detail = serializers.CharField()


class EmailVerifyView(APIView):
    """Confirm an address with the token from the emailed link (the part after /accounts/verify/)."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=EmailVerifyIn, responses={200: EmailVerifiedOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = EmailVerifyIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = verification.email_verify(token=data.validated_data["token"])
        return Response({"email": user.email, "detail": "The address is confirmed: get a token."})


class ResendIn(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


RESENT = "If this address has an account still waiting for confirmation, a new link was sent to it."


class VerificationResendView(APIView):
    """202 with one body whether or not the address has an account; limited per IP and per address."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=ResendIn, responses={202: RegisteredOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        refusal = verification.verification_resend_refusal(request, _email_of(request))
        if refusal is not None:
            raise ratelimit.RateLimited(refusal)
        data = ResendIn(data=request.data)
        data.is_valid(raise_exception=True)
        email = ratelimit.normalise_email(data.validated_data["email"])
        verification.verification_resend(email=email, base_url=request.build_absolute_uri("/"))
        return Response({"email": email, "detail": RESENT}, status=status.HTTP_202_ACCEPTED)


class TokenObtainView(TokenObtainPairView):
    """A JWT pair for an email and password; attempts limited per IP and failures per address."""

    serializer_class = TokenObtainIn

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if oidc.sso_only():  # break-glass staff sign in on the pages, never here
            raise SsoOnly()
        email = _email_of(request)
        refusal = ratelimit.signin_refusal(request, email)
        if refusal is not None:
            raise ratelimit.RateLimited(refusal)
        try:
            response = super().post(request, *args, **kwargs)
        except exceptions.AuthenticationFailed:
            raise  # a wrong password: it stays counted as a failure
        except Exception:
            ratelimit.signin_passed(request, email)  # refused for another reason (unconfirmed, malformed)
            raise
        ratelimit.signin_passed(request, email)
        return response


def _active_user_exists(user_id: Any) -> bool:
    try:
        return User.objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}, is_active=True).exists()
    except (ValueError, TypeError, DjangoValidationError):
        return False


class SingleUseRefreshToken(RefreshToken):
    """A refresh token that rotation can spend once: blacklisting it is a unique insert.

    simplejwt checks the blacklist when the token is read and blacklists it with
    get_or_create afterwards, so parallel refreshes with one token all passed the check
    and each got a new pair. Here the insert decides: the request whose row lands wins,
    every other one gets "Token is blacklisted" (401).
    """

    def blacklist(self) -> BlacklistedToken:
        outstanding, _ = self.outstand()  # type: ignore[misc]  # simplejwt returns get_or_create's pair
        try:
            with transaction.atomic():
                return BlacklistedToken.objects.create(token=outstanding)
        except IntegrityError:
            raise TokenError("Token is blacklisted") from None


class TokenRefreshIn(TokenRefreshSerializer):
    """simplejwt's refresh, spending the token once, with a 401 (not a crash) for a token
    whose user was deleted."""

    token_class = SingleUseRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        token = self.token_class(attrs["refresh"])
        if not _active_user_exists(token.payload.get(jwt_settings.USER_ID_CLAIM)):
            raise exceptions.AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            )
        return super().validate(attrs)


class RefreshView(TokenRefreshView):
    serializer_class = TokenRefreshIn


class TokenVerifyIn(TokenVerifySerializer):
    """A token is valid only while it is not blacklisted and its user exists and is active (else 401)."""

    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        token = UntypedToken(attrs["token"])
        if BlacklistedToken.objects.filter(token__jti=token.get(jwt_settings.JTI_CLAIM)).exists():
            raise TokenError("Token is blacklisted.")
        if not _active_user_exists(token.get(jwt_settings.USER_ID_CLAIM)):
            raise TokenError("Token is invalid: no active account.")
        return {}


class VerifyView(TokenVerifyView):
    serializer_class = TokenVerifyIn


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Staff list and read users; everyone reads and changes themselves at /users/me."""

    serializer_class = UserOut
    queryset = User.objects.all().order_by("email")
    permission_classes = [permissions.IsAdminUser, KeyScopePermission]
    # A key reads (`read`) but never changes the account (accounts/scopes.py).
    key_scopes = {"me:PATCH": NOT_FOR_KEYS}
    filterset_fields = ["tier", "is_active", "is_staff"]
    search_fields = ["email", "name"]
    ordering_fields = ["email", "date_joined"]

    def get_permissions(self) -> list[Any]:
        if self.action == "me":
            return [permissions.IsAuthenticated(), KeyScopePermission()]
        return super().get_permissions()

    @extend_schema(methods=["GET"], responses=UserOut)
    @extend_schema(methods=["PATCH"], request=UserPatchIn, responses=UserOut)
    @action(detail=False, methods=["get", "patch"])
    def me(self, request: Request) -> Response:
        if request.method == "PATCH":
            data = UserPatchIn(data=request.data, partial=True)
            data.is_valid(raise_exception=True)
            changes = dict(data.validated_data)
            if "password" not in changes:
                changes.pop("current_password", None)
            else:
                # Guesses at the current password count as failed sign-ins for the address.
                refusal = ratelimit.signin_refusal(request, request.user.email)
                if refusal is not None:
                    raise ratelimit.RateLimited(refusal)
            try:
                services.user_update(user=request.user, **changes, base_url=request.build_absolute_uri("/"))
            except DjangoValidationError as exc:
                if "password" in changes and "current_password" not in getattr(exc, "error_dict", {}):
                    ratelimit.signin_passed(request, request.user.email)
                raise
            if "password" in changes:
                ratelimit.signin_passed(request, request.user.email)
        return Response(UserOut(request.user).data)


# --- personal API keys -------------------------------------------------------------


class KeyOut(serializers.ModelSerializer):
    projects = serializers.ListField(
        child=serializers.UUIDField(),
        source="project_ids",
        help_text="the projects the key is limited to; empty: all of yours",
    )
    status = serializers.SerializerMethodField(help_text="active, expired or revoked")

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "projects",
            "status",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields

    def get_status(self, obj: ApiKey) -> str:
        return keys.key_status(obj)


class KeyCreatedOut(KeyOut):
    key = serializers.CharField(help_text="the key itself: shown this once, only its hash is kept")

    class Meta(KeyOut.Meta):
        fields = [*KeyOut.Meta.fields, "key"]
        read_only_fields = fields


class KeyIn(serializers.Serializer):
    name = serializers.CharField(max_length=keys.NAME_MAX)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), allow_empty=False)
    projects = serializers.ListField(
        child=serializers.UUIDField(), required=False, default=list, help_text="empty: all of your projects"
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class KeyViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your personal API keys. Create one (its secret is in the answer, once), list them, revoke one.

    A key may list keys (with `read`) but never create or revoke one: a key that leaked cannot
    mint its successors or lock you out of your other integrations.
    """

    serializer_class = KeyOut
    filter_backends: list[Any] = []
    key_scopes = {"create": NOT_FOR_KEYS, "destroy": NOT_FOR_KEYS}

    def get_queryset(self) -> Any:
        return keys.keys_of(self.request.user)

    def get_object(self) -> ApiKey:
        return keys.key_of(self.request.user, self.kwargs["pk"])

    @extend_schema(request=KeyIn, responses={201: KeyCreatedOut})
    def create(self, request: Request) -> Response:
        data = KeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw = keys.key_create(user=request.user, **data.validated_data, request=request)
        return Response({**KeyOut(key).data, "key": raw}, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke the key (at once: its next request is refused)", responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        keys.key_revoke(key=self.get_object(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


auth_urls = [
    path("register", RegisterView.as_view(), name="auth-register"),
    path("token", TokenObtainView.as_view(), name="token-obtain"),
    path("token/refresh", RefreshView.as_view(), name="token-refresh"),
    path("token/verify", VerifyView.as_view(), name="token-verify"),
    path("logout", TokenBlacklistView.as_view(), name="auth-logout"),
    path("email/verify", EmailVerifyView.as_view(), name="auth-email-verify"),
    path("email/resend", VerificationResendView.as_view(), name="auth-email-resend"),
]
