FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY connectors connectors
COPY sync sync
COPY tokens tokens
COPY models models
COPY web web
COPY privacy privacy
COPY sandbox sandbox
COPY worker.py ./
RUN pip install --no-cache-dir .
USER nobody
