#!/usr/bin/env bash
# test.sh - the shop's deployment, end to end on this machine's Docker
# engine and qemu-user (ctest label `deploy`; .ci/run runs it).
#
#   SHOP_DEPLOY_TEST=1 shop/deploy/test.sh [SHOP_LOAD]     (build/shop/load/shop-load)
#
# Without SHOP_DEPLOY_TEST=1 (a plain ctest or `make test`) it is skipped
# (exit 77): it builds images, minutes the first time.  It checks:
#   - debian:bookworm made locally (make-base.sh, cached) and the shop's
#     image built from it (build-image.sh): final image <= 10 MB, its
#     binary static, stripped, <= 8 MB, the user 65532 (nonroot);
#   - `shop all` in a container the way production runs it: read-only root
#     filesystem, non-root, every capability dropped, no new privileges, a
#     tmpfs for its data, on a network of its own, ports on 127.0.0.1 only:
#     every role ready, gRPC from the host (health, the seeded catalog and
#     stock, an order through the saga to PAID, its idempotency key), HTTP
#     /metrics; `docker stop` ends it gracefully (exit 0);
#   - PostgreSQL from the static binary (pg-static-test.sh): the image's
#     build stage's shop-pgcheck over TLS + SCRAM, on the host and in the
#     image;
#   - compose.yaml (compose-test.sh): the backends built from Debian
#     packages and healthy, production mode with each role replica in its
#     own container, registered in etcd, an order through the saga across
#     containers to PAID, both gateways' REST;
#   - the fault tests (faults-test.sh): payments killed, an inventory
#     replica killed, orders cut off from NATS, a rolling restart of every
#     container, each under load from shop-load (the host's SHOP_LOAD),
#     the books balanced after each;
#   - the arm64 binary (cross toolchain, static, its libpq too) under
#     qemu-aarch64: every role answers its readiness probe and gRPC health,
#     shop-pgcheck reaches PostgreSQL over TLS + SCRAM;
#   - with SHOP_DEPLOY_ARM64_IMAGE=1 also the arm64 image (Dockerfile
#     ARCH=arm64): labelled arm64, <= 10 MB, its /shop an aarch64 static
#     binary that runs under qemu-aarch64 (this engine cannot run arm64
#     containers: no binfmt_misc).
# Prints the figures (bytes, ms) at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
shop_load=$(realpath -m "${1:-build/shop/load/shop-load}")
if [ "${SHOP_DEPLOY_TEST:-}" != 1 ]; then
  echo "test.sh: skipped (SHOP_DEPLOY_TEST=1 runs it: it builds Docker images)"
  exit 77
fi
docker info >/dev/null 2>&1 || { echo "test.sh: skipped: no Docker engine"; exit 77; }

ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
name=tern-shop-test-$$
pids=()
cleanup() {
  docker rm -f -v "$name" "$name-arm64" "$name-build" >/dev/null 2>&1 || true
  docker network rm "$name" >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
fail() { echo "FAIL $*" >&2; exit 1; }
ok() { echo "ok   $*"; }
roles=(users catalog inventory orders payments)
max_image=10000000
max_binary=8000000

# wait_ready URL...: every URL answers 200 within 20 s
wait_ready() {
  local deadline=$(( $(date +%s) + 20 ))
  for u in "$@"; do
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$u" || true)" = 200 ]; do
      [ "$(date +%s)" -lt "$deadline" ] || return 1
      sleep 0.05
    done
  done
}

# ---- the image ----------------------------------------------------------------
t=$(ms)
read -r tag image_bytes < <(shop/deploy/build-image.sh amd64)
image_ms=$(( $(ms) - t ))
[ "$image_bytes" -le "$max_image" ] || fail "image $tag is $image_bytes bytes (> $max_image)"
ok "image $tag: $image_bytes bytes (<= $max_image), built in ${image_ms} ms"
[ "$(docker image inspect -f '{{.Config.User}}' "$tag")" = "65532:65532" ] || fail "the image's user is not 65532:65532"
ok "the image runs as 65532:65532 (nonroot)"

tmp=$(mktemp -d)
pids+=()
trap 'cleanup; rm -rf "$tmp"' EXIT
docker create --name "$name" "$tag" >/dev/null
docker cp "$name:/shop" "$tmp/shop" >/dev/null
docker rm -v "$name" >/dev/null
binary_bytes=$(stat -c %s "$tmp/shop")
file "$tmp/shop" | grep -q 'statically linked' || fail "the image's /shop is not static: $(file "$tmp/shop")"
file "$tmp/shop" | grep -q ', stripped' || fail "the image's /shop is not stripped"
[ "$binary_bytes" -le "$max_binary" ] || fail "/shop is $binary_bytes bytes (> $max_binary)"
ok "/shop: static, stripped, $binary_bytes bytes (<= $max_binary)"

