#!/usr/bin/python3
"""gRPC interop between tern and grpcio, both ways (test grpc_interop_h2c / _tls).

  grpc_interop.py PY_DIR INTEROP_SERVER INTEROP_CLIENT h2c|tls

1. tern's examples/grpc-interop/interop_server against grpcio clients: every case
   of gRPC's interop-test-descriptions.md that needs no cloud credentials, then the
   standard services it carries: grpc.health.v1.Health and server reflection
   (v1alpha and v1), checked with stubs generated from their .proto files.
2. tern's interop_client against a grpcio TestService server (below): the same
   cases, run by the C client.

PY_DIR holds the Python messages and stubs protoc made at build time (the
interop, health and reflection protos).  Their modules live under grpc/..., the
name of grpcio's own package: the folder is appended to grpc.__path__ so that
grpc.testing, grpc.health.v1 and grpc.reflection.* import from it.

What grpcio cannot do is left out and said so: a Python client cannot compress
one message of a stream and not the next; a Python server cannot see whether a
request arrived compressed, so the C client skips the feature probes against it
(--server_checks_compression=false), as gRPC's own interop matrix skips the
compression cases for Python.  Neither client sees a response's compressed flag
(grpcio's does not expose it, nor does tern's channel): the server_compressed
cases check the payloads, the servers compress as asked (tern's server per
message, the grpcio server through disable_next_message_compression).

TLS: a CA and a server certificate (localhost, 127.0.0.1) made with the openssl
command into a temporary folder, none checked in.
Needs Debian's python3-grpcio and python3-protobuf: run with /usr/bin/python3.
"""
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

PY_DIR, SERVER_BIN, CLIENT_BIN, MODE = sys.argv[1:5]

import grpc  # noqa: E402

grpc.__path__.append(os.path.join(PY_DIR, "grpc"))
sys.path.insert(0, PY_DIR)
from google.protobuf import descriptor_pb2, descriptor_pool  # noqa: E402
from grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc.reflection.v1 import reflection_pb2 as refl_v1  # noqa: E402
from grpc.reflection.v1 import reflection_pb2_grpc as refl_v1_grpc  # noqa: E402
from grpc.reflection.v1alpha import reflection_pb2 as refl_v1a  # noqa: E402
from grpc.reflection.v1alpha import reflection_pb2_grpc as refl_v1a_grpc  # noqa: E402
from grpc.testing import empty_pb2, messages_pb2 as m, test_pb2_grpc  # noqa: E402

TLS = MODE == "tls"
CASES = 18          # the interop cases each client runs
TIMEOUT = 20
SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
results = []


def record(direction, case, fn):
    try:
        fn()
        results.append((direction, case, True, ""))
    except Exception as e:  # noqa: BLE001 - every failure is reported, then the next case
        results.append((direction, case, False, "%s: %s" % (type(e).__name__, e)))


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def zeros(n):
    return m.Payload(body=bytes(n))


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    except grpc.FutureCancelledError:
        return grpc.StatusCode.CANCELLED, None
    return grpc.StatusCode.OK, None


# ---- certificates -------------------------------------------------------------

