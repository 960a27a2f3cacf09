# PostgreSQL 15 from Debian for the production-mode shop (compose.yaml):
# users, orders and payments keep their state here.  The first start makes
# the cluster, the role and the database from POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB (entrypoint below); later starts find it
# in /var/lib/postgresql/data (a volume).
FROM debian:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null && \
    rm -rf /var/lib/apt/lists/* && \
    mkdir -p /var/lib/postgresql/data /run/postgresql && \
    chown -R postgres:postgres /var/lib/postgresql /run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
HEALTHCHECK --interval=1s --timeout=3s --retries=60 CMD pg_isready -q -h 127.0.0.1 -U "${POSTGRES_USER:-shop}"
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
