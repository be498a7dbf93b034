"""API clients: bearer tokens (stored as SHA-256 hashes) and scopes."""

from __future__ import annotations

import hashlib
import secrets
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from mes.accounts import has_role
from mes.errors import Conflict, ValidationFailed
from mes.roles import STAFF_ROLES

from .models import ApiClient, Scope

TOKEN_PREFIX = "mes_"


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is as good as a slow one here.
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_client(*, name: str, scope: str) -> tuple[ApiClient, str]:
    """Create a client and return it with its token (shown once, never stored)."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed.field("name", "Give the client a name.")
    if scope not in Scope.values:
        raise ValidationFailed.field("scope", f"Scope must be one of {', '.join(Scope.values)}.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        if ApiClient.objects.filter(name=name).exists():
            raise Conflict(f"An API client named {name!r} exists.", errors={"name": ["Taken."]})
        client = ApiClient.objects.create(
            name=name, scope=scope, token_hash=hash_token(token), token_hint=token[:8]
        )
    return client, token


class ApiClientPrincipal:
    """What ``request.user`` is for API calls: the client, looking enough like a user for
    DRF and throttling."""

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.pk = self.id = client.pk

    def __str__(self) -> str:
        return f"api:{self.client.name}"

    def get_username(self) -> str:
        return f"api:{self.client.name}"


# token hash -> (client, monotonic expiry). A revoked or deactivated token keeps working
# for at most MES_API_TOKEN_CACHE_SECONDS in a process that looked it up just before.
_clients: dict[str, tuple[ApiClient, float]] = {}


def _client_for(token_hash: str) -> ApiClient | None:
    ttl = settings.MES_API_TOKEN_CACHE_SECONDS
    now = time.monotonic()
    cached = _clients.get(token_hash)
    if cached is not None and cached[1] > now:
        return cached[0]
    client = ApiClient.objects.filter(token_hash=token_hash, is_active=True).first()
    if ttl > 0 and client is not None:  # unknown tokens are not cached: nothing to flood
        if len(_clients) > 1000:
            _clients.clear()
        _clients[token_hash] = (client, now + ttl)
    return client


def forget_cached_clients() -> None:
    """For tests and after revoking a client in this process."""
    _clients.clear()


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        client = _client_for(hash_token(parts[1]))
        if client is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        now = timezone.now()
        if client.last_used_at is None or (now - client.last_used_at).total_seconds() > 60:
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
            client.last_used_at = now
        return ApiClientPrincipal(client), client

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when the token is missing or wrong.
        return 'Bearer realm="mes"'


class CanReadSchema(permissions.BasePermission):
    """The OpenAPI document and its Swagger page: any API client's token, or a signed-in
    planner, supervisor or admin (who set up integrations). Nothing of the API is public."""

    message = "The API's schema is for API clients and for planners, supervisors and admins."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None:  # anonymous (UNAUTHENTICATED_USER is None): DRF answers 401
            return False
        if getattr(user, "client", None) is not None:
            return True
        return has_role(user, *STAFF_ROLES)


class _ScopePermission(permissions.BasePermission):
    scope: str
    read_scope: str | None = None

    def has_permission(self, request, view) -> bool:
        client = getattr(request.user, "client", None)
        if client is None:
            return False
        needed = self.read_scope if request.method in permissions.SAFE_METHODS else self.scope
        if needed is None:
            needed = self.scope
        if not client.has_scope(needed):
            self.message = f"This token's scope ({client.scope}) does not allow that."
            return False
        return True


class ErpScope(_ScopePermission):
    """Work orders, confirmations, machines (read) and master data (read)."""

    scope = Scope.ERP


class MasterDataScope(_ScopePermission):
    """Read with ``erp``; write with ``integrator``."""

    scope = Scope.INTEGRATOR
    read_scope = Scope.ERP


class IntegratorScope(_ScopePermission):
    scope = Scope.INTEGRATOR
