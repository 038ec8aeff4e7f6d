# gvae-serve: the FastAPI service and the bundled model store. One image for GPU and CPU-only hosts.
#
#   docker build -t gvae-serve .
#   docker run --gpus all -p 8000:8000 gvae-serve      # GPU host: NVIDIA driver + NVIDIA Container Toolkit
#   docker run -p 8000:8000 gvae-serve                 # CPU-only host: GVAE_DEVICE=auto falls back to the CPU
#   docker run -p 8000:8000 -v /srv/models:/models:ro -e GVAE_STORE_ROOT=/models \
#              -e GVAE_MODEL_VERSION=production gvae-serve
#
# The torch wheels bring their own CUDA runtime, so a slim Python base is enough (docs/deploy.md says why).
# Every dependency is a binary wheel: nothing is compiled, so there is no build stage to throw away.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed UID/GID, so volume permissions and Kubernetes' runAsUser can name it.
RUN groupadd --system --gid 10001 gvae \
 && useradd --system --uid 10001 --gid gvae --create-home --home-dir /home/gvae --shell /usr/sbin/nologin gvae

# Dependencies first: this ~5 GB layer is rebuilt only when requirements.txt changes.
# Unset by default (pip uses PyPI); set them to build from a local mirror or wheel folder, e.g.
#   podman build -v /opt/wheels:/wheels:ro --build-arg PIP_FIND_LINKS=/wheels ...
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv "$VIRTUAL_ENV" \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Source after the dependencies; owned by root, so the service cannot modify its own code or bundled model.
WORKDIR /app
COPY model_store/ model_store/
COPY service/ service/
RUN python -m compileall -q model_store service

# 0.0.0.0 so that published ports reach the server; GVAE_DEVICE=auto picks CUDA when the host lends a GPU
# (the NVIDIA runtime mounts the driver's compute libraries, as in NVIDIA's own CUDA images). After SIGTERM,
# in-flight requests get 5 s (uvicorn's timeout_graceful_shutdown): less than Docker's 10 s stop grace.
ENV PYTHONPATH=/app \
    GVAE_HOST=0.0.0.0 \
    GVAE_PORT=8000 \
    GVAE_DEVICE=auto \
    GVAE_GRACEFUL_SHUTDOWN_SECONDS=5 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
EXPOSE 8000

# Readiness (model loaded, verified and warmed up), with the standard library only: no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('GVAE_PORT', '8000'), timeout=4)"]

# OCI labels last: a new commit's REVISION must not invalidate the cached layers above (ARGs are part of
# the cache key of every RUN after them). CI passes the commit and the repository URL.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="gvae-serve" \
      org.opencontainers.image.description="Sample, encode, decode and reconstruct MNIST digits with a Gumbel-Softmax VAE" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT"

# Exec form: the server is PID 1 and receives SIGTERM itself (uvicorn drains and runs the lifespan shutdown).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]
