# cognigy-session container image.
#   docker build -t cognigy-session .
#   docker run -p 8080:8080 -v cognigy-data:/data \
#     -e WEBHOOK_API_KEY=... -e ADMIN_TOKEN=... cognigy-session
# Secrets come from the environment, never from the image: without WEBHOOK_API_KEY anyone
# who reaches the port can write sessions (the service warns at start), and without
# ADMIN_TOKEN the admin routes answer loopback clients only (so, from outside the
# container, 403 admin_token_required).
# Stage 1 builds with the Swift 6.3 toolchain; stage 2 is a slim Debian with only the
# C libraries the binary links (libcurl, libsqlite3, libcrypto from libssl3) and runs as a non-root user.

FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest names the test targets too, so their folders must exist for it to load.
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product cognigy-session --static-swift-stdlib \
 && install -D .build/release/cognigy-session /out/cognigy-session

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcurl4 libsqlite3-0 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin cognigy \
 && mkdir -p /data /app/config \
 && chown cognigy:cognigy /data
COPY --from=build /out/cognigy-session /usr/local/bin/cognigy-session
COPY config/default.json /app/config/default.json
WORKDIR /app
ENV HOST=0.0.0.0 \
    PORT=8080 \
    SQLITE_PATH=/data/sessions.sqlite \
    OUTBOX_PATH=/data/outbox.sqlite
VOLUME ["/data"]
EXPOSE 8080
# Numeric, so the host and Kubernetes (runAsNonRoot) can check it is not root.
USER 10001
# No curl in the runtime image: bash's /dev/tcp is enough to ask GET /health.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8080} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cognigy-session"]
