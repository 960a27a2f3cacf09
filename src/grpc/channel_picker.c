/*
 * channel_picker.c - a channel whose calls a picker places
 * (tern_grpc_channel_options.picker): another layer's balancer names the
 * address, the channel supplies the connection.
 *
 * The channel stays the keeper of subchannels (one per address, its
 * connection, gRPC's backoff); the picker only chooses among the
 * addresses the channel handed it.  Both happen under the channel's mu
 * (update in tern_grpc_channel_update_weighted, pick here), so a pick
 * names a subchannel the channel has; one it does not know (a picker fed
 * from elsewhere as well) is given back and counts for nobody.
 *
 * What the channel learns while serving a pick goes back to the picker,
 * so that its outlier ejection hears of a server that is down before any
 * call reached it: a dial that fails, and an address still in backoff
 * from an earlier one, are the address's failures, and the channel picks
 * again.  A subchannel another call is dialling is waited for, the pick
 * held (the call is in flight there, as far as the picker is concerned),
 * and the dial's outcome is then the pick's.  After twice as many
 * failed picks as there are addresses the call gets UNAVAILABLE, or with
 * wait_for_ready waits for the earliest backoff to end, as the built-in
 * policies do.  A pick the picker refuses (-ENOENT: nothing to pick) is
 * not asked again at once: the call fails UNAVAILABLE at once, or with
 * wait_for_ready waits for the next update.
 */
#include <errno.h>
#include <string.h>

#include "base/check.h"
#include "grpc/grpc_internal.h"
#include "tern/runtime.h"

static subch *find(tern_grpc_channel *ch, const char *addr)
{
    for (size_t i = 0; i < ch->nscs; i++)
        if (!strcmp(ch->scs[i]->addr, addr))
            return ch->scs[i];
    return NULL;
}

/* Under mu: wait until a subchannel changes or the earliest backoff ends
 * (ctx's error, else 0). */
static int wait_for_change(tern_grpc_channel *ch, tern_ctx *ctx)
{
    int64_t earliest = INT64_MAX;
    for (size_t i = 0; i < ch->nscs; i++)
        if (ch->scs[i]->state == SC_FAILURE && ch->scs[i]->next_attempt < earliest)
            earliest = ch->scs[i]->next_attempt;
    if (earliest == INT64_MAX)
        return tern_cond_wait(&ch->cond, &ch->mu, ctx);
    tern_ctx *w;
    int rc = tern_ctx_with_deadline(ctx, earliest, &w);
    if (rc < 0)
        return rc;
    rc = tern_cond_wait(&ch->cond, &ch->mu, w);
    tern_ctx_free(w);
    return rc == -ETIMEDOUT && !tern_ctx_err(ctx) ? 0 : rc;
}

int tern__grpc_channel_pick_by(tern_grpc_channel *ch, const void *key, size_t key_len, bool wait_for_ready,
                               tern_ctx *ctx, gconn **out, tern_grpc_pick *pk, int *why)
{
    const tern_grpc_picker *pr = ch->picker;
    TERN_ASSERT(pr != NULL);
    tern_mutex_lock(&ch->mu);
    int rc;
    size_t misses = 0;
    for (;;) {
        if (ch->closing) {
            rc = -ECONNABORTED;
            break;
        }
        int64_t t0 = tern_now();
        rc = pr->pick(ch->picker_arg, key, key_len, pk);
        if (rc < 0) {
            /* the picker's own answer (-ENOENT: no address, or all
             * ejected): asking again at once would say the same.  UNAVAILABLE
             * as gRPC says it (-ENOENT would read NOT_FOUND) */
            *why = rc == -ENOMEM ? rc : -EHOSTUNREACH;
            if (!wait_for_ready) {
                rc = -EAGAIN;
                break;
            }
            misses = 0;
            if ((rc = wait_for_change(ch, ctx)) < 0)
                break;
            continue;
        }
        subch *sc = find(ch, pk->addr);
        if (!sc)
            pr->done(ch->picker_arg, pk, 0, TERN_GRPC_PICK_LOCAL);
        if (sc) {
            tern__grpc_subch_drop_unusable(sc);
            while (sc->state == SC_CONNECTING && !ch->closing && rc == 0)
                rc = tern_cond_wait(&ch->cond, &ch->mu, ctx);     /* another call's dial */
            tern__grpc_subch_drop_unusable(sc);
            if (rc < 0 || ch->closing) {
                pr->done(ch->picker_arg, pk, 0, TERN_GRPC_PICK_LOCAL);
                rc = rc < 0 ? rc : -ECONNABORTED;
                break;
            }
            if (sc->state == SC_READY) {
                tern__grpc_conn_ref(sc->conn);
                *out = sc->conn;
                tern_mutex_unlock(&ch->mu);
                return 0;
            }
            if (tern__grpc_subch_may_try(sc, tern_now())) {
                rc = tern__grpc_subch_connect(ch, sc, ctx, out);
                if (rc == 0) {
                    tern_mutex_unlock(&ch->mu);
                    return 0;
                }
                bool local = tern_ctx_err(ctx) != 0 || ch->closing;
                pr->done(ch->picker_arg, pk, tern_now() - t0, local ? TERN_GRPC_PICK_LOCAL : TERN_GRPC_PICK_FAILED);
                if (local)
                    break;
            } else {
                /* in backoff after a failed dial: still down, as far as we know */
                pr->done(ch->picker_arg, pk, tern_now() - t0, TERN_GRPC_PICK_FAILED);
            }
            *why = sc->last_err;
        }
        if (++misses < 2 * ch->nscs + 2)
            continue;
        if (!wait_for_ready) {
            if (!*why)
                *why = -EHOSTUNREACH;
            rc = -EAGAIN;
            break;
        }
        misses = 0;
        if ((rc = wait_for_change(ch, ctx)) < 0)
            break;
    }
    tern_mutex_unlock(&ch->mu);
    return rc;
}