def make_certs(d):
    def run(*args):
        subprocess.run(args, check=True, capture_output=True)
    ca_key, ca, key, csr, cert = (os.path.join(d, n) for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=tern interop test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


# ---- 1. grpcio clients against tern's server ------------------------------------

def channel(port, ca):
    target = "127.0.0.1:%d" % port
    if not TLS:
        return grpc.insecure_channel(target)
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", "localhost")])


def python_client_cases(stub, unimpl):
    def empty_unary():
        expect(stub.EmptyCall(empty_pb2.Empty(), timeout=TIMEOUT) == empty_pb2.Empty(), "non-empty reply")

    def large_unary():
        r = stub.UnaryCall(m.SimpleRequest(response_size=314159, payload=zeros(271828)), timeout=TIMEOUT)
        expect(r.payload.body == bytes(314159), "payload of %d bytes" % len(r.payload.body))

    def client_compressed_unary():
        probe = m.SimpleRequest(expect_compressed=m.BoolValue(value=True), response_size=314159,
                                payload=zeros(271828))
        code, _ = code_of(lambda: stub.UnaryCall(probe, timeout=TIMEOUT))
        expect(code == grpc.StatusCode.INVALID_ARGUMENT, "probe: %s" % code)
        r = stub.UnaryCall(probe, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
        expect(len(r.payload.body) == 314159, "compressed: payload")
        plain = m.SimpleRequest(expect_compressed=m.BoolValue(value=False), response_size=314159,
                                payload=zeros(271828))
        r = stub.UnaryCall(plain, timeout=TIMEOUT)
        expect(len(r.payload.body) == 314159, "uncompressed: payload")

    def server_compressed_unary():
        for on in (True, False):
            r = stub.UnaryCall(m.SimpleRequest(response_compressed=m.BoolValue(value=on), response_size=314159,
                                               payload=zeros(271828)), timeout=TIMEOUT)
            expect(r.payload.body == bytes(314159), "response_compressed=%s: payload" % on)

    def client_streaming():
        reqs = [m.StreamingInputCallRequest(payload=zeros(n)) for n in (27182, 8, 1828, 45904)]
        r = stub.StreamingInputCall(iter(reqs), timeout=TIMEOUT)
        expect(r.aggregated_payload_size == 74922, "aggregated %d" % r.aggregated_payload_size)

    def client_compressed_streaming():
        probe = m.StreamingInputCallRequest(expect_compressed=m.BoolValue(value=True), payload=zeros(27182))
        code, _ = code_of(lambda: stub.StreamingInputCall(iter([probe]), timeout=TIMEOUT))
        expect(code == grpc.StatusCode.INVALID_ARGUMENT, "probe: %s" % code)
        # grpcio compresses a whole call: the second message is compressed too
        # (expect_compressed false asks nothing of it)
        reqs = [probe, m.StreamingInputCallRequest(expect_compressed=m.BoolValue(value=False),
                                                   payload=zeros(45904))]
        r = stub.StreamingInputCall(iter(reqs), timeout=TIMEOUT, compression=grpc.Compression.Gzip)
        expect(r.aggregated_payload_size == 73086, "aggregated %d" % r.aggregated_payload_size)

    def output(sizes, compressed=None):
        params = [m.ResponseParameters(size=n) for n in sizes]
        if compressed:
            for p, c in zip(params, compressed):
                p.compressed.value = c
        got = [len(r.payload.body) for r in
               stub.StreamingOutputCall(m.StreamingOutputCallRequest(response_parameters=params), timeout=TIMEOUT)]
        expect(got == list(sizes), "sizes %s" % got)

    def ping_pong():
        q = queue.Queue()

        def reqs():
            while True:
                r = q.get()
                if r is None:
                    return
                yield r
        call = stub.FullDuplexCall(reqs(), timeout=TIMEOUT)
        for resp_size, req_size in ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904)):
            q.put(m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=resp_size)],
                                               payload=zeros(req_size)))
            r = next(call)
            expect(len(r.payload.body) == resp_size, "a response of %d bytes" % len(r.payload.body))
        q.put(None)
        expect(list(call) == [], "more responses after the half-close")

    def empty_stream():
        expect(list(stub.FullDuplexCall(iter([]), timeout=TIMEOUT)) == [], "responses to no request")

    def custom_metadata():
        md = (("x-grpc-test-echo-initial", "test_initial_metadata_value"),
              ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"))
        r, call = stub.UnaryCall.with_call(m.SimpleRequest(response_size=314159, payload=zeros(271828)),
                                           metadata=md, timeout=TIMEOUT)
        expect(("x-grpc-test-echo-initial", "test_initial_metadata_value") in call.initial_metadata(),
               "unary initial %s" % (call.initial_metadata(),))
        expect(("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in call.trailing_metadata(),
               "unary trailing %s" % (call.trailing_metadata(),))
        call = stub.FullDuplexCall(iter([m.StreamingOutputCallRequest(
            response_parameters=[m.ResponseParameters(size=314159)], payload=zeros(271828))]),
            metadata=md, timeout=TIMEOUT)
        got = [len(r.payload.body) for r in call]
        expect(got == [314159], "duplex sizes %s" % got)
        expect(("x-grpc-test-echo-initial", "test_initial_metadata_value") in call.initial_metadata(),
               "duplex initial")
        expect(("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in call.trailing_metadata(), "duplex trailing")

    def status(msg, duplex):
        st = m.EchoStatus(code=2, message=msg)
        code, details = code_of(lambda: stub.UnaryCall(m.SimpleRequest(response_status=st), timeout=TIMEOUT))
        expect(code == grpc.StatusCode.UNKNOWN and details == msg, "unary: %s %r" % (code, details))
        if duplex:
            code, details = code_of(lambda: list(stub.FullDuplexCall(
                iter([m.StreamingOutputCallRequest(response_status=st)]), timeout=TIMEOUT)))
            expect(code == grpc.StatusCode.UNKNOWN and details == msg, "duplex: %s %r" % (code, details))

    def unimplemented_method():
        code, _ = code_of(lambda: stub.UnimplementedCall(empty_pb2.Empty(), timeout=TIMEOUT))
        expect(code == grpc.StatusCode.UNIMPLEMENTED, str(code))

    def unimplemented_service():
        code, _ = code_of(lambda: unimpl.UnimplementedCall(empty_pb2.Empty(), timeout=TIMEOUT))
        expect(code == grpc.StatusCode.UNIMPLEMENTED, str(code))

    def cancel_after_begin():
        gate = threading.Event()

        def reqs():
            gate.wait(TIMEOUT)
            return
            yield
        fut = stub.StreamingInputCall.future(reqs(), timeout=TIMEOUT)
        fut.cancel()
        gate.set()
        code, _ = code_of(fut.result)
        expect(code == grpc.StatusCode.CANCELLED, "%s" % code)

    def cancel_after_first_response():
        q = queue.Queue()

        def reqs():
            while True:
                r = q.get()
                if r is None:
                    return
                yield r
        call = stub.FullDuplexCall(reqs(), timeout=TIMEOUT)
        q.put(m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=31415)],
                                           payload=zeros(27182)))
        next(call)
        call.cancel()
        q.put(None)
        code, _ = code_of(lambda: list(call))
        expect(code == grpc.StatusCode.CANCELLED, str(code))

    def timeout_on_sleeping_server():
        # a request, then the stream held open (an iterator that ends half-closes)
        q = queue.Queue()

        def reqs():
            yield m.StreamingOutputCallRequest(payload=zeros(27182))
            try:
                q.get(timeout=TIMEOUT)
            except queue.Empty:
                pass
        call = stub.FullDuplexCall(reqs(), timeout=0.001)
        code, _ = code_of(lambda: list(call))
        q.put(None)
        expect(code == grpc.StatusCode.DEADLINE_EXCEEDED, str(code))

    return [
        ("empty_unary", empty_unary), ("large_unary", large_unary),
        ("client_compressed_unary", client_compressed_unary),
        ("server_compressed_unary", server_compressed_unary),
        ("client_streaming", client_streaming), ("client_compressed_streaming", client_compressed_streaming),
        ("server_streaming", lambda: output((31415, 9, 2653, 58979))),
        ("server_compressed_streaming", lambda: output((31415, 92653), (True, False))),
        ("ping_pong", ping_pong), ("empty_stream", empty_stream), ("custom_metadata", custom_metadata),
        ("status_code_and_message", lambda: status("test status message", True)),
        ("special_status_message", lambda: status(SPECIAL, False)),
        ("unimplemented_method", unimplemented_method), ("unimplemented_service", unimplemented_service),
        ("cancel_after_begin", cancel_after_begin), ("cancel_after_first_response", cancel_after_first_response),
        ("timeout_on_sleeping_server", timeout_on_sleeping_server),
    ]


def health_cases(ch):
    stub = health_pb2_grpc.HealthStub(ch)
    S = health_pb2.HealthCheckResponse

    def check():
        for svc in ("", "readiness", "liveness", "grpc.testing.TestService"):
            r = stub.Check(health_pb2.HealthCheckRequest(service=svc), timeout=TIMEOUT)
            expect(r.status == S.SERVING, "%r: %s" % (svc, r.status))
        code, _ = code_of(lambda: stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"),
                                             timeout=TIMEOUT))
        expect(code == grpc.StatusCode.NOT_FOUND, "unknown service: %s" % code)

    def watch():
        call = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        first = next(call)
        call.cancel()
        expect(first.status == S.SERVING, "watch '': %s" % first.status)
        call = stub.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)
        first = next(call)
        call.cancel()
        expect(first.status == S.SERVICE_UNKNOWN, "watch unknown: %s" % first.status)
    return [("health_check", check), ("health_watch", watch)]


