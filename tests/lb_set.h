/*
 * lb_set.h - a balancer's endpoint set as text, for the discovery tests:
 * "addr/weight addr/weight ..." in the balancer's order, and a wait for it
 * to become a given one.
 */
#ifndef TERN_TEST_LB_SET_H
#define TERN_TEST_LB_SET_H

#include <stdio.h>
#include <string.h>

#include <tern/discovery.h>
#include <tern/runtime.h>

/* The balancer's set as "addr/weight addr/weight ...". */
static void set_of(tern_balancer *b, char *out, size_t size)
{
    tern_lb_endpoint_stats es[16];
    size_t n = tern_balancer_endpoint_stats(b, es, 16);
    out[0] = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s/%u", i ? " " : "", es[i].addr, es[i].weight);
    }
}

/* Wait up to 5 s for the balancer's set to read want. */
static bool becomes(tern_balancer *b, const char *want)
{
    char got[512];
    for (int k = 0; k < 500; k++) {
        set_of(b, got, sizeof got);
        if (!strcmp(got, want))
            return true;
        tern_sleep(10 * TERN_MS);
    }
    fprintf(stderr, "set is \"%s\", want \"%s\"\n", got, want);
    return false;
}

#endif
