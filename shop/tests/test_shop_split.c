/*
 * test_shop_split.c - the roles in two processes' worth of shop_apps (one
 * with payments, one with the rest), their events through a real
 * nats-server's JetStream (events.nats) instead of the in-process bus:
 * the saga crosses between them; with payments stopped, orders are still
 * taken, and once payments is back (on a new port, the same data) the
 * stream hands it what it missed and every order is paid, once.  A NATS
 * server that falls silent (SIGSTOP: its TCP connections stay up, as
 * through a network cut) is left after events.ping_interval's pings go
 * unanswered, and the connection made again once it answers.
 */
#include "shop_fixture.h"

#include <signal.h>

#include "common/app.h"
#include "nats_server.h"

#define ORDER(s) SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_##s
#define PAYMENTS (1u << SHOP_PAYMENTS)

static int body(void *arg)
{
    (void)arg;
    nats_server ns = {0};
    nats_server_start(&ns);
    char nats[64], pay_dir[256], rest_dir[256], pay_addr[80];
    snprintf(nats, sizeof nats, "--events.nats=nats://%s", ns.addr);
    shop_fx_mkdir(pay_dir, sizeof pay_dir);
    shop_fx_mkdir(rest_dir, sizeof rest_dir);

    shop_fx pay, rest;
    shop_fx_start_roles(&pay, pay_dir, PAYMENTS, nats, NULL);
    snprintf(pay_addr, sizeof pay_addr, "--payments.addr=%s", shop_app_addr(pay.app, SHOP_PAYMENTS));
    shop_fx_start_roles(&rest, rest_dir, SHOP_SERVICES & ~PAYMENTS, nats, pay_addr, "--events.ping_interval=100ms",
                        NULL);

    /* across the two buses' JetStream */
    Shop__Orders__V1__Order *o;
    CHECK_EQ(shop_fx_order(&rest, "u-split", "mug", 1, NULL, &o), 0);
    char first[64];
    snprintf(first, sizeof first, "%s", o->id);
    FREE_MSG(o);
    CHECK_EQ(shop_fx_settled(&rest, first), ORDER(PAID));

    /* the server silent for longer than two pings: the orders' side
     * takes its connection for dead and makes it again, and the saga
     * goes on over the new one */
    struct tern_nats_stats st;
    CHECK_EQ(tern_nats_stats(rest.app->nats, &st), 0);
    uint64_t reconnects = st.reconnects;
    CHECK_EQ(kill(ns.pid, SIGSTOP), 0);
    tern_sleep(600 * TERN_MS);
    CHECK_EQ(kill(ns.pid, SIGCONT), 0);
    for (int i = 0; i < 300 && st.reconnects == reconnects; i++) {
        tern_sleep(10 * TERN_MS);
        CHECK_EQ(tern_nats_stats(rest.app->nats, &st), 0);
    }
    CHECK(st.reconnects > reconnects);
    CHECK_EQ(shop_fx_order(&rest, "u-split", "mug", 1, NULL, &o), 0);
    snprintf(first, sizeof first, "%s", o->id);
    FREE_MSG(o);
    CHECK_EQ(shop_fx_settled(&rest, first), ORDER(PAID));

    /* payments down: orders are still taken, and wait */
    shop_fx_stop(&pay);
    char ids[5][64];
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(shop_fx_order(&rest, "u-split", "mug", 1, NULL, &o), 0);
        CHECK_EQ(o->status, ORDER(AWAITING_PAYMENT));
        snprintf(ids[i], sizeof ids[i], "%s", o->id);
        FREE_MSG(o);
    }
    tern_sleep(200 * TERN_MS);
    o = shop_fx_get_order(&rest, ids[0]);
    CHECK_EQ(o->status, ORDER(AWAITING_PAYMENT));
    FREE_MSG(o);

    /* payments back: what it missed is delivered, each order paid once */
    shop_fx_start_roles(&pay, pay_dir, PAYMENTS, nats, NULL);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(shop_fx_settled(&rest, ids[i]), ORDER(PAID));
    Shop__Inventory__V1__Stock *s = shop_fx_stock(&rest, "mug");
    CHECK_EQ(s->sold, 7);
    CHECK_EQ(s->reserved, 0);
    CHECK_EQ(s->available, 93);
    FREE_MSG(s);

    shop_fx_stop(&rest);
    shop_fx_stop(&pay);
    nats_server_stop(&ns);
    shop_fx_rmdir(pay_dir);
    shop_fx_rmdir(rest_dir);
    return 0;
}

static void saga_across_processes_over_jetstream_survives_payments_down(void)
{
    run_ok(body, NULL, 2);
}

TESTS(T(saga_across_processes_over_jetstream_survives_payments_down))
