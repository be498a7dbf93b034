"""Settings for the API benchmark's server: the product's settings plus benchmark-only
views (the framework floor and the plain DRF peer)."""

from mes.settings import *  # noqa: F403

ROOT_URLCONF = "bench.support.urls"
DEBUG = False
