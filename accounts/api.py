"""Auth endpoints (register, JWT, logout) and the user API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

from accounts import services

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


class UserPatchIn(serializers.Serializer):
    name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    password = serializers.CharField(max_length=128, required=False, write_only=True, trim_whitespace=False)


class RegisterView(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=RegisterIn, responses={201: UserOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = RegisterIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        return Response(UserOut(user).data, status=status.HTTP_201_CREATED)


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Staff list and read users; everyone reads and changes themselves at /users/me."""

    serializer_class = UserOut
    queryset = User.objects.all().order_by("email")
    permission_classes = [permissions.IsAdminUser]
    filterset_fields = ["tier", "is_active", "is_staff"]
    search_fields = ["email", "name"]
    ordering_fields = ["email", "date_joined"]

    def get_permissions(self) -> list[Any]:
        if self.action == "me":
            return [permissions.IsAuthenticated()]
        return super().get_permissions()

    @extend_schema(methods=["GET"], responses=UserOut)
    @extend_schema(methods=["PATCH"], request=UserPatchIn, responses=UserOut)
    @action(detail=False, methods=["get", "patch"])
    def me(self, request: Request) -> Response:
        if request.method == "PATCH":
            data = UserPatchIn(data=request.data, partial=True)
            data.is_valid(raise_exception=True)
            services.user_update(user=request.user, **data.validated_data)
        return Response(UserOut(request.user).data)


auth_urls = [
    path("register", RegisterView.as_view(), name="auth-register"),
    path("token", TokenObtainPairView.as_view(), name="token-obtain"),
    path("token/refresh", TokenRefreshView.as_view(), name="token-refresh"),
    path("token/verify", TokenVerifyView.as_view(), name="token-verify"),
    path("logout", TokenBlacklistView.as_view(), name="auth-logout"),
]
