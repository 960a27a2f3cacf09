#!/usr/bin/python3
"""shop_client.py - a gRPC client from outside (python3-grpcio, the
shop's own .proto files compiled by protoc at run time) that checks a
running shop the way a caller sees it; the deployment tests run it from
the host against the shop in a container.

    shop_client.py [--users H:P] [--catalog H:P] [--inventory H:P]
                   [--orders H:P] [--payments H:P] [--seeded-stock] [--reserve] [--order]

Every role given: grpc.health.v1 Check answers SERVING.  catalog: the
seeded products list.  --seeded-stock: inventory holds the seed's stock
(the seed writes stock only where inventory runs in the catalog's
process).  --reserve (orders, inventory): stock added, then an order
placed reserves it (orders calls catalog and inventory).  --order (every
role, one event bus: `shop all`): an order placed with an idempotency key
becomes PAID, and the same key gives back the same order.
Prints one line per check; exit 1 at the first failure.
"""
import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "proto")
ROLES = ["users", "catalog", "inventory", "orders", "payments"]


def compile_protos():
    out = tempfile.mkdtemp(prefix="shop-pb2-")
    protos = [p for p in os.listdir(PROTO) if p.endswith(".proto")]
    subprocess.run(["protoc", "-I", PROTO, "--python_out", out] + protos, check=True)
    sys.path.insert(0, out)
    return {p[:-6]: importlib.import_module(p[:-6] + "_pb2") for p in protos}


def unary(channel, method, req, resp_type, timeout=5):
    call = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=resp_type.FromString)
    return call(req, timeout=timeout)


def health(addr):
    # grpc.health.v1.HealthCheckRequest{service: ""} is empty on the wire;
    # the answer is HealthCheckResponse{status: SERVING (1)}: 08 01
    with grpc.insecure_channel(addr) as ch:
        raw = ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)
    return raw == b"\x08\x01"


def main():
    ap = argparse.ArgumentParser()
    for r in ROLES:
        ap.add_argument("--" + r)
    ap.add_argument("--seeded-stock", action="store_true")
    ap.add_argument("--reserve", action="store_true")
    ap.add_argument("--order", action="store_true")
    a = ap.parse_args()
    pb = compile_protos()

    def check(what, ok, detail=""):
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""))
        if not ok:
            sys.exit(1)

    for r in ROLES:
        if getattr(a, r):
            check("%s health SERVING at %s" % (r, getattr(a, r)), health(getattr(a, r)))
    if a.catalog:
        with grpc.insecure_channel(a.catalog) as ch:
            resp = unary(ch, "/shop.catalog.v1.Catalog/ListProducts",
                         pb["catalog"].ListProductsRequest(page_size=100), pb["catalog"].ListProductsResponse)
        check("catalog lists the seeded products", len(resp.products) >= 10, "%d products" % len(resp.products))
    if a.seeded_stock:
        with grpc.insecure_channel(a.inventory) as ch:
            st = unary(ch, "/shop.inventory.v1.Inventory/GetStock",
                       pb["inventory"].GetStockRequest(product_id="espresso-beans"), pb["inventory"].Stock)
        check("inventory has the seed's stock", st.available + st.reserved + st.sold == 40,
              "available %d reserved %d sold %d" % (st.available, st.reserved, st.sold))
    if a.reserve:
        inv, o = pb["inventory"], pb["orders"]
        with grpc.insecure_channel(a.inventory) as ich, grpc.insecure_channel(a.orders) as och:
            before = unary(ich, "/shop.inventory.v1.Inventory/AddStock",
                           inv.AddStockRequest(product_id="grinder", quantity=3), inv.Stock)
            req = o.CreateOrderRequest(user_id="u-deploy-test", idempotency_key="reserve-%d" % os.getpid(),
                                       items=[o.CreateOrderRequest.Line(product_id="grinder", quantity=2)])
            order = unary(och, "/shop.orders.v1.Orders/CreateOrder", req, o.Order)
            check("an order reserves its stock (orders -> catalog, inventory)",
                  order.status in (o.ORDER_STATUS_AWAITING_PAYMENT, o.ORDER_STATUS_PAID) and
                  order.total_cents > 0, "%s %s, %d cents" % (o.OrderStatus.Name(order.status), order.reason,
                                                            order.total_cents))
            after = unary(ich, "/shop.inventory.v1.Inventory/GetStock",
                          inv.GetStockRequest(product_id="grinder"), inv.Stock)
            check("inventory counts the reservation", after.available == before.available - 2,
                  "available %d -> %d" % (before.available, after.available))
    if a.order:
        o = pb["orders"]
        key = "deploy-test-%d" % os.getpid()
        req = o.CreateOrderRequest(user_id="u-deploy-test", idempotency_key=key,
                                   items=[o.CreateOrderRequest.Line(product_id="mug", quantity=2)])
        with grpc.insecure_channel(a.orders) as ch:
            order = unary(ch, "/shop.orders.v1.Orders/CreateOrder", req, o.Order)
            deadline = time.time() + 15
            while order.status in (o.ORDER_STATUS_PENDING, o.ORDER_STATUS_AWAITING_PAYMENT) and time.time() < deadline:
                time.sleep(0.1)
                order = unary(ch, "/shop.orders.v1.Orders/GetOrder", o.GetOrderRequest(order_id=order.id), o.Order)
            check("an order becomes PAID (the saga across orders, inventory, payments)",
                  order.status == o.ORDER_STATUS_PAID, "%s %s" % (o.OrderStatus.Name(order.status), order.reason))
            again = unary(ch, "/shop.orders.v1.Orders/CreateOrder", req, o.Order)
            check("the same idempotency key gives the same order", again.id == order.id, again.id)


if __name__ == "__main__":
    main()
