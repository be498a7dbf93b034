"""Every API error as the contract's body: {"code", "detail", "errors"}.

Two ways in: DRF's exception handler (errors inside an API view) and Django's error
handlers (``handler400``/``403``/``404``/``500`` and the CSRF failure view, for what Django
refuses before or around a view). Under ``/api/`` both answer JSON in the contract's shape;
elsewhere the handlers answer the pages the screens show."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.defaults import page_not_found, server_error
from django.views.defaults import permission_denied as django_permission_denied
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from mes.errors import DomainError
from mes.middleware import NulCharacter

CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "invalid",
    exceptions.ValidationError: "invalid",
}


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource changed since you read it (If-Match does not match)."
    default_code = "precondition_failed"


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field.sub": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":  # a nested object's own errors: the object's name
                name = prefix or "non_field_errors"
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(str(i) for i in detail)
        else:
            for index, item in enumerate(detail):
                for k, v in _flatten(item, f"{prefix}.{index}" if prefix else str(index)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def error_body(code: str, detail: str, errors: dict | None = None) -> dict:
    return {"code": code, "detail": detail, "errors": errors or {}}


# --- What Django refuses about a request as such --------------------------------------------


def request_error(exc: BaseException | None) -> tuple[int, str, str, dict]:
    """A request refused as a whole (too big, too many fields, a bad Host header, a NUL
    byte, ...), as (status, code, detail, errors). A suspicious operation is described in
    general words: its own message names settings."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return 413, "payload_too_large", f"The request body is larger than {limit} bytes.", {}
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return 400, "invalid", f"Too many parameters or fields (at most {limit}).", {}
    if isinstance(exc, DisallowedHost):
        return 400, "invalid", "The Host header names a host this server does not answer.", {}
    if isinstance(exc, SuspiciousOperation):
        return 400, "invalid", "The request was refused as malformed.", {}
    if isinstance(exc, UnreadablePostError):
        return 400, "invalid", "The request body could not be read to its end.", {}
    if isinstance(exc, BadRequest | MultiPartParserError) and str(exc):
        return 400, "invalid", str(exc), dict(getattr(exc, "errors", None) or {})
    return 400, "invalid", "The request is malformed.", {}


REQUEST_ERRORS = (
    SuspiciousOperation,  # RequestDataTooBig, TooManyFieldsSent, DisallowedHost, ...
    BadRequest,
    MultiPartParserError,
    UnreadablePostError,
)


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.errors), status=exc.http_status)
    if isinstance(exc, REQUEST_ERRORS):  # e.g. reading a body over the size limit
        if isinstance(exc, SuspiciousOperation):  # logged where Django would log it
            logger = logging.getLogger(f"django.security.{exc.__class__.__name__}")
            logger.error(str(exc), extra={"request": context.get("request")})
        status_code, code, detail, errors = request_error(exc)
        return Response(error_body(code, detail, errors), status=status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real server error: let Django log it and answer 500
    if isinstance(exc, PreconditionFailed):
        code = "precondition_failed"
    else:
        code = next((c for cls, c in CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        detail = "The request is not valid; see errors."
        if set(errors) == {"non_field_errors"} and len(errors["non_field_errors"]) == 1:
            detail = errors["non_field_errors"][0]
    else:
        errors = {}
        detail = str(exc.detail) if not isinstance(exc.detail, dict | list) else str(exc)
    response.data = error_body(code, detail, errors)
    return response


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def json_bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    """handler400 (and 413: a body over the size limit): the contract's body under /api/, a
    page in words elsewhere. Reached for what Django refuses outside a view (a bad Host
    header, a NUL byte in the URL or a form: mes.middleware) or a view did not catch."""
    status_code, code, detail, errors = request_error(exception)
    if is_api_request(request):
        return JsonResponse(error_body(code, detail, errors), status=status_code)
    if status_code == 413:
        message = _("The form was too large to accept; nothing was changed.")
    elif isinstance(exception, NulCharacter):
        message = _(
            "The address or a field holds a character that cannot be stored (a NUL byte); "
            "nothing was changed."
        )
    else:
        message = _("The request could not be understood; nothing was changed.")
    # A page of its own, without the site's layout: the layout asks for the host, which a
    # refused Host header would refuse again.
    back = "/terminal/" if request.path_info.startswith("/terminal/") else "/"
    return render(request, "400.html", {"message": message, "back_url": back}, status=status_code)


def json_permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    """handler403: the contract's body under /api/, Django's page elsewhere."""
    if is_api_request(request):
        body = error_body("permission_denied", "You do not have permission to do this.")
        return JsonResponse(body, status=403)
    return django_permission_denied(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW. The API authenticates by token and is exempt; should a view under
    /api/ ever refuse a request for CSRF, the caller still gets the contract's body."""
    if is_api_request(request):
        body = error_body("permission_denied", "CSRF verification failed.")
        return JsonResponse(body, status=403)
    return django_csrf_failure(request, reason=reason)


def json_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """handler404 for URLs that match no route: JSON under /api/, HTML elsewhere."""
    if is_api_request(request):
        return JsonResponse(error_body("not_found", "No such resource."), status=404)
    return page_not_found(request, exception)


def json_server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the contract's body under /api/ (no details leak), HTML elsewhere."""
    if is_api_request(request):
        body = error_body("server_error", "Something went wrong on our side; it was logged.")
        return JsonResponse(body, status=500)
    return server_error(request)
