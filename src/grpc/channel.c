/*
 * channel.c - tern_grpc_channel: a target resolved into addresses, one
 * subchannel per address (its state and its connection), and the pick of
 * a connection for each call (pick_first, round_robin or p2c), with gRPC's
 * connection backoff (doc/connection-backoff.md in grpc/grpc: 1 s, x1.6,
 * jitter 0.2, at most 120 s, an attempt bounded by max(20 s, backoff)).
 *
 * Subchannel states, as gRPC's connectivity states: IDLE (never connected,
 * or its connection went away), CONNECTING, READY, FAILURE (TRANSIENT_
 * FAILURE: not before next_attempt).  There is no background connector: a
 * call that needs a connection and finds a subchannel it may try dials it
 * itself (others wait on the channel's cond), so an idle channel costs
 * nothing.  A call without wait_for_ready fails with UNAVAILABLE when
 * every subchannel is in FAILURE; one with it waits for the next attempt.
 *
 * With a picker (channel_picker.c) the subchannels stay here and the
 * choice among them is the picker's.
 *
 * Resolvers: dns (getaddrinfo on the blocking pool, once, at channel_new),
 * ipv4/ipv6 lists and unix paths are built in; anything else plugs in
 * through tern_grpc_resolver and tern_grpc_channel_update.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "base/check.h"
#include "base/rand.h"
#include "grpc/grpc_internal.h"
#include "tern/runtime.h"

#define DEFAULT_BACKOFF_BASE (1000000000LL)
#define DEFAULT_BACKOFF_MAX (120 * 1000000000LL)
#define DEFAULT_MIN_CONNECT (20 * 1000000000LL)
#define DEFAULT_KEEPALIVE_TIMEOUT (20 * 1000000000LL)
#define BACKOFF_MULTIPLIER 1.6
#define BACKOFF_JITTER 0.2

static subch *subch_new(tern_grpc_channel *ch, const char *addr)
{
    subch *sc = calloc(1, sizeof *sc);
    if (!sc)
        return NULL;
    sc->addr = strdup(addr);
    if (!sc->addr) {
        free(sc);
        return NULL;
    }
    sc->ch = ch;
    sc->state = SC_IDLE;
    sc->backoff = ch->backoff_base;
    return sc;
}

int tern_grpc_channel_update(tern_grpc_channel *ch, const char *const *addrs, size_t n)
{
    return tern_grpc_channel_update_weighted(ch, addrs, NULL, n);
}

int tern_grpc_channel_update_weighted(tern_grpc_channel *ch, const char *const *addrs, const uint32_t *weights,
                                      size_t n)
{
    TERN_CHECK_ARG(ch);
    if (n && !addrs)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!addrs[i] || !*addrs[i])
            return -EINVAL;
    subch **v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    tern_mutex_lock(&ch->mu);
    size_t made = 0;
    /* the picker first: what it refuses (duplicates, say) changes nothing,
     * and under mu no pick sees its new set before the subchannels exist */
    int rc = ch->picker ? ch->picker->update(ch->picker_arg, addrs, weights, n) : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!addrs[i] || !*addrs[i]) {
            rc = -EINVAL;
            break;
        }
        subch *keep = NULL;     /* an address still listed keeps its subchannel */
        for (size_t j = 0; j < ch->nscs && !keep; j++)
            if (ch->scs[j] && !strcmp(ch->scs[j]->addr, addrs[i])) {
                keep = ch->scs[j];
                ch->scs[j] = NULL;
            }
        v[made] = keep ? keep : subch_new(ch, addrs[i]);
        if (!v[made])
            rc = -ENOMEM;
        else
            made++;
    }
    if (rc < 0) {
        /* put the kept ones back; free the new ones */
        for (size_t i = 0; i < made; i++) {
            bool old = false;
            for (size_t j = 0; j < ch->nscs; j++)
                if (!ch->scs[j]) {
                    ch->scs[j] = v[i];
                    old = true;
                    break;
                }
            if (!old) {
                free(v[i]->addr);
                free(v[i]);
            }
        }
        tern_mutex_unlock(&ch->mu);
        free(v);
        return rc;
    }
    /* the rest are retired: their connections close at channel_free, or
     * when they fail */
    size_t nret = 0;
    for (size_t j = 0; j < ch->nscs; j++)
        nret += ch->scs[j] != NULL;
    subch **r = realloc(ch->retired, (ch->nretired + nret + 1) * sizeof *r);
    if (r) {
        ch->retired = r;
        for (size_t j = 0; j < ch->nscs; j++)
            if (ch->scs[j]) {
                ch->scs[j]->retired = true;
                ch->retired[ch->nretired++] = ch->scs[j];
            }
    }
    free(ch->scs);
    ch->scs = v;
    ch->nscs = made;
    tern_cond_broadcast(&ch->cond);
    tern_mutex_unlock(&ch->mu);
    return 0;
}

