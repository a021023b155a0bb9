# The Notes API image: `docker build -t notes-api .`, then
# `docker run -p 8080:8080 -e DATABASE_URL=postgresql://user:pass@host/db notes-api`.
# The builder turns the project into a wheel and installs it into a virtualenv; the final stage
# takes only that virtualenv, so no sources, build tools or pip caches reach the image.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
# The cache mount keeps downloaded dependencies between builds without putting them in a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/venv/bin/pip install /tmp/wheels/*.whl

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
# A fixed unprivileged uid, so files on mounted volumes have the same owner on every host.
RUN groupadd --system --gid 10001 notes \
 && useradd --system --no-log-init --uid 10001 --gid notes \
        --home-dir /var/lib/notes --shell /usr/sbin/nologin notes \
 && install -d -o notes -g notes /var/lib/notes
# Same path as in the builder: the scripts in the virtualenv name its interpreter by absolute path.
COPY --from=builder /opt/venv /opt/venv
# A relative sqlite:///notes.db lands here, the one directory the service may write to.
WORKDIR /var/lib/notes
# Numeric, so that the host and Kubernetes' runAsNonRoot can tell it is not root without /etc/passwd.
USER 10001:10001
EXPOSE 8080
# Slim images have no curl: Python's urllib asks /healthz, and any error or non-2xx fails the check.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# `serve` applies pending migrations before it listens (unless --no-migrate) and stops gracefully
# on SIGTERM; DATABASE_URL comes from the environment. `docker run IMAGE migrate` only migrates.
ENTRYPOINT ["notes-api"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
