# serverprep: the gRPC service, with its SQLite database on the /data volume.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY service ./service
COPY drivers ./drivers
COPY clients ./clients
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./clients .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVERPREP_DATA_DIR=/data \
    SERVERPREP_LISTEN=0.0.0.0:50051
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels serverprep==0.2.0 \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin serverprep \
    && install -d -o serverprep -g serverprep -m 0700 /data
USER 10001
VOLUME ["/data"]
EXPOSE 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["serverprep", "--address", "127.0.0.1:50051", "health"]
ENTRYPOINT ["serverprep"]
CMD ["serve"]