/* ---- built-in resolvers ------------------------------------------------------- */

typedef struct dns_job {
    char host[256], port[16];
    char **addrs;
    size_t n;
    int rc;
} dns_job;

static int dns_lookup(void *arg)
{
    dns_job *j = arg;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int g = getaddrinfo(j->host, j->port, &hints, &res);
    if (g != 0) {
        j->rc = g == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
        return 0;
    }
    size_t cap = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        cap++;
    j->addrs = calloc(cap ? cap : 1, sizeof *j->addrs);
    for (struct addrinfo *a = res; a && j->addrs; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 24];
        if (a->ai_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, ip, sizeof ip);
            snprintf(buf, sizeof buf, "%s:%s", ip, j->port);
        } else if (a->ai_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, ip, sizeof ip);
            snprintf(buf, sizeof buf, "[%s]:%s", ip, j->port);
        } else {
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < j->n; i++)
            dup |= !strcmp(j->addrs[i], buf);
        if (!dup && (j->addrs[j->n] = strdup(buf)))
            j->n++;
    }
    freeaddrinfo(res);
    j->rc = j->addrs ? 0 : -ENOMEM;
    return 0;
}

/* "host:port" / "[v6]:port" / "host" (port 443, gRPC's default) */
static int split(const char *hp, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    if (hp[0] == '[') {
        const char *e = strchr(hp, ']');
        if (!e || (size_t)(e - hp - 1) >= hcap)
            return -EINVAL;
        snprintf(host, hcap, "%.*s", (int)(e - hp - 1), hp + 1);
        colon = e[1] == ':' ? e + 1 : NULL;
        if (e[1] && !colon)
            return -EINVAL;
    } else {
        colon = strrchr(hp, ':');
        size_t hl = colon ? (size_t)(colon - hp) : strlen(hp);
        if (hl == 0 || hl >= hcap)
            return -EINVAL;
        snprintf(host, hcap, "%.*s", (int)hl, hp);
    }
    snprintf(port, pcap, "%s", colon && colon[1] ? colon + 1 : "443");
    return 0;
}

static int resolve_dns(tern_grpc_channel *ch, const char *hostport)
{
    dns_job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    int rc = split(hostport, j->host, sizeof j->host, j->port, sizeof j->port);
    if (rc == 0)
        rc = tern_blocking(dns_lookup, j);
    if (rc == 0)
        rc = j->rc;
    if (rc == 0)
        rc = tern_grpc_channel_update(ch, (const char *const *)j->addrs, j->n);
    for (size_t i = 0; i < j->n; i++)
        free(j->addrs[i]);
    free(j->addrs);
    free(j);
    return rc;
}

