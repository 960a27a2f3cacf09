#!/usr/bin/python3
"""gen.py - write the shop's Kubernetes manifests (the *.yaml beside it):
the six roles are alike, so they are made from one description here
rather than kept as six copies by hand.

    gen.py            write them
    gen.py --check    exit 1 if a file differs from what gen.py writes

Production mode (docs/shop.md): one Deployment per role, state in
PostgreSQL (catalog: SQLite under each pod's /data, seeded at its start),
sessions and rate limits in Redis, events through NATS JetStream,
discovery through etcd: each pod registers its own IP (the downward API's
status.podIP as SHOP_DISCOVERY_ADVERTISE) and the roles' port, and
callers follow what is registered.  The <role>-pods headless Services
(A and SRV records of the named port) serve the addresses configured
for a shop without etcd.  The gateway is the way in: a ClusterIP Service
on its HTTP port, open to any namespace (put an Ingress or a
LoadBalancer in front).  The backends themselves are not here: point the
ConfigMap and the Secret at them.
"""
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
NS = "shop"
IMAGE = "tern-shop:amd64"          # shop/deploy/build-image.sh; push it where the cluster pulls from
# role -> (port, the roles that call it); the gateway is the HTTP way in,
# called from outside the namespace
GATEWAY = "gateway"
ROLES = {
    GATEWAY: (8080, []),
    "users": (7001, ["gateway"]),
    "catalog": (7002, ["gateway", "orders"]),
    "inventory": (7003, ["gateway", "orders", "catalog"]),   # catalog: the first start's seed writes stock
    "orders": (7004, ["gateway"]),
    "payments": (7005, ["gateway", "orders"]),
}
BACKENDS = {"postgres": 5432, "redis": 6379, "nats": 4222, "etcd": 2379}


def labels(role):
    return {"app.kubernetes.io/name": role, "app.kubernetes.io/part-of": "shop"}


def meta(name, role=None, **extra):
    m = {"name": name, "namespace": NS}
    if role:
        m["labels"] = labels(role)
    m.update(extra)
    return m


def config():
    data = {
        "SHOP_LOG_LEVEL": "info",
        "SHOP_DATA_DIR": "/data",
        "SHOP_SEED": "true",
        "SHOP_CALL_TIMEOUT": "5s",
        # readiness false this long before a role stops accepting, so the
        # endpoints drop it first (the image has no shell for a preStop sleep)
        "SHOP_SHUTDOWN_PRE_STOP": "5s",
        "SHOP_SHUTDOWN_DRAIN": "15s",
        "SHOP_PAYMENTS_FAILURE_RATE": "0.05",
        "SHOP_PAYMENTS_LATENCY": "50ms",
        # production mode's backends (names the shop is to read)
        "SHOP_REDIS_ADDR": "redis.%s.svc.cluster.local:6379" % NS,
        "SHOP_NATS_URL": "nats://nats.%s.svc.cluster.local:4222" % NS,
        "SHOP_ETCD": "http://etcd.%s.svc.cluster.local:2379" % NS,
    }
    for role, (port, _) in ROLES.items():
        if role == GATEWAY:
            continue            # nothing calls it from inside
        # every pod of a role: the headless Service's A records; its SRV
        # records (_grpc._tcp.<role>-pods...) name the port too
        data["SHOP_%s_ADDR" % role.upper()] = "%s-pods.%s.svc.cluster.local:%d" % (role, NS, port)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("shop-config", "shop"), "data": data}
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": meta("shop-secrets", "shop"), "type": "Opaque",
        # placeholders: replace before applying (kubectl create secret ... --dry-run=client -o yaml)
        "stringData": {
            "SHOP_USERS_JWT_SECRET": "change-me-to-at-least-32-random-bytes",
            "SHOP_PG_URL": "postgres://shop:change-me@postgres.%s.svc.cluster.local:5432/shop" % NS,
        },
    }
    return [cm, secret]


def port_name(role):
    return "http" if role == GATEWAY else "grpc"


