#!/usr/bin/python3
"""validate.py - check Kubernetes manifests offline, as strictly as
`kubectl apply --validate=strict`, against the schemas stored beside it
(schemas/kubernetes-<version>.json, trimmed from the release's OpenAPI v3
documents by schemas/trim.py), then against the shop's own rules.

    validate.py [--schemas FILE] [FILE.yaml | DIR] ...   (default: this folder)
    validate.py --self-test                              (it refuses what it must)

Schema: every object (apiVersion, kind) must be a kind the schemas hold;
a field a schema does not name is an error (the schemas leave
additionalProperties unset; strict validation means false), as are wrong
types and missing required fields.  Rules (the shop's deployment policy,
issue 20): every container of a Deployment has liveness, readiness and
startup probes, resources with requests and limits, and the hardened
securityContext; every Deployment has a Service, an HPA, a PDB and a
NetworkPolicy selecting it.  Exit 0, or 1 with one line per problem.
"""
import copy
import glob
import json
import os
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMAS = sorted(glob.glob(os.path.join(HERE, "schemas", "kubernetes-*.json")))


def strict(node):
    """Schemas with additionalProperties false wherever properties are listed."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out and \
                not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


class Schemas:
    def __init__(self, path):
        doc = json.load(open(path))
        self.source = doc.get("x-source", path)
        self.kinds = doc["x-kinds"]
        self.defs = strict(doc["definitions"])
        self.validators = {}

    def validator(self, api, kind):
        key = api + " " + kind
        if key not in self.kinds:
            return None
        if key not in self.validators:
            schema = {"$ref": "#/definitions/" + self.kinds[key], "definitions": self.defs}
            self.validators[key] = jsonschema.Draft7Validator(schema)
        return self.validators[key]


def where(path):
    return "".join("[%d]" % p if isinstance(p, int) else "." + str(p) for p in path) or "."


def schema_errors(schemas, obj):
    if not isinstance(obj, dict):
        return ["not an object"]
    api, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api, str) or not isinstance(kind, str):
        return ["no apiVersion and kind"]
    v = schemas.validator(api, kind)
    if v is None:
        return ["%s %s: not a kind the schemas hold (%s)" % (api, kind, ", ".join(sorted(schemas.kinds)))]
    out = []
    for e in sorted(v.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        # a oneOf/anyOf's branches: the closest one says more
        best = jsonschema.exceptions.best_match([e] + list(e.context or []))
        out.append("%s: %s" % (where(best.absolute_path), best.message))
    return out


# ---- the shop's rules ----------------------------------------------------------

def labels_match(selector, labels):
    want = (selector or {}).get("matchLabels", selector or {})
    return bool(want) and all(labels.get(k) == v for k, v in want.items())


def container_errors(c):
    out, name = [], c.get("name", "?")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe not in c:
            out.append("container %s: no %s" % (name, probe))
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        if not res.get(part, {}).get("memory") or (part == "requests" and not res.get(part, {}).get("cpu")):
            out.append("container %s: resources.%s needs %s" % (name, part, "cpu and memory" if part == "requests" else "memory"))
    sc = c.get("securityContext", {})
    want = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
    for k, v in want.items():
        if sc.get(k) is not v:
            out.append("container %s: securityContext.%s must be %s" % (name, k, json.dumps(v)))
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        out.append("container %s: securityContext.capabilities.drop must hold ALL" % name)
    if sc.get("capabilities", {}).get("add"):
        out.append("container %s: securityContext.capabilities.add must be empty" % name)
    return out


def rule_errors(objs):
    """objs: (file, object) of every manifest, checked together."""
    out = []
    by_kind = {}
    for f, o in objs:
        by_kind.setdefault(o.get("kind"), []).append((f, o))
    for f, d in by_kind.get("Deployment", []):
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]
        labels = pod.get("metadata", {}).get("labels", {})
        where_ = "%s: Deployment %s" % (f, name)
        if not labels_match(d["spec"]["selector"], labels):
            out.append("%s: its selector does not select its pods" % where_)
        pspec = pod["spec"]
        seccomp = pspec.get("securityContext", {}).get("seccompProfile", {}).get("type")
        if seccomp != "RuntimeDefault":
            out.append("%s: spec.template.spec.securityContext.seccompProfile.type must be RuntimeDefault" % where_)
        for c in pspec.get("containers", []):
            out.extend("%s: %s" % (where_, e) for e in container_errors(c))

        def selects(kind, get_selector):
            return any(labels_match(get_selector(o), labels) for _, o in by_kind.get(kind, [])
                       if o["metadata"].get("namespace") == d["metadata"].get("namespace"))
        if not selects("Service", lambda o: o["spec"].get("selector")):
            out.append("%s: no Service selects it" % where_)
        if not selects("PodDisruptionBudget", lambda o: o["spec"].get("selector")):
            out.append("%s: no PodDisruptionBudget selects it" % where_)
        if not selects("NetworkPolicy", lambda o: o["spec"].get("podSelector")):
            out.append("%s: no NetworkPolicy selects it" % where_)
        if not any(o["spec"]["scaleTargetRef"].get("kind") == "Deployment" and
                   o["spec"]["scaleTargetRef"].get("name") == name
                   for _, o in by_kind.get("HorizontalPodAutoscaler", [])):
            out.append("%s: no HorizontalPodAutoscaler scales it" % where_)
    return out


def load(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(glob.glob(os.path.join(p, "*.yaml")))
        else:
            files.append(p)
    objs = []
    for f in files:
        with open(f) as fh:
            for o in yaml.safe_load_all(fh):
                if o is not None:
                    objs.append((os.path.relpath(f), o))
    return objs


def validate(schemas, objs):
    out = []
    for f, o in objs:
        what = "%s: %s %s" % (f, o.get("kind", "?") if isinstance(o, dict) else "?",
                              (o.get("metadata") or {}).get("name", "?") if isinstance(o, dict) else "?")
        out.extend("%s: %s" % (what, e) for e in schema_errors(schemas, o))
    if not out:   # the rules read fields the schemas made sure of
        out = rule_errors(objs)
    return out


# ---- self-test: each broken copy of the manifests is refused for its reason ---------

def self_test(schemas, objs):
    def first(kind):
        return next(i for i, (_, o) in enumerate(objs) if o.get("kind") == kind)

    def container(o):
        return o["spec"]["template"]["spec"]["containers"][0]

    d, s, h = first("Deployment"), first("Service"), first("HorizontalPodAutoscaler")
    cases = [
        ("unknown field in a container", d, lambda o: container(o).update(imagePullPolicyy="Never"),
         "'imagePullPolicyy' was unexpected"),
        ("unknown top-level field", s, lambda o: o.update(extra=1), "'extra' was unexpected"),
        ("wrong type", d, lambda o: o["spec"].update(replicas="two"), "is not of type 'integer'"),
        ("int-or-string port", s, lambda o: o["spec"]["ports"][0].update(targetPort=[1]), "targetPort"),
        ("missing required", d, lambda o: o["spec"].pop("selector"), "'selector' is a required property"),
        ("unknown kind", s, lambda o: o.update(apiVersion="v2"), "not a kind the schemas hold"),
        ("HPA scaleTargetRef without name", h, lambda o: o["spec"]["scaleTargetRef"].pop("name"),
         "'name' is a required property"),
        ("no startup probe", d, lambda o: container(o).pop("startupProbe"), "no startupProbe"),
        ("root filesystem writable", d, lambda o: container(o)["securityContext"].update(readOnlyRootFilesystem=False),
         "readOnlyRootFilesystem must be true"),
        ("capabilities kept", d, lambda o: container(o)["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
         "drop must hold ALL"),
        ("no seccomp", d, lambda o: o["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"),
         "RuntimeDefault"),
        ("no HPA", h, lambda o: o["spec"]["scaleTargetRef"].update(name="nothing"), "no HorizontalPodAutoscaler"),
    ]
    bad = 0
    if validate(schemas, objs):
        print("self-test: the manifests themselves do not validate")
        return 1
    for what, i, mutate, expect in cases:
        broken = copy.deepcopy(objs)
        mutate(broken[i][1])
        errs = validate(schemas, broken)
        ok = any(expect in e for e in errs)
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, "" if ok else ": got %s" % (errs or "no error")))
        bad += not ok
    return 1 if bad else 0


def main(argv):
    args, schemas_path, test = [], DEFAULT_SCHEMAS[-1] if DEFAULT_SCHEMAS else None, False
    it = iter(argv)
    for a in it:
        if a == "--schemas":
            schemas_path = next(it)
        elif a == "--self-test":
            test = True
        else:
            args.append(a)
    if not schemas_path:
        sys.exit("validate.py: no schemas (schemas/kubernetes-*.json)")
    schemas = Schemas(schemas_path)
    objs = load(args or [HERE])
    if not objs:
        sys.exit("validate.py: no manifests")
    if test:
        return self_test(schemas, objs)
    errs = validate(schemas, objs)
    for e in errs:
        print(e)
    if not errs:
        print("validate.py: %d objects valid (%s)" % (len(objs), schemas.source))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
