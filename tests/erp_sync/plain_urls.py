"""The site's URLs plus plain Django views (not DRF) under /api/ and elsewhere, for what
Django itself refuses there: a CSRF failure, PermissionDenied outside DRF."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import path

from mes import urls as site_urls


def plain_post(request: HttpRequest) -> HttpResponse:  # CSRF-protected, as Django views are
    return HttpResponse("posted")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


urlpatterns = [
    path("api/v1/_plain/post/", plain_post),
    path("api/v1/_plain/forbidden/", forbidden),
    path("_plain/post/", plain_post),
    path("_plain/forbidden/", forbidden),
    *site_urls.urlpatterns,
]
# The site's error handlers (getattr: a handler the site does not set is Django's default).
handler400 = getattr(site_urls, "handler400", None)
handler403 = getattr(site_urls, "handler403", None)
handler404 = site_urls.handler404
handler500 = site_urls.handler500
