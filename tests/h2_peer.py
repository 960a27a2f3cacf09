#!/usr/bin/python3
"""h2_peer.py - a scripted HTTP/2 (h2c, prior knowledge) server for the
tern HTTP/2 client tests (tests/test_http_client_h2.c), on python3-h2.

Prints its port on the first line of stdout, then serves until killed.
Connection-level behaviour comes from the arguments:
  --max-streams N   SETTINGS_MAX_CONCURRENT_STREAMS (default 100)
  --goaway-last N   on the first connection only: from its first request
                    on, answer the streams up to N and ignore the others;
                    300 ms after it send GOAWAY(NO_ERROR, last_stream_id=N)
Paths:
  /hello[?ms=D]     200 "hello <path>" after D ms
  /echo             the request body back; x-method, x-authority and
                    x-trace say what came
  /big/N            N bytes (byte i is i % 251), as flow control allows
  /sent             how many bytes of the last /big are sent so far
  /trailers         "body", then trailers x-checksum: abc, x-count: 2
  /stall            head and "partial", then nothing
  /cut              head and "partial", then the connection is closed
  /garbage          bytes that are no HTTP/2 frame
  /refuse-once      RST_STREAM REFUSED_STREAM the first time, 200 after
  /reset            RST_STREAM INTERNAL_ERROR
  /redirect         302 to /hello?from=redirect
  /sink-noack       a request body never acknowledged (windows stay shut),
                    and no answer
  /conns            how many connections were accepted
gRPC (unary, any request; the answer is an empty message, status OK):
  /grpc.Peer/Ok           answered
  /grpc.Peer/Slow         answered after 100 ms
  /grpc.Peer/RefuseOnce   RST_STREAM REFUSED_STREAM the first time, answered after
  /grpc.Peer/Refuse       always RST_STREAM REFUSED_STREAM
  /grpc.Peer/Count        status FAILED_PRECONDITION, message "refused=N conns=M":
                          streams refused so far, connections accepted
gRPC client streaming (each answered at the end of the request with a
grpc.testing-like Resp whose text is "messages=N bytes=B", what came):
  /grpc.Peer/Gather             answered
  /grpc.Peer/GatherRefuseOnce   the first one refused at its HEADERS
                                (RST_STREAM REFUSED_STREAM), later ones answered
  /grpc.Peer/GatherRefuse       every one refused at its HEADERS
"""
import argparse
import asyncio
import os

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

ap = argparse.ArgumentParser()
ap.add_argument("--max-streams", type=int, default=100)
ap.add_argument("--goaway-last", type=int, default=0)
args = ap.parse_args()

state = {"conns": 0, "big_sent": 0, "refused": False, "goaway_done": False,
         "grpc_refused": 0, "gather_refused": 0}


