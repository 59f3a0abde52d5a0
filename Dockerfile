# Vigil: `vigil run` (the scheduler and the dashboard on 8000) over a project mounted at /project.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIGIL_PROJECT=/project

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# Vigil itself, from this source tree (its dependencies are pinned by pyproject's ranges).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[postgres,mysql]" \
    && useradd --create-home --uid 10001 vigil \
    && mkdir -p /project \
    && chown vigil /project

USER 10001
WORKDIR /project
EXPOSE 8000
# The dashboard's health: 200 while every dataset is fresh and the outbox keeps up, else 503.
HEALTHCHECK --interval=1m --timeout=10s --start-period=2m \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=8).status == 200 else 1)"]
ENTRYPOINT ["vigil"]
CMD ["run"]