def deployment(role, port):
    probe_http = lambda path, period, failures: {
        "httpGet": {"path": path, "port": port_name(role)}, "periodSeconds": period, "timeoutSeconds": 2,
        "failureThreshold": failures}
    container = {
        "name": "shop",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": [role],
        "ports": [{"name": port_name(role), "containerPort": port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": "shop-config"}}, {"secretRef": {"name": "shop-secrets"}}],
        # its own address is where it listens: every interface of the pod;
        # what it registers in etcd is the pod's IP with that port
        "env": [{"name": "SHOP_%s_ADDR" % role.upper(), "value": "0.0.0.0:%d" % port},
                {"name": "SHOP_DISCOVERY_ADVERTISE",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
        # until the role started: gRPC health (grpc.health.v1, h2c on the
        # service port), or the gateway's /readyz; then HTTP: /livez the
        # process, /readyz the role
        "startupProbe": ({"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1,
                          "timeoutSeconds": 2, "failureThreshold": 30} if role == GATEWAY else
                         {"grpc": {"port": port}, "periodSeconds": 1, "timeoutSeconds": 2,
                          "failureThreshold": 30}),
        "livenessProbe": probe_http("/livez", 10, 3),
        "readinessProbe": probe_http("/readyz", 2, 2),
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(role, role),
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": labels(role)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(role),
                             "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                             "prometheus.io/path": "/metrics"}},
                "spec": {
                    "automountServiceAccountToken": False,
                    # no SHOP_*-looking service links in the environment
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": labels(role)}}],
                    "containers": [container],
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


def services(role, port):
    if role == GATEWAY:
        return [{"apiVersion": "v1", "kind": "Service", "metadata": meta(role, role),
                 "spec": {"type": "ClusterIP", "selector": labels(role),
                          "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP",
                                     "appProtocol": "http"}]}}]
    port_spec = {"name": "grpc", "port": port, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(role, role),
         "spec": {"type": "ClusterIP", "selector": labels(role), "ports": [port_spec]}},
        # headless: DNS answers with every ready pod (A and SRV), for
        # client-side balancing; one connection per pod, not per Service
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(role + "-pods", role),
         "spec": {"clusterIP": "None", "selector": labels(role), "ports": [port_spec]}},
    ]


def autoscaling(role):
    return [
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(role, role),
         "spec": {
             "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": role},
             "minReplicas": 2, "maxReplicas": 10,
             "metrics": [{"type": "Resource", "resource": {
                 "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
             "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}},
         }},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(role, role),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(role)}}},
    ]


def network():
    out = [
        # nothing in, nothing out unless a policy below allows it
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("default-deny", "shop"),
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        # every pod: DNS (kube-dns), and the backends
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("egress-dns-and-backends", "shop"),
         "spec": {
             "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "shop"}},
             "policyTypes": ["Egress"],
             "egress": [
                 {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                  "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}] + [
                 {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": b}}}],
                  "ports": [{"protocol": "TCP", "port": p}]}
                 for b, p in BACKENDS.items()],
         }},
    ]
    for role, (port, callers) in ROLES.items():
        out.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(role, role),
            "spec": {
                "podSelector": {"matchLabels": labels(role)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    # the gateway: from anywhere (an Ingress controller, a
                    # LoadBalancer); the others: from their callers only
                    {"from": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}],
                     "ports": [{"protocol": "TCP", "port": port}]} if role == GATEWAY else
                    {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": c}}} for c in callers],
                     "ports": [{"protocol": "TCP", "port": port}]},
                    # /metrics for Prometheus
                    {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                     "ports": [{"protocol": "TCP", "port": port}]},
                ],
                "egress": [
                    {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": callee}}}],
                     "ports": [{"protocol": "TCP", "port": p}]}
                    for callee, (p, cs) in ROLES.items() if role in cs],
            },
        })
    return out


def files():
    out = {
        "00-namespace.yaml": [{"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": NS, "labels": {"kubernetes.io/metadata.name": NS,
                                                                   "pod-security.kubernetes.io/enforce": "restricted"}}}],
        "10-config.yaml": config(),
        "90-network.yaml": network(),
    }
    for role, (port, _) in ROLES.items():
        out["20-%s.yaml" % role] = [deployment(role, port)] + services(role, port) + autoscaling(role)
    return out


def render(objs):
    head = "# generated by gen.py (shop/deploy/k8s): edit gen.py, then run it\n"
    return head + "---\n".join(yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objs)


def main(argv):
    check = "--check" in argv
    stale = []
    for name, objs in files().items():
        path = os.path.join(HERE, name)
        text = render(objs)
        old = open(path).read() if os.path.exists(path) else None
        if old == text:
            continue
        if check:
            stale.append(name)
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        print("gen.py: out of date (run shop/deploy/k8s/gen.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
