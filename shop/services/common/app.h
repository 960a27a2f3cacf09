/*
 * app.h - the shop_app itself, for the runner's files (app.c, seed.c).
 * Services see only shop.h.
 */
#ifndef SHOP_APP_H
#define SHOP_APP_H

#include "common/shop.h"

struct shop_app {
    tern_config *cfg;                   /* borrowed */
    shop_app_options opts;
    shop_role roles[SHOP_NROLES];
    bool on[SHOP_NROLES];               /* runs in this process */
    int nroles;
    char addr[SHOP_NROLES][128];        /* where each role is reached */
    tern_events_bus *bus;
    tern_nats *nats;                    /* events.nats: the bus's connection */
    tern_etcd_registration *reg[SHOP_NROLES]; /* etcd: each role's own key, from its start */
    tern_resolver **resolvers;          /* etcd: one per channel (a resolver has one watcher), */
    size_t nresolvers;                  /* freed after the channels */
    tern_ctx *ctx;                      /* cancelled when the app stops */
    tern_group *bg;                     /* the roles' background work, under ctx */
    tern_mutex mu;                      /* guards what follows */
    tern_cond cond;                     /* any of it changed */
    int nstarted;                       /* roles whose start ran */
    bool stopping;                      /* a stop was asked */
    bool ready;                         /* every role started, relays on, seeded */
    bool done;                          /* every service returned */
    int first_err;
};

#endif