# ---- shop all in a container, hardened as in production --------------------------
docker network create "$name" >/dev/null
ports=()
for i in 1 2 3 4 5; do ports+=(-p "127.0.0.1::700$i"); done
t=$(ms)
docker run -d --name "$name" --network "$name" --read-only --user 65532:65532 \
  --cap-drop ALL --security-opt no-new-privileges \
  --tmpfs /data:rw,nosuid,nodev,size=64m,uid=65532,gid=65532,mode=0700 \
  "${ports[@]}" "$tag" all >/dev/null
addr=()
for i in 1 2 3 4 5; do addr+=("$(docker port "$name" "700$i/tcp" | head -n1)"); done
urls=()
for a in "${addr[@]}"; do urls+=("http://$a/readyz"); done
wait_ready "${urls[@]}" || { docker logs "$name" 2>&1 | tail -20; fail "shop all in the container: not ready in 20 s"; }
ready_ms=$(( $(ms) - t ))
ok "shop all in the container: every role ready ${ready_ms} ms after docker run"
uid=$(docker top "$name" -o pid,uid | awk 'NR==2 {print $2}')
[ "$uid" = 65532 ] || fail "the shop runs as uid $uid, not 65532"
ok "the process runs as uid 65532"
/usr/bin/python3 shop/deploy/shop_client.py --users "${addr[0]}" --catalog "${addr[1]}" \
  --inventory "${addr[2]}" --orders "${addr[3]}" --payments "${addr[4]}" --seeded-stock --order ||
  { docker logs "$name" 2>&1 | tail -20; fail "gRPC from the host"; }
# read whole first: grep -q stops at its match, and under pipefail curl's
# SIGPIPE on a long /metrics page would fail the pipe
metrics=$(curl -sf "http://${addr[3]}/metrics") || fail "orders' /metrics"
grep -q '^grpc_server_handled_total{.*CreateOrder.*} [1-9]' <<<"$metrics" ||
  fail "orders' /metrics does not count the CreateOrder calls"
ok "HTTP /metrics from the host counts the calls"
t=$(ms)
docker stop -t 20 "$name" >/dev/null
stop_ms=$(( $(ms) - t ))
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { docker logs "$name" 2>&1 | tail -20; fail "exit code $code after docker stop"; }
docker logs "$name" 2>&1 | grep -q '"shop: stopped"' || fail "no 'shop: stopped' in the log"
ok "docker stop: graceful, exit 0, ${stop_ms} ms"

# ---- PostgreSQL from the static binary (libpq-static.sh) -------------------------
# shop-pgcheck, linked in the image's build stage as /shop is (its layers
# are cached by the build above), against a server demanding TLS + SCRAM,
# on the host and inside the image
t=$(ms)
read -r build_tag _ < <(TARGET=build shop/deploy/build-image.sh amd64 tern-shop-build:amd64)
docker create --name "$name-build" "$build_tag" >/dev/null
docker cp "$name-build:/build/shop/shop-pgcheck" "$tmp/shop-pgcheck" >/dev/null
docker rm -v "$name-build" >/dev/null
SHOP_IMAGE=$tag shop/deploy/pg-static-test.sh "$tmp/shop-pgcheck" || fail "PostgreSQL from the static binary"
pg_ms=$(( $(ms) - t ))

# ---- compose: every role in its own container, with the backends -----------------
t=$(ms)
shop/deploy/compose-test.sh
compose_ms=$(( $(ms) - t ))

# ---- faults under load, in the compose shop -------------------------------------
[ -x "$shop_load" ] || fail "no shop-load at $shop_load (cmake --build build --target shop-load)"
t=$(ms)
shop/deploy/faults-test.sh "$shop_load"
faults_ms=$(( $(ms) - t ))