/* "a:1,b:2" -> addresses as they are */
static int resolve_list(tern_grpc_channel *ch, const char *list, const char *prefix)
{
    char *copy = strdup(list);
    if (!copy)
        return -ENOMEM;
    const char *addrs[64];
    char *bufs[64];
    size_t n = 0;
    int rc = 0;
    for (char *save, *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        if (n == 64) {
            rc = -EINVAL;
            break;
        }
        if (asprintf(&bufs[n], "%s%s", prefix, t) < 0) {
            rc = -ENOMEM;
            break;
        }
        addrs[n] = bufs[n];
        n++;
    }
    if (rc == 0 && n == 0)
        rc = -EINVAL;
    if (rc == 0)
        rc = tern_grpc_channel_update(ch, addrs, n);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(copy);
    return rc;
}

/* A resolver's target as the default :authority: the endpoint after
 * "scheme://authority/" when the target has that form (gRPC's naming
 * doc: "etcd:///shop/orders" names "shop/orders"), with what an authority
 * may not hold (RFC 3986: "/", "?", "#", spaces, ...) percent-encoded, so
 * that a key-prefix target does not make a header the server resets the
 * stream for.  malloc'd. */
static char *resolver_authority(const char *target)
{
    const char *p = target, *s = strstr(target, "://");
    if (s && (p = strchr(s + 3, '/')))
        p++;
    else
        p = target;
    static const char ok[] = "-._~!$&'()*+,;=:@[]";
    size_t n = strlen(p);
    char *out = malloc(3 * n + 1), *q = out;
    if (!out)
        return NULL;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(ok, c))
            *q++ = (char)c;
        else
            q += sprintf(q, "%%%02X", c);
    }
    *q = '\0';
    return out;
}

/* The built-in schemes; sets the default authority. */
static int resolve_target(tern_grpc_channel *ch, const char *target, char **authority)
{
    if (!strncmp(target, "dns:", 4)) {
        const char *p = target + 4;
        if (!strncmp(p, "//", 2)) {
            p = strchr(p + 2, '/');     /* dns://[authority]/host:port: the DNS server is ignored */
            if (!p)
                return -EINVAL;
            p++;
        }
        *authority = strdup(p);
        return *authority ? resolve_dns(ch, p) : -ENOMEM;
    }
    if (!strncmp(target, "ipv4:", 5) || !strncmp(target, "ipv6:", 5)) {
        const char *p = target + 5;
        const char *comma = strchr(p, ',');
        *authority = comma ? strndup(p, (size_t)(comma - p)) : strdup(p);
        return *authority ? resolve_list(ch, p, "") : -ENOMEM;
    }
    if (!strncmp(target, "unix-abstract:", 14)) {
        *authority = strdup("localhost");
        char buf[256];
        snprintf(buf, sizeof buf, "unix:@%s", target + 14);
        const char *a = buf;
        return *authority ? tern_grpc_channel_update(ch, &a, 1) : -ENOMEM;
    }
    if (!strncmp(target, "unix:", 5)) {
        const char *p = target + 5;
        if (!strncmp(p, "//", 2))
            p += 2;
        if (!*p)
            return -EINVAL;
        *authority = strdup("localhost");
        char buf[4096];
        snprintf(buf, sizeof buf, "unix:%s", p);
        const char *a = buf;
        return *authority ? tern_grpc_channel_update(ch, &a, 1) : -ENOMEM;
    }
    if (strstr(target, "://"))
        return -EINVAL;         /* a scheme we do not know */
    *authority = strdup(target);
    return *authority ? resolve_dns(ch, target) : -ENOMEM;
}

