"""Requests no view should see.

A NUL character (``%00``) can be put in any URL, query parameter or form field, and
PostgreSQL refuses it in text ("A string literal cannot contain NUL (0x00) characters"):
every lookup by a value from the request would fail with a server error. No value of ours
holds one, so a request that carries one is refused here, once, before any view: 400 with
the contract's body under ``/api/`` and a page in words elsewhere (both by ``handler400``,
:func:`erp_sync.api.exceptions.json_bad_request`). Cookies are read before any view too
(the session); one that holds NUL is dropped, as if the browser had not sent it. JSON
bodies are checked by the API's parser (``erp_sync.api.parsers``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse

NUL = "\x00"
NUL_MESSAGE = "Null characters are not allowed."  # the words DRF's fields use
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class NulCharacter(BadRequest):
    """A request that carries a NUL character; ``errors`` names the fields."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


def _fields_with_nul(pairs: Iterable[tuple[str, list[str]]]) -> dict[str, list[str]]:
    return {
        name: [NUL_MESSAGE]
        for name, values in pairs
        if NUL in name or any(NUL in value for value in values)
    }


def refuse_nul(request: HttpRequest) -> None:
    """Raise :class:`NulCharacter` when the path, the query string or the form holds NUL."""
    if NUL in request.path:
        raise NulCharacter("The URL path holds a NUL character (%00).")
    errors = _fields_with_nul(request.GET.lists())
    if errors:
        raise NulCharacter("A query parameter holds a NUL character (%00).", errors)
    if request.content_type in FORM_TYPES:
        errors = _fields_with_nul(request.POST.lists())
        if errors:
            raise NulCharacter("A form field holds a NUL character.", errors)


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for name in [n for n, v in request.COOKIES.items() if NUL in n or NUL in v]:
            del request.COOKIES[name]
        refuse_nul(request)
        return self.get_response(request)