# ---- arm64: the static binary under qemu-user ------------------------------------
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  echo "skip arm64: no qemu-aarch64 or cross toolchain (scripts/deps.sh cross)"
else
  t=$(ms)
  read -r arm_bin arm_bytes < <(shop/deploy/build-static.sh arm64 "$tmp/shop-arm64" 2>/dev/null)
  arm_build_ms=$(( $(ms) - t ))
  file "$arm_bin" | grep -q 'ARM aarch64.*statically linked.*stripped' || fail "arm64 binary: $(file "$arm_bin")"
  [ "$arm_bytes" -le "$max_binary" ] || fail "the arm64 binary is $arm_bytes bytes (> $max_binary)"
  ok "arm64 binary: static, stripped, $arm_bytes bytes"
  # its libpq (libpq-static.sh arm64) over TLS + SCRAM, under qemu-aarch64
  shop/deploy/pg-static-test.sh build-static-arm64/shop/shop-pgcheck ||
    fail "arm64: PostgreSQL from the static binary"
  # port 0 for every role: the log's "serving" lines say where they are
  flags=(--data_dir "$tmp/arm64-data")
  for r in "${roles[@]}"; do flags+=("--$r.addr" 127.0.0.1:0); done
  t=$(ms)
  qemu-aarch64 "$arm_bin" all "${flags[@]}" >"$tmp/arm64.log" 2>&1 &
  pids+=($!)
  arm_pid=$!
  deadline=$(( $(date +%s) + 30 ))
  until [ "$(grep -c '"shop: serving"' "$tmp/arm64.log")" -ge 5 ]; do
    kill -0 "$arm_pid" 2>/dev/null || { tail -20 "$tmp/arm64.log"; fail "arm64 shop exited"; }
    [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$tmp/arm64.log"; fail "arm64 shop: not serving in 30 s"; }
    sleep 0.1
  done
  arm_ready_ms=$(( $(ms) - t ))
  mapfile -t arm_addr < <(grep '"shop: serving"' "$tmp/arm64.log" | sed -E 's/.*"addr":"([^"]*)".*/\1/')
  urls=()
  for a in "${arm_addr[@]}"; do urls+=("http://$a/readyz"); done
  wait_ready "${urls[@]}" || fail "arm64 shop: readiness probe not 200"
  ok "arm64 shop all under qemu-aarch64: every role's /readyz 200 (${arm_ready_ms} ms to serving)"
  hargs=()
  for i in 0 1 2 3 4; do
    r=$(grep '"shop: serving"' "$tmp/arm64.log" | sed -n "$((i + 1))p" | sed -E 's/.*"role":"([^"]*)".*/\1/')
    hargs+=("--$r" "${arm_addr[$i]}")
  done
  /usr/bin/python3 shop/deploy/shop_client.py "${hargs[@]}" >/dev/null || fail "arm64 shop: gRPC health"
  ok "arm64 shop: gRPC health SERVING on every role"
  kill -TERM "$arm_pid"
  wait "$arm_pid" || fail "arm64 shop: exit $? after SIGTERM"
  ok "arm64 shop: stopped gracefully on SIGTERM"
fi

# ---- the arm64 image (opt-in: its build stage installs the cross toolchain) -------
if [ "${SHOP_DEPLOY_ARM64_IMAGE:-}" = 1 ]; then
  t=$(ms)
  read -r arm_tag arm_image_bytes < <(shop/deploy/build-image.sh arm64)
  arm_image_ms=$(( $(ms) - t ))
  [ "$(docker image inspect -f '{{.Architecture}}' "$arm_tag")" = arm64 ] || fail "$arm_tag is not labelled arm64"
  [ "$arm_image_bytes" -le "$max_image" ] || fail "$arm_tag is $arm_image_bytes bytes (> $max_image)"
  docker create --name "$name-arm64" "$arm_tag" >/dev/null
  docker cp "$name-arm64:/shop" "$tmp/shop-arm64-image" >/dev/null
  docker rm -v "$name-arm64" >/dev/null
  file "$tmp/shop-arm64-image" | grep -q 'ARM aarch64.*statically linked.*stripped' ||
    fail "$arm_tag's /shop: $(file "$tmp/shop-arm64-image")"
  qemu-aarch64 "$tmp/shop-arm64-image" --help >/dev/null || fail "$arm_tag's /shop under qemu-aarch64"
  ok "arm64 image $arm_tag: $arm_image_bytes bytes, labelled arm64, its /shop runs under qemu-aarch64 (${arm_image_ms} ms)"
fi

echo
echo "figures: shop_image_bytes=$image_bytes shop_binary_bytes=$binary_bytes" \
     "shop_binary_bytes_arm64=${arm_bytes:-} container_ready_ms=$ready_ms docker_stop_ms=$stop_ms" \
     "shop_image_bytes_arm64=${arm_image_bytes:-} image_build_ms=$image_ms pg_static_ms=$pg_ms compose_ms=$compose_ms faults_ms=$faults_ms arm64_build_ms=${arm_build_ms:-} test_ms=$(( $(ms) - t0 ))"
