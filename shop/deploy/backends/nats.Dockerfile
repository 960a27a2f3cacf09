# NATS with JetStream from Debian for the production-mode shop
# (compose.yaml): the services' events, stored in /data (a volume).
FROM debian:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null && \
    rm -rf /var/lib/apt/lists/* && \
    (id nats >/dev/null 2>&1 || useradd --system --home-dir /data nats) && \
    mkdir -p /data && chown nats: /data
USER nats
VOLUME /data
EXPOSE 4222 8222
# the monitoring port's /healthz (no curl in the image: bash's /dev/tcp)
HEALTHCHECK --interval=1s --timeout=3s --retries=60 CMD ["bash", "-c", \
  "exec 3<>/dev/tcp/127.0.0.1/8222 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '\"ok\"' <&3"]
ENTRYPOINT ["nats-server", "--jetstream", "--store_dir", "/data", "--port", "4222", "--http_port", "8222"]
