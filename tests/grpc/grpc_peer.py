#!/usr/bin/python3
"""grpcio on the other end of tern's gRPC tests (tests/test_grpc_*.c).

  grpc_peer.py client HOST:PORT [CA_FILE]   run the cases against a tern server
                                            (TLS when CA_FILE); exit 0 when all pass
  grpc_peer.py server [CERT KEY]            serve terntest.Test; print the port on
                                            stdout; exit when stdin closes

The service (both sides implement it the same way, see grpc_test.proto):
Unary echoes "hello <name>" and the request's pad, fails with req.code and
req.message when code is set, sleeps sleep_ms first (a name "flaky..." fails
its first count calls with UNAVAILABLE, "slowfirst..." holds its first call
count ms: retries and hedging); metadata whose name starts
with "x-" comes back as headers and, with "-t" inserted, trailers; "x-compress:
gzip" asks for compressed responses.  ServerStream sends count messages
(index 0..), sleeping sleep_ms between them.  ClientStream joins the names with
",".  Bidi answers each request with its name.
Needs Debian's python3-grpcio and python3-protobuf: run with /usr/bin/python3.
"""
import os
import sys
import threading
import time

import grpc

import grpc_test_pb2 as pb

SVC = "/terntest.Test/"


def echo_md(context):
    out_h, out_t = [], []
    for k, v in context.invocation_metadata():
        if k.startswith("x-") and k != "x-compress":
            out_h.append((k, v))
            if k.endswith("-bin"):
                out_t.append((k[:-4] + "-t-bin", v))
            else:
                out_t.append((k + "-t", v))
    if out_h:
        context.send_initial_metadata(out_h)
    if out_t:
        context.set_trailing_metadata(out_t)


def want_gzip(context):
    for k, v in context.invocation_metadata():
        if k == "x-compress" and v == "gzip":
            context.set_compression(grpc.Compression.Gzip)


_calls = {}
_calls_lock = threading.Lock()


def _nth_call(name):
    """How many calls named name this server has seen, this one included."""
    with _calls_lock:
        _calls[name] = _calls.get(name, 0) + 1
        return _calls[name]


def unary(req, context):
    echo_md(context)
    want_gzip(context)
    # retries and hedging (test_grpc_retry): "flaky*" fails its first count calls
    # with UNAVAILABLE; "slowfirst*" holds its first call for count ms
    if req.name.startswith("flaky") and _nth_call(req.name) <= req.count:
        context.abort(grpc.StatusCode.UNAVAILABLE, "flaky")
    if req.name.startswith("slowfirst") and _nth_call(req.name) == 1:
        time.sleep(req.count / 1000)
    if req.sleep_ms:
        time.sleep(req.sleep_ms / 1000)
    if req.code:
        context.abort(grpc.StatusCode(_code(req.code)), req.message)
    if req.name == "timeout?":
        tr = context.time_remaining()
        return pb.Resp(text="none" if tr is None or tr > 1e6 else "%.3f" % tr)
    return pb.Resp(text="hello " + req.name, pad=req.pad)


def _code(n):
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c.value
    raise ValueError(n)


def server_stream(req, context):
    echo_md(context)
    want_gzip(context)
    for i in range(req.count):
        if i and req.sleep_ms:
            time.sleep(req.sleep_ms / 1000)
        yield pb.Resp(text=req.name, index=i)
    if req.code:
        context.abort(grpc.StatusCode(_code(req.code)), req.message)


def client_stream(it, context):
    echo_md(context)
    names = [r.name for r in it]
    return pb.Resp(text=",".join(names), index=len(names))


def bidi(it, context):
    echo_md(context)
    for i, r in enumerate(it):
        if r.code:
            context.abort(grpc.StatusCode(_code(r.code)), r.message)
        yield pb.Resp(text=r.name, index=i)


def serve(argv):
    from concurrent import futures
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    ser, de = pb.Resp.SerializeToString, pb.Req.FromString
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, de, ser),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, de, ser),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, de, ser),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, de, ser),
    }
    s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("terntest.Test", handlers),))
    if len(argv) >= 2:
        with open(argv[0], "rb") as f:
            cert = f.read()
        with open(argv[1], "rb") as f:
            key = f.read()
        port = s.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    print(port, flush=True)
    sys.stdin.read()
    s.stop(0)


failures = []


def case(name):
    def wrap(fn):
        try:
            fn()
            print("ok", name, flush=True)
        except Exception as e:  # noqa: BLE001
            failures.append(name)
            print("FAIL", name, repr(e), flush=True)
        return fn
    return wrap


def expect_code(fn, code, details=None):
    try:
        fn()
    except grpc.RpcError as e:
        assert e.code() == code, (e.code(), e.details())
        if details is not None:
            assert e.details() == details, (e.details(), details)
        return e
    raise AssertionError("no error, expected %s" % code)


