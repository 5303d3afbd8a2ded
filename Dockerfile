# syntax=docker/dockerfile:1
# One image for every service; the compose files pick the command:
#   trader oms --host 0.0.0.0 --port 8000      (the OMS, default CMD)
#   trader strategy kmp | nulrimok | kpr | pcim | swing_ml
#
# Stage 1 builds the project wheel and installs it with its dependencies into /opt/venv.
# Stage 2 copies only that venv onto a clean python:3.11-slim: no compiler, no pip cache, no source
# tree, and it runs as an unprivileged user.
#
#   docker build -t trader:latest .
#   docker build --build-arg EXTRAS= -t trader:latest .     # without alpaca-py

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ARG EXTRAS=alpaca
# (bytecode is compiled here, into the venv: the unprivileged runtime user cannot write it later)
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Compilers only for dependencies without a wheel for this platform; they stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first (from pyproject.toml only), so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python - <<'PY' > /tmp/requirements.txt
import os, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = list(project["dependencies"])
for extra in filter(None, os.environ.get("EXTRAS", "").split(",")):
    reqs += project["optional-dependencies"][extra.strip()]
print("\n".join(reqs))
PY
RUN pip install --upgrade pip wheel && pip install -r /tmp/requirements.txt

# Then the project itself, as a wheel (no editable install, no source tree in the final image).
COPY broker_core ./broker_core
COPY oms ./oms
COPY strategies ./strategies
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install --no-deps /wheels/*.whl \
    && trader --help > /dev/null

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="trader" \
      org.opencontainers.image.description="Trading platform: OMS and strategies (one image, one command per service)"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMS_CONFIG=/app/config/oms.yaml \
    TRADER_CONFIG_DIR=/app/config \
    OMS_DATA_DIR=/var/lib/oms \
    TRADER_CLOCK=real

# Unprivileged user; the directories that named volumes mount over are created (and owned) here so
# a fresh named volume inherits the ownership and the service can write to it.
RUN groupadd --system --gid 10001 trader \
    && useradd --system --uid 10001 --gid trader --home-dir /app --no-create-home --shell /usr/sbin/nologin trader \
    && mkdir -p /app/config /app/scripts /var/lib/oms /data \
    && chown trader:trader /var/lib/oms /data

COPY --from=build /opt/venv /opt/venv
# Default configuration baked in; the compose files bind-mount ./config over it read-only.
COPY config/ /app/config/
# Container health probe of the strategy services (stdlib only).
COPY scripts/strategy_health.py /app/scripts/strategy_health.py

WORKDIR /app
USER trader
EXPOSE 8000

# The OMS probe; the strategy services override it in the compose files.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["trader", "health"]

CMD ["trader", "oms", "--host", "0.0.0.0", "--port", "8000"]
