# The crossings worker as a container: python:3.11-slim, the wheel and its pinned
# dependencies only, a non-root user, state and lake under volumes. Kafka is not in the
# image (no Java here): point it at a cluster with KAFKA_BOOTSTRAP.
#
#   docker build -t crossings:0.1.0 .
#   docker run --rm -e KAFKA_BOOTSTRAP=kafka:9092 -p 6066:6066 crossings:0.1.0
#
# Other commands of the same image: --entrypoint crossings ... (topics, report, sql, notify).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY streams ./streams
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CROSSINGS_HOME=/var/lib/crossings \
    CROSSINGS_DATA_DIR=/lake \
    CROSSINGS_WEB_HOST=0.0.0.0 \
    CROSSINGS_WEB_PORT=6066 \
    CROSSINGS_LOG_FORMAT=json \
    MPLCONFIGDIR=/tmp/matplotlib
COPY --from=build /dist /dist
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -c /tmp/requirements.lock /dist/*.whl \
    && rm -rf /dist /tmp/requirements.lock \
    && groupadd --system --gid 10001 crossings \
    && useradd --system --uid 10001 --gid crossings --home-dir /var/lib/crossings --shell /usr/sbin/nologin crossings \
    && mkdir -p /var/lib/crossings /lake \
    && chown crossings:crossings /var/lib/crossings /lake
USER 10001:10001
WORKDIR /var/lib/crossings
VOLUME ["/var/lib/crossings", "/lake"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=2)"]
ENTRYPOINT ["crossings", "worker"]
