#!/usr/bin/python3
"""trim.py - make kubernetes-<version>.json, the only Kubernetes schemas
the shop's manifests need, from the OpenAPI v3 documents a Kubernetes
release ships (api/openapi-spec/v3/ in the k8s.io/kubernetes module).

    go mod download -json k8s.io/kubernetes@v1.31.4      # through GOPROXY
    trim.py <module dir>/api/openapi-spec/v3 v1.31.4 > kubernetes-v1.31.4.json

Kept: the schemas of the kinds below and every schema they reach through
$ref, without descriptions (the bulk of the documents); refs rewritten to
"#/definitions/<name>" so that one document resolves itself.
"""
import json
import os
import sys

# (OpenAPI document, kinds) for the API versions the manifests use
WANTED = {
    "api__v1_openapi.json": ["ConfigMap", "Secret", "Service", "ServiceAccount", "Namespace"],
    "apis__apps__v1_openapi.json": ["Deployment", "StatefulSet"],
    "apis__autoscaling__v2_openapi.json": ["HorizontalPodAutoscaler"],
    "apis__policy__v1_openapi.json": ["PodDisruptionBudget"],
    "apis__networking.k8s.io__v1_openapi.json": ["NetworkPolicy"],
}
REF = "#/components/schemas/"


def strip(node, refs):
    """node without descriptions, its refs rewritten; the names it refers to into refs."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "description":
                continue
            if k == "$ref":
                assert v.startswith(REF), v
                refs.add(v[len(REF):])
                out[k] = "#/definitions/" + v[len(REF):]
            else:
                out[k] = strip(v, refs)
        return out
    if isinstance(node, list):
        return [strip(v, refs) for v in node]
    return node


def main():
    src, version = sys.argv[1], sys.argv[2]
    defs, kinds = {}, {}
    for doc, want in WANTED.items():
        schemas = json.load(open(os.path.join(src, doc)))["components"]["schemas"]
        todo = []
        for name, s in schemas.items():
            for gvk in s.get("x-kubernetes-group-version-kind", []):
                if gvk["kind"] in want:
                    api = (gvk["group"] + "/" if gvk["group"] else "") + gvk["version"]
                    kinds[api + " " + gvk["kind"]] = name
                    todo.append(name)
        missing = set(want) - {k.split(" ")[1] for k in kinds}
        if missing:
            sys.exit("trim.py: %s has no %s" % (doc, ", ".join(sorted(missing))))
        while todo:
            name = todo.pop()
            if name in defs:
                continue
            refs = set()
            defs[name] = strip(schemas[name], refs)
            todo.extend(refs - defs.keys())
    json.dump({
        "x-source": "k8s.io/kubernetes@%s api/openapi-spec/v3 (Go module proxy), trimmed by trim.py" % version,
        "x-kinds": dict(sorted(kinds.items())),
        "definitions": dict(sorted(defs.items())),
    }, sys.stdout, indent=None, separators=(",", ":"), sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
