# Image for Prefect workers (and one-off CLI runs) on users' machines; used by docker-compose.yml, which mounts the
# users' folder at /work and starts the flow runs there. The project is installed here, in /app: the work pool's
# deployments import the flows from it (flows.ingest.ingest ...). /app/params.yaml is the project's, copied into
# the users' folder by docker-compose when that has none.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg default-jre-headless git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml constraints.txt README.md params.yaml ./
COPY videobert ./videobert
COPY videobert_model ./videobert_model
COPY tasks ./tasks
COPY flows ./flows
COPY videobert_cli ./videobert_cli
# The CPU build of torch; for GPUs, replace the index URL with a CUDA one.
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir -c constraints.txt -e .
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false DVC_NO_ANALYTICS=1 TF_CPP_MIN_LOG_LEVEL=3
CMD ["videobert", "serve"]
