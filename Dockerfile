# One image for every raylite node (head and workers) and for drivers.
FROM python:3.11-slim
WORKDIR /opt/raylite
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY raylite ./raylite
COPY examples ./examples
RUN pip install --no-cache-dir -e ".[examples]"
# The cluster token must come from the environment (see docker-compose.yml).
ENV PYTHONUNBUFFERED=1