def client(argv):
    target = argv[0]
    if len(argv) > 1:
        with open(argv[1], "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        ch = grpc.secure_channel(target, creds, options=(("grpc.ssl_target_name_override", "localhost"),))
    else:
        ch = grpc.insecure_channel(target)
    ser, de = pb.Req.SerializeToString, pb.Resp.FromString
    unary_c = ch.unary_unary(SVC + "Unary", ser, de)
    sstream = ch.unary_stream(SVC + "ServerStream", ser, de)
    cstream = ch.stream_unary(SVC + "ClientStream", ser, de)
    bidi_c = ch.stream_stream(SVC + "Bidi", ser, de)

    @case("unary")
    def _():
        r = unary_c(pb.Req(name="grpcio"), timeout=5)
        assert r.text == "hello grpcio", r

    @case("metadata_both_ways")
    def _():
        r, call = unary_c.with_call(pb.Req(name="md"), timeout=5,
                                    metadata=(("x-ascii", "v 1"), ("x-raw-bin", b"\x00\x01\xfe\xff")))
        assert r.text == "hello md"
        h = dict(call.initial_metadata())
        t = dict(call.trailing_metadata())
        assert h.get("x-ascii") == "v 1", h
        assert h.get("x-raw-bin") == b"\x00\x01\xfe\xff", h
        assert t.get("x-ascii-t") == "v 1", t
        assert t.get("x-raw-t-bin") == b"\x00\x01\xfe\xff", t

    @case("status_unicode_percent")
    def _():
        msg = "nicht gefunden: 100% \u65e5\u672c \u00fc\n"
        expect_code(lambda: unary_c(pb.Req(code=5, message=msg), timeout=5), grpc.StatusCode.NOT_FOUND, msg)

    @case("handler_errno_status")
    def _():
        expect_code(lambda: unary_c(pb.Req(name="errno"), timeout=5), grpc.StatusCode.PERMISSION_DENIED)

    @case("deadline_exceeded")
    def _():
        t0 = time.monotonic()
        expect_code(lambda: unary_c(pb.Req(sleep_ms=3000), timeout=0.3), grpc.StatusCode.DEADLINE_EXCEEDED)
        assert time.monotonic() - t0 < 2.5

    @case("server_sees_deadline")
    def _():
        r = unary_c(pb.Req(name="timeout?"), timeout=4)
        assert 0 < float(r.text) <= 4.1, r.text

    @case("server_streaming")
    def _():
        got = [(m.text, m.index) for m in sstream(pb.Req(name="s", count=5), timeout=5)]
        assert got == [("s", i) for i in range(5)], got

    @case("server_streaming_status_after_messages")
    def _():
        it = sstream(pb.Req(name="s", count=2, code=9, message="late"), timeout=5)
        got = []
        def drain():
            for m in it:
                got.append(m.index)
        expect_code(drain, grpc.StatusCode.FAILED_PRECONDITION, "late")
        assert got == [0, 1], got

    @case("client_streaming")
    def _():
        r = cstream(iter([pb.Req(name=n) for n in "abc"]), timeout=5)
        assert (r.text, r.index) == ("a,b,c", 3), r

    @case("client_streaming_empty")
    def _():
        r = cstream(iter([]), timeout=5)
        assert (r.text, r.index) == ("", 0), r

    @case("bidi_ping_pong")
    def _():
        import queue
        q = queue.Queue()
        def gen():
            for i in range(4):
                yield pb.Req(name="p%d" % i)
                q.get(timeout=5)     # the answer came: ping-pong, not a batch
        responses = bidi_c(gen(), timeout=5)
        n = 0
        for r in responses:
            assert r.text == "p%d" % n and r.index == n, r
            n += 1
            q.put(1)
        assert n == 4

    @case("cancel_after_first_response")
    def _():
        it = sstream(pb.Req(name="c", count=1000, sleep_ms=20), timeout=5)
        next(it)
        it.cancel()
        expect_code(lambda: next(it), grpc.StatusCode.CANCELLED)

    @case("unimplemented_method")
    def _():
        f = ch.unary_unary(SVC + "Nope", ser, de)
        expect_code(lambda: f(pb.Req(), timeout=5), grpc.StatusCode.UNIMPLEMENTED)

    @case("unimplemented_service")
    def _():
        f = ch.unary_unary("/no.Such/Thing", ser, de)
        expect_code(lambda: f(pb.Req(), timeout=5), grpc.StatusCode.UNIMPLEMENTED)

    @case("compressed_request")
    def _():
        r = unary_c(pb.Req(name="z" * 1000), timeout=5, compression=grpc.Compression.Gzip)
        assert r.text == "hello " + "z" * 1000

    @case("compressed_response")
    def _():
        r = unary_c(pb.Req(name="gz", pad=b"a" * 10000), timeout=5, metadata=(("x-compress", "gzip"),))
        assert r.text == "hello gz" and r.pad == b"a" * 10000

    @case("compressed_stream_both_ways")
    def _():
        got = [m.index for m in sstream(pb.Req(name="s", count=3), timeout=5,
                                        compression=grpc.Compression.Gzip, metadata=(("x-compress", "gzip"),))]
        assert got == [0, 1, 2], got

    @case("receive_limit")
    def _():
        expect_code(lambda: unary_c(pb.Req(pad=b"x" * (4 * 1024 * 1024 + 10)), timeout=5),
                    grpc.StatusCode.RESOURCE_EXHAUSTED)
        r = unary_c(pb.Req(name="after"), timeout=5)      # the connection goes on
        assert r.text == "hello after"

    @case("large_message")
    def _():
        r = unary_c(pb.Req(name="big", pad=b"y" * (1024 * 1024)), timeout=5)
        assert len(r.pad) == 1024 * 1024

    ch.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if sys.argv[1] == "server":
        serve(sys.argv[2:])
    else:
        sys.exit(client(sys.argv[2:]))
