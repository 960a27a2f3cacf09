#!/usr/bin/python3
"""image-arch.py - set the architecture an image's configuration names.

    image-arch.py TAG ARCH [VARIANT]        (e.g. tern-shop:arm64 arm64 v8)

The Dockerfile's arm64 build runs on this machine (the cross toolchain in
the build stage), so the engine labels the FROM scratch result with its
own architecture; this rewrites the label through `docker save` and
`docker load` (the legacy builder here has no --platform for the final
stage, and `docker import --platform` is ignored by this engine).  The
layers are untouched: only the configuration and its digest change.
"""
import hashlib
import io
import json
import subprocess
import sys
import tarfile


def main():
    tag, arch = sys.argv[1], sys.argv[2]
    variant = sys.argv[3] if len(sys.argv) > 3 else None
    saved = subprocess.run(["docker", "save", tag], check=True, stdout=subprocess.PIPE).stdout
    src = tarfile.open(fileobj=io.BytesIO(saved))
    manifest = json.load(src.extractfile("manifest.json"))
    assert len(manifest) == 1, "one image per save"
    config = json.load(src.extractfile(manifest[0]["Config"]))
    config["architecture"] = arch
    if variant:
        config["variant"] = variant
    raw = json.dumps(config, separators=(",", ":")).encode()
    name = hashlib.sha256(raw).hexdigest() + ".json"
    manifest[0]["Config"] = name
    manifest[0]["RepoTags"] = [tag]

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        def add(n, data):
            info = tarfile.TarInfo(n)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
        for m in src.getmembers():
            if m.name in ("manifest.json", "repositories") or m.name.endswith(".json") and "/" not in m.name:
                continue
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        add(name, raw)
        add("manifest.json", json.dumps(manifest).encode())
    subprocess.run(["docker", "load", "-q"], input=out.getvalue(), check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
