# etcd from Debian for the production-mode shop (compose.yaml): service
# discovery (each role registers itself with a lease).  One member.
FROM debian:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null && \
    rm -rf /var/lib/apt/lists/* && \
    (id etcd >/dev/null 2>&1 || useradd --system --home-dir /data etcd) && \
    mkdir -p /data && chown etcd: /data
USER etcd
VOLUME /data
EXPOSE 2379
HEALTHCHECK --interval=1s --timeout=3s --retries=60 CMD ["bash", "-c", \
  "exec 3<>/dev/tcp/127.0.0.1/2379 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '\"health\":\"true\"' <&3"]
ENTRYPOINT ["etcd", "--name", "etcd", "--data-dir", "/data", \
            "--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://etcd:2379"]