int tern_grpc_channel_new(const char *target, const tern_grpc_channel_options *o, tern_grpc_channel **out)
{
    static const tern_grpc_channel_options defaults;
    *out = NULL;
    if (!target || !*target)
        return -EINVAL;
    if (!o)
        o = &defaults;
    bool rr = false, p2c = false;
    if (o->picker && (o->lb_policy || !o->picker->update || !o->picker->pick || !o->picker->done))
        return -EINVAL;
    if (o->lb_policy && !strcmp(o->lb_policy, "round_robin"))
        rr = true;
    else if (o->lb_policy && !strcmp(o->lb_policy, "p2c"))
        p2c = true;
    else if (o->lb_policy && strcmp(o->lb_policy, "pick_first") != 0)
        return -EINVAL;
    tern_grpc_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->round_robin = rr;
    ch->p2c = p2c;
    ch->picker = o->picker;
    ch->picker_arg = o->picker_arg;
    ch->tls = o->tls;
    ch->max_recv = o->max_recv_bytes ? o->max_recv_bytes : TERN_GRPC_DEFAULT_MAX_RECV;
    ch->backoff_base = o->backoff_base > 0 ? o->backoff_base : DEFAULT_BACKOFF_BASE;
    ch->backoff_max = o->backoff_max > 0 ? o->backoff_max : DEFAULT_BACKOFF_MAX;
    ch->min_connect = o->min_connect_timeout > 0 ? o->min_connect_timeout : DEFAULT_MIN_CONNECT;
    atomic_init(&ch->keepalive_time, o->keepalive_time > 0 ? o->keepalive_time : 0);
    ch->keepalive_timeout = o->keepalive_timeout > 0 ? o->keepalive_timeout : DEFAULT_KEEPALIVE_TIMEOUT;
    ch->keepalive_without_calls = o->keepalive_without_calls;
    ch->user_agent = strdup(o->user_agent ? o->user_agent : "tern-grpc-c/0.1");
    char *authority = NULL;
    int rc = ch->user_agent ? 0 : -ENOMEM;
    if (rc == 0 && o->n_interceptors) {
        ch->icepts = o->interceptors ? malloc(o->n_interceptors * sizeof *ch->icepts) : NULL;
        rc = !o->interceptors ? -EINVAL : ch->icepts ? 0 : -ENOMEM;
        for (size_t i = 0; rc == 0 && i < o->n_interceptors; i++) {
            if (!o->interceptors[i].fn)
                rc = -EINVAL;
            ch->icepts[i] = o->interceptors[i];
        }
        ch->nicepts = rc == 0 ? o->n_interceptors : 0;
    }
    if (rc == 0 && o->service_config)
        rc = tern__grpc_svc_config_parse(o->service_config, &ch->svc, o->service_config_error,
                                         o->service_config_errlen);
    if (rc == 0 && o->resolver) {
        ch->resolver = o->resolver;
        authority = resolver_authority(target);
        rc = authority ? o->resolver->start(ch, target, o->resolver_arg, &ch->resolver_state) : -ENOMEM;
        if (rc < 0)
            ch->resolver = NULL;
    } else if (rc == 0) {
        rc = resolve_target(ch, target, &authority);
    }
    if (rc == 0 && o->authority) {
        free(authority);
        authority = strdup(o->authority);
        if (!authority)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        ch->authority = authority;
        authority = NULL;
        char host[256], port[16];
        if (split(ch->authority, host, sizeof host, port, sizeof port) < 0)
            snprintf(host, sizeof host, "%s", ch->authority);
        ch->server_name = strdup(host);
        if (!ch->server_name)
            rc = -ENOMEM;
    }
    free(authority);
    if (rc < 0) {
        tern_grpc_channel_free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

static void subch_free(subch *sc)
{
    free(sc->addr);
    free(sc);
}

void tern_grpc_channel_free(tern_grpc_channel *ch)
{
    if (!ch)
        return;
    if (ch->resolver && ch->resolver->stop)
        ch->resolver->stop(ch->resolver_state);
    tern_mutex_lock(&ch->mu);
    ch->closing = true;
    gconn *conns[256];
    size_t nc = 0;
    for (int pass = 0; pass < 2; pass++) {
        subch **v = pass ? ch->retired : ch->scs;
        size_t n = pass ? ch->nretired : ch->nscs;
        for (size_t i = 0; i < n; i++)
            if (v[i]->conn && nc < 256) {
                conns[nc++] = v[i]->conn;
                v[i]->conn = NULL;
                v[i]->state = SC_IDLE;
            }
    }
    tern_mutex_unlock(&ch->mu);
    for (size_t i = 0; i < nc; i++) {
        tern__grpc_conn_kill(conns[i], -ECONNABORTED);
        tern__grpc_conn_unref(conns[i]);        /* the subchannel's */
    }
    tern_waitgroup_wait(&ch->conns, NULL);      /* their readers and writers */
    for (size_t i = 0; i < ch->nscs; i++)
        subch_free(ch->scs[i]);
    for (size_t i = 0; i < ch->nretired; i++)
        subch_free(ch->retired[i]);
    free(ch->scs);
    free(ch->retired);
    free(ch->authority);
    free(ch->server_name);
    free(ch->user_agent);
    free(ch->icepts);
    tern__grpc_svc_config_free(ch->svc);
    free(ch);
}

void tern__grpc_channel_conn_lost(subch *sc, gconn *gc)
{
    tern_grpc_channel *ch = sc->ch;
    tern_mutex_lock(&ch->mu);
    bool mine = sc->conn == gc;
    if (mine) {
        sc->conn = NULL;
        sc->state = SC_IDLE;    /* gRPC: READY -> IDLE when the connection goes */
        tern_cond_broadcast(&ch->cond);
    }
    tern_mutex_unlock(&ch->mu);
    if (mine) {
        tern__grpc_conn_unref(gc);
        if (ch->resolver && ch->resolver->refresh)
            ch->resolver->refresh(ch->resolver_state);
    }
}

static int64_t jittered(int64_t b)
{
    double j = 1.0 + BACKOFF_JITTER * (2.0 * tern__rand01() - 1.0);
    return (int64_t)((double)b * j);
}

int tern__grpc_subch_connect(tern_grpc_channel *ch, subch *sc, tern_ctx *ctx, gconn **out)
{
    sc->state = SC_CONNECTING;
    tern_mutex_unlock(&ch->mu);
    gconn *gc = NULL;
    int rc = tern__grpc_conn_open(sc, ctx, &gc);
    tern_mutex_lock(&ch->mu);
    if (rc == 0 && ch->closing) {
        tern_mutex_unlock(&ch->mu);
        tern__grpc_conn_kill(gc, -ECONNABORTED);
        tern__grpc_conn_unref(gc);
        tern_mutex_lock(&ch->mu);
        rc = -ECONNABORTED;
    }
    if (rc == 0) {
        sc->state = SC_READY;
        sc->conn = gc;          /* the subchannel's ref */
        sc->backoff = ch->backoff_base;
        tern__grpc_conn_ref(gc);
        *out = gc;
    } else if (tern_ctx_err(ctx)) {
        sc->state = SC_IDLE;
        rc = tern_ctx_err(ctx);
    } else {
        sc->state = SC_FAILURE;
        sc->last_err = rc;
        sc->next_attempt = tern_now() + jittered(sc->backoff);
        int64_t nb = (int64_t)((double)sc->backoff * BACKOFF_MULTIPLIER);
        sc->backoff = nb > ch->backoff_max ? ch->backoff_max : nb;
    }
    tern_cond_broadcast(&ch->cond);
    return rc;
}

bool tern__grpc_subch_may_try(const subch *sc, int64_t now)
{
    return sc->state == SC_IDLE || (sc->state == SC_FAILURE && now >= sc->next_attempt);
}

void tern__grpc_subch_drop_unusable(subch *sc)
{
    if (sc->state == SC_READY && !tern__grpc_conn_usable(sc->conn)) {
        gconn *old = sc->conn;      /* GOAWAY: no new calls on it */
        sc->conn = NULL;
        sc->state = SC_IDLE;
        tern__grpc_conn_unref(old);
    }
}

int tern__grpc_channel_pick(tern_grpc_channel *ch, bool wait_for_ready, tern_ctx *ctx, gconn **out, int *why)
{
    tern_mutex_lock(&ch->mu);
    int rc;
    for (;;) {
        if (ch->closing) {
            rc = -ECONNABORTED;
            break;
        }
        size_t n = ch->nscs;
        size_t start = ch->round_robin && n ? atomic_fetch_add(&ch->rr, 1) % n : 0;
        int64_t now = tern_now();
        /* round_robin: the subchannel whose turn it is, connected if need be */
        if (ch->round_robin && n && tern__grpc_subch_may_try(ch->scs[start], now)) {
            rc = tern__grpc_subch_connect(ch, ch->scs[start], ctx, out);
            if (rc == 0 || tern_ctx_err(ctx))
                break;
            continue;
        }
        /* p2c: two random subchannels; one that may be dialled is (so that
         * every address gets connected), else the less loaded ready one */
        if (ch->p2c && n) {
            subch *a = ch->scs[tern__rand64() % n], *b = ch->scs[tern__rand64() % n];
            subch *dial = tern__grpc_subch_may_try(a, now) ? a : tern__grpc_subch_may_try(b, now) ? b : NULL;
            if (dial) {
                rc = tern__grpc_subch_connect(ch, dial, ctx, out);
                if (rc == 0 || tern_ctx_err(ctx))
                    break;
                continue;
            }
            bool ra = a->state == SC_READY && tern__grpc_conn_usable(a->conn);
            bool rb = b->state == SC_READY && tern__grpc_conn_usable(b->conn);
            subch *pick = ra && rb ? (tern__grpc_conn_load(b->conn) < tern__grpc_conn_load(a->conn) ? b : a)
                          : ra ? a : rb ? b : NULL;
            if (pick) {
                tern__grpc_conn_ref(pick->conn);
                *out = pick->conn;
                tern_mutex_unlock(&ch->mu);
                return 0;
            }
        }
        bool connecting = false;
        int64_t earliest = INT64_MAX;
        for (size_t i = 0; i < n; i++) {
            subch *sc = ch->scs[(start + i) % n];
            tern__grpc_subch_drop_unusable(sc);
            if (sc->state == SC_READY) {
                tern__grpc_conn_ref(sc->conn);
                *out = sc->conn;
                tern_mutex_unlock(&ch->mu);
                return 0;
            }
            connecting |= sc->state == SC_CONNECTING;
            if (sc->state == SC_FAILURE && sc->next_attempt < earliest)
                earliest = sc->next_attempt;
        }
        /* pick_first: the first it may try, in order */
        subch *next = NULL;
        for (size_t i = 0; i < n && !next; i++)
            if (tern__grpc_subch_may_try(ch->scs[i], now))
                next = ch->scs[i];
        if (next) {
            rc = tern__grpc_subch_connect(ch, next, ctx, out);
            if (rc == 0 || tern_ctx_err(ctx))
                break;
            continue;
        }
        if (!connecting && !wait_for_ready) {
            /* every address in backoff: UNAVAILABLE now */
            for (size_t i = 0; i < n; i++)
                if (ch->scs[i]->last_err)
                    *why = ch->scs[i]->last_err;
            if (!n)
                *why = -EHOSTUNREACH;
            rc = -EAGAIN;
            break;
        }
        if (connecting || earliest == INT64_MAX) {
            rc = tern_cond_wait(&ch->cond, &ch->mu, ctx);
        } else {
            tern_ctx *w;
            rc = tern_ctx_with_deadline(ctx, earliest, &w);
            if (rc == 0) {
                rc = tern_cond_wait(&ch->cond, &ch->mu, w);
                tern_ctx_free(w);
                if (rc == -ETIMEDOUT && !tern_ctx_err(ctx))
                    rc = 0;     /* the backoff ended: try again */
            }
        }
        if (rc < 0)
            break;
    }
    tern_mutex_unlock(&ch->mu);
    return rc;
}