class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.c = h2.connection.H2Connection(cfg)
        self.c.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: args.max_streams})
        self.bodies = {}
        self.heads = {}
        self.window = asyncio.Event()
        self.reset = set()
        self.goaway_last = None
        self.open = True

    def flush(self):
        data = self.c.data_to_send()
        if data and self.open:
            self.writer.write(data)

    async def run(self):
        state["conns"] += 1
        if args.goaway_last and not state["goaway_done"]:
            state["goaway_done"] = True
            self.goaway_last = args.goaway_last
        self.c.initiate_connection()
        self.flush()
        try:
            while self.open:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    events = self.c.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    break
                for ev in events:
                    self.on_event(ev)
                self.flush()
        except ConnectionError:
            pass
        self.open = False
        self.window.set()
        self.writer.close()

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            path = dict(ev.headers).get(":path")
            if path == "/grpc.Peer/GatherRefuse" or (
                    path == "/grpc.Peer/GatherRefuseOnce" and not state["gather_refused"]):
                # refused before any message of it is read
                state["gather_refused"] += 1
                state["grpc_refused"] += 1
                self.c.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            self.heads[ev.stream_id] = dict(ev.headers)
            self.bodies[ev.stream_id] = bytearray()
            if self.goaway_last is not None:
                # the first request: everything above goaway_last goes
                # unprocessed.  The GOAWAY leaves 300 ms later, so that the
                # client's burst is all on this connection however slowly
                # it is sent (a TSan build sent some after an immediate
                # GOAWAY, straight to a new connection: nothing to retry)
                self.limit = self.goaway_last
                last = self.goaway_last
                self.goaway_last = None

                def goaway():
                    self.flush()
                    frame = hyperframe.frame.GoAwayFrame(
                        stream_id=0, last_stream_id=last, error_code=0)
                    self.writer.write(frame.serialize())
                    self.goaway_sent = True
                asyncio.get_running_loop().call_later(0.3, goaway)
        elif isinstance(ev, h2.events.DataReceived):
            if ev.stream_id in self.bodies:
                self.bodies[ev.stream_id] += ev.data
            if self.heads.get(ev.stream_id, {}).get(":path") != "/sink-noack":
                self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in self.heads:  # not one refused at its HEADERS
                self.dispatch(ev.stream_id)     # also after a RequestReceived with END_STREAM
        elif isinstance(ev, h2.events.WindowUpdated):
            self.window.set()
        elif isinstance(ev, h2.events.StreamReset):
            self.reset.add(ev.stream_id)
            self.window.set()

    def dispatch(self, sid):
        if hasattr(self, "limit") and sid > self.limit:
            return                      # unprocessed, as the GOAWAY said
        asyncio.ensure_future(self.respond(sid))

    async def send_body(self, sid, data, end=True):
        view = memoryview(bytes(data))
        while len(view) and self.open and sid not in self.reset:
            w = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size, len(view))
            if w <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            self.c.send_data(sid, view[:w].tobytes())
            view = view[w:]
            if sid == self.big_sid:
                state["big_sent"] += w
            self.flush()
            await asyncio.sleep(0)
        if end and self.open and sid not in self.reset:
            self.c.end_stream(sid)
            self.flush()

    big_sid = None

    def head(self, sid, status=200, extra=()):
        self.c.send_headers(sid, [(":status", str(status))] + list(extra))
        self.flush()

    async def respond(self, sid):
        h = self.heads.pop(sid)
        body = bytes(self.bodies.pop(sid))
        path = h[":path"]
        route = path.split("?")[0]
        try:
            await self.route(sid, h, route, path, body)
        except h2.exceptions.StreamClosedError:
            pass
        if hasattr(self, "limit") and not self.heads and not any(
                s <= self.limit for s in self.c.streams if self.c.streams[s].open):
            await asyncio.sleep(0.05)
            self.open = False
            self.writer.close()

    async def route(self, sid, h, route, path, body):
        if route == "/hello":
            query = dict(kv.split("=", 1) for kv in path.partition("?")[2].split("&") if "=" in kv)
            if "ms" in query:
                await asyncio.sleep(int(query["ms"]) / 1000)
            self.head(sid, extra=[("content-type", "text/plain")])
            await self.send_body(sid, ("hello " + path).encode())
        elif route == "/echo":
            self.head(sid, extra=[("content-length", str(len(body))),
                                  ("x-method", h[":method"]),
                                  ("x-authority", h.get(":authority", "")),
                                  ("x-trace", h.get("x-trace", "-"))])
            await self.send_body(sid, body)
        elif route.startswith("/big/"):
            n = int(route[5:])
            self.big_sid = sid
            state["big_sent"] = 0
            self.head(sid, extra=[("content-length", str(n))])
            await self.send_body(sid, bytes(i % 251 for i in range(n)))
        elif route == "/sent":
            self.head(sid)
            await self.send_body(sid, str(state["big_sent"]).encode())
        elif route == "/conns":
            self.head(sid)
            await self.send_body(sid, str(state["conns"]).encode())
        elif route == "/trailers":
            self.head(sid)
            await self.send_body(sid, b"body", end=False)
            self.c.send_headers(sid, [("x-checksum", "abc"), ("x-count", "2")], end_stream=True)
            self.flush()
        elif route == "/stall":
            self.head(sid)
            await self.send_body(sid, b"partial", end=False)
        elif route == "/cut":
            self.head(sid)
            await self.send_body(sid, b"partial", end=False)
            await asyncio.sleep(0.05)
            self.open = False
            self.writer.close()
        elif route == "/garbage":
            self.open = False
            self.writer.write(b"HTTP/1.1 200 OK\r\n\r\nthis is not a frame" * 4)
            await self.writer.drain()
            await asyncio.sleep(0.2)
            self.writer.close()
        elif route == "/refuse-once":
            if not state["refused"]:
                state["refused"] = True
                self.c.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                self.flush()
            else:
                self.head(sid)
                await self.send_body(sid, b"second time")
        elif route.startswith("/grpc.Peer/Gather"):
            await self.gather(sid, body)
        elif route.startswith("/grpc.Peer/"):
            await self.grpc(sid, route[len("/grpc.Peer/"):])
        elif route == "/redirect":
            self.head(sid, 302, extra=[("location", "/hello?from=redirect")])
            await self.send_body(sid, b"moved")
        elif route == "/reset":
            self.c.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            self.flush()
        else:
            self.head(sid, 404)
            await self.send_body(sid, b"")

    async def gather(self, sid, body):
        n, at = 0, 0
        while at + 5 <= len(body):
            at += 5 + int.from_bytes(body[at + 1:at + 5], "big")
            n += 1
        text = ("messages=%d bytes=%d" % (n, len(body))).encode()
        msg = b"\x0a" + bytes([len(text)]) + text         # Resp.text, field 1
        self.c.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        self.c.send_data(sid, b"\x00" + len(msg).to_bytes(4, "big") + msg)
        self.c.send_headers(sid, [("grpc-status", "0")], end_stream=True)
        self.flush()

    async def grpc(self, sid, method):
        if method == "Refuse" or (method == "RefuseOnce" and not state["grpc_refused"]):
            state["grpc_refused"] += 1
            self.c.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            self.flush()
        elif method == "Count":
            self.c.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                                      ("grpc-status", "9"),
                                      ("grpc-message", "refused=%d conns=%d" % (
                                          state["grpc_refused"], state["conns"]))],
                                end_stream=True)
            self.flush()
        else:
            if method == "Slow":
                await asyncio.sleep(0.1)
            self.c.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
            self.c.send_data(sid, b"\x00\x00\x00\x00\x00")
            self.c.send_headers(sid, [("grpc-status", "0")], end_stream=True)
            self.flush()


async def orphaned(parent):
    # the test died without stopping us: go too
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    os._exit(1)


async def main():
    async def handle(reader, writer):
        await Conn(reader, writer).run()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    asyncio.ensure_future(orphaned(os.getppid()))
    async with server:
        await server.serve_forever()


asyncio.run(main())
