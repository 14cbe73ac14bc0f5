# One image recipe for every service:
#   docker build --build-arg SERVICE=tenant-svc --build-arg PACKAGE=tenant_svc --build-arg PORT=8101 .
# Multi-stage: uv installs the service and its workspace dependencies (from uv.lock,
# no dev tools) into a virtual environment; the runtime stage copies only that and
# runs as a non-root user with a health check.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY contracts contracts
COPY libs libs
COPY cli cli
COPY services services
RUN test -n "${SERVICE}" || (echo "build with --build-arg SERVICE=<service>" && exit 1) \
 && uv sync --locked --no-dev --no-editable --package "${SERVICE}"

FROM ${PYTHON_IMAGE} AS runtime
ARG PACKAGE
ARG PORT=8000
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin stellara
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STELLARA_PACKAGE=${PACKAGE} \
    PORT=${PORT}
USER 10001
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['PORT'], timeout=2)"
CMD ["sh", "-c", "exec uvicorn ${STELLARA_PACKAGE}.main:create_app --factory --host 0.0.0.0 --port ${PORT} --no-access-log"]
