# Production image: gunicorn serving mes.wsgi, static files collected and served by
# whitenoise, running as a non-root user. Configure with DATABASE_URL, CELERY_BROKER_URL,
# SECRET_KEY, TIME_ZONE and ALLOWED_HOSTS; MES_FIELD_ENCRYPTION_KEY keeps stored secrets
# apart from SECRET_KEY, MES_OUTBOUND_ALLOWED_HOSTS names internal ERP endpoints the MES may
# post to (see mes/settings.py). The same image runs the Celery worker:
#   docker run ... mes celery -A mes worker --beat
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY mes ./mes
COPY erp_sync ./erp_sync
COPY shopfloor ./shopfloor
RUN python -m venv /venv && /venv/bin/pip install --upgrade pip && /venv/bin/pip install .

FROM python:3.11-slim
# PYTHONPATH: every process (gunicorn, celery, manage.py) imports the MES from /app, the
# copy beside its templates and translations, never the one pip installed into /venv.
ENV PATH=/venv/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=mes.settings \
    MES_VAR_DIR=/app/var STATIC_ROOT=/app/staticfiles PROMETHEUS_MULTIPROC_DIR=/app/var/metrics
RUN useradd --create-home --uid 10001 mes
COPY --from=build /venv /venv
WORKDIR /app
# Everything the build context holds: .dockerignore lets in exactly what runs (the
# packages, templates, static files and translations, manage.py).
COPY --chown=mes:mes . ./
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && mkdir -p /app/var && chown -R mes:mes /app/var /app/staticfiles
USER mes
EXPOSE 8000
CMD ["gunicorn", "mes.wsgi:application", "-c", "python:mes.gunicorn"]
