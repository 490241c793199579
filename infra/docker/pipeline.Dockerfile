# The pipeline image: project code + locked dependencies. Used by the Prefect
# worker in docker-compose and, pushed to a registry, as the image of the
# Kubernetes GPU work pool (infra/k8s/gpu-base-job-template.json).
# Build from the repository root:  docker build -f infra/docker/pipeline.Dockerfile -t mentor-pipeline .
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mentor
COPY requirements.lock requirements-assets.txt requirements-uv.txt pyproject.toml ./
# As `make install`: exactly the hashed lock, no resolver. torch is PyTorch's CPU build, which
# PyPI does not serve: here it comes from PyTorch's own CPU index (the lock pins its sha256).
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements-uv.txt \
 && uv pip install --system --no-cache --no-deps --require-hashes \
      --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match \
      -r requirements.lock -r requirements-assets.txt
# .dockerignore (repository root) keeps .venv, .mentor, outputs, MLflow/Prefect state and
# every .env (infra/.env holds the service passwords) out of the build context and the image.
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && useradd --uid 10001 --no-create-home --home-dir /opt/mentor mentor \
 && mkdir -p /opt/mentor/.mentor /opt/mentor/outputs \
 && chown -R 10001:10001 /opt/mentor/.mentor /opt/mentor/outputs
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    HOME=/opt/mentor/.mentor
# Not root: the Kubernetes job template also requires runAsNonRoot.
USER 10001:10001
CMD ["mentor", "--help"]