def reflection_cases(ch):
    def run(mod, grpc_mod):
        stub = grpc_mod.ServerReflectionStub(ch)

        def ask(**kw):
            resps = list(stub.ServerReflectionInfo(iter([mod.ServerReflectionRequest(host="h", **kw)]),
                                                   timeout=TIMEOUT))
            expect(len(resps) == 1, "%d responses" % len(resps))
            expect(resps[0].valid_host == "h" and resps[0].original_request.host == "h", "request not echoed")
            return resps[0]

        names = {s.name for s in ask(list_services="").list_services_response.service}
        for want in ("grpc.testing.TestService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                     "grpc.reflection.v1alpha.ServerReflection"):
            expect(want in names, "list_services lacks %s: %s" % (want, sorted(names)))

        def files(r):
            expect(r.WhichOneof("message_response") == "file_descriptor_response",
                   "no files: %s" % r.WhichOneof("message_response"))
            out = []
            for raw in r.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto()
                fd.ParseFromString(raw)
                out.append(fd)
            return out

        fds = files(ask(file_containing_symbol="grpc.testing.TestService"))
        expect(fds[0].name == "grpc/testing/test.proto", "first file %s" % fds[0].name)
        expect({f.name for f in fds} == {"grpc/testing/test.proto", "grpc/testing/messages.proto",
                                         "grpc/testing/empty.proto"}, "files %s" % [f.name for f in fds])
        pool = descriptor_pool.DescriptorPool()
        for f in reversed(fds):
            pool.Add(f)
        svc = pool.FindServiceByName("grpc.testing.TestService")
        expect(len(svc.methods) == 8 and svc.methods_by_name["FullDuplexCall"].client_streaming,
               "TestService as described: %d methods" % len(svc.methods))
        for sym, want in (("grpc.testing.TestService.UnaryCall", "grpc/testing/test.proto"),
                          ("grpc.testing.SimpleRequest", "grpc/testing/messages.proto"),
                          ("grpc.testing.SimpleRequest.response_size", "grpc/testing/messages.proto"),
                          ("grpc.testing.LoadBalancerStatsResponse.RpcsByPeer", "grpc/testing/messages.proto"),
                          ("grpc.testing.COMPRESSABLE", "grpc/testing/messages.proto"),
                          ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
                          ("grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto")):
            got = files(ask(file_containing_symbol=sym))[0].name
            expect(got == want, "%s in %s, not %s" % (sym, got, want))
        expect(files(ask(file_by_filename="grpc/testing/empty.proto"))[0].name == "grpc/testing/empty.proto",
               "file_by_filename")
        for kw in ({"file_containing_symbol": "grpc.testing.Nope"}, {"file_by_filename": "nope.proto"},
                   {"file_containing_extension": mod.ExtensionRequest(containing_type="grpc.testing.SimpleRequest",
                                                                      extension_number=100)}):
            r = ask(**kw)
            expect(r.WhichOneof("message_response") == "error_response" and r.error_response.error_code == 5,
                   "%s: %s" % (kw, r))
        r = ask(all_extension_numbers_of_type="grpc.testing.SimpleRequest")
        expect(r.all_extension_numbers_response.base_type_name == "grpc.testing.SimpleRequest"
               and not r.all_extension_numbers_response.extension_number, "extension numbers %s" % r)
        # several questions on one stream
        reqs = [mod.ServerReflectionRequest(list_services=""),
                mod.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health")]
        resps = list(stub.ServerReflectionInfo(iter(reqs), timeout=TIMEOUT))
        expect(len(resps) == 2, "%d answers to two questions" % len(resps))

    return [("reflection_v1alpha", lambda: run(refl_v1a, refl_v1a_grpc)),
            ("reflection_v1", lambda: run(refl_v1, refl_v1_grpc))]


def tern_server(certs):
    args = [SERVER_BIN, "--port=0"]
    if TLS:
        args += ["--use_tls=true", "--tls_cert=" + certs[1], "--tls_key=" + certs[2]]
    wrap = os.environ.get("TERN_TEST_WRAP", "").split()
    p = subprocess.Popen(wrap + args, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        p.kill()
        raise SystemExit("interop_server did not start: %r" % line)
    return p, int(line.split()[2])


def direction_tern_server(certs):
    p, port = tern_server(certs)
    try:
        with channel(port, certs[0]) as ch:
            stub, unimpl = test_pb2_grpc.TestServiceStub(ch), test_pb2_grpc.UnimplementedServiceStub(ch)
            for name, fn in python_client_cases(stub, unimpl) + health_cases(ch) + reflection_cases(ch):
                record("grpcio -> tern", name, fn)
    finally:
        # never leave the server behind: it holds the test's output open
        p.terminate()
        t0 = time.monotonic()
        try:
            rc = p.wait(timeout=30)
            why = "exit status %d after %.1f s" % (rc, time.monotonic() - t0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc, why = -1, "still running 30 s after SIGTERM (killed)"
    record("grpcio -> tern", "server_drains_on_sigterm", lambda: expect(rc == 0, why))


# ---- 2. tern's client against a grpcio server ---------------------------------------

def echo_metadata(context):
    md = dict(context.invocation_metadata())
    if "x-grpc-test-echo-initial" in md:
        context.send_initial_metadata((("x-grpc-test-echo-initial", md["x-grpc-test-echo-initial"]),))
    if "x-grpc-test-echo-trailing-bin" in md:
        context.set_trailing_metadata((("x-grpc-test-echo-trailing-bin", md["x-grpc-test-echo-trailing-bin"]),))


class TestService(test_pb2_grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        return empty_pb2.Empty()

    def UnaryCall(self, req, context):
        echo_metadata(context)
        if req.response_status.code:
            context.abort(grpc.StatusCode(_code(req.response_status.code)), req.response_status.message)
        if req.HasField("response_compressed"):
            context.set_compression(grpc.Compression.Gzip if req.response_compressed.value
                                    else grpc.Compression.NoCompression)
        return m.SimpleResponse(payload=zeros(req.response_size))

    def _respond(self, params, context):
        for p in params:
            if p.interval_us:
                time.sleep(p.interval_us / 1e6)
            if not (p.HasField("compressed") and p.compressed.value):
                context.disable_next_message_compression()
            yield m.StreamingOutputCallResponse(payload=zeros(p.size))

    def StreamingOutputCall(self, req, context):
        echo_metadata(context)
        if any(p.compressed.value for p in req.response_parameters):
            context.set_compression(grpc.Compression.Gzip)
        yield from self._respond(req.response_parameters, context)
        if req.response_status.code:
            context.abort(grpc.StatusCode(_code(req.response_status.code)), req.response_status.message)

    def StreamingInputCall(self, reqs, context):
        echo_metadata(context)
        return m.StreamingInputCallResponse(aggregated_payload_size=sum(len(r.payload.body) for r in reqs))

    def FullDuplexCall(self, reqs, context):
        echo_metadata(context)
        for req in reqs:
            if req.response_status.code:
                context.abort(grpc.StatusCode(_code(req.response_status.code)), req.response_status.message)
            yield from self._respond(req.response_parameters, context)

    def HalfDuplexCall(self, reqs, context):
        echo_metadata(context)
        params = [p for r in reqs for p in r.response_parameters]
        yield from self._respond(params, context)


def _code(n):
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c.value
    return grpc.StatusCode.UNKNOWN.value


def direction_tern_client(certs):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    if TLS:
        with open(certs[2], "rb") as k, open(certs[1], "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    args = [CLIENT_BIN, "--server_host=127.0.0.1", "--server_port=%d" % port, "--test_case=all",
            "--server_checks_compression=false"]
    if TLS:
        args += ["--use_tls=true", "--server_host_override=localhost", "--ca_file=" + certs[0]]
    wrap = os.environ.get("TERN_TEST_WRAP", "").split()
    try:
        out = subprocess.run(wrap + args, capture_output=True, text=True, timeout=240)
    finally:
        server.stop(None)
    seen = 0
    for line in out.stdout.splitlines():
        word, _, rest = line.partition(" ")
        name, _, why = rest.partition(": ")
        if word in ("PASS", "FAIL"):
            seen += 1
            results.append(("tern -> grpcio", name, word == "PASS", why))
    if seen != CASES or out.returncode not in (0, 1):
        results.append(("tern -> grpcio", "interop_client", False,
                        "%d cases of %d, exit %d, stderr: %s" % (seen, CASES, out.returncode, out.stderr[-2000:])))


def main():
    with tempfile.TemporaryDirectory(prefix="tern-interop-") as d:
        certs = make_certs(d) if TLS else (None, None, None)
        direction_tern_server(certs)
        direction_tern_client(certs)
    failed = [r for r in results if not r[2]]
    for direction, case, ok, why in results:
        print("%-4s %-15s %-30s %s" % ("ok" if ok else "FAIL", direction, case, why))
    print("%s: %d checks, %d failed" % (MODE, len(results), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
