/*
 * util.c - the small things every service needs: ids, the wall clock,
 * numbers as SQL text, reading result columns by name, gRPC failures from
 * -errno, the budget of a call to another service.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/shop.h"

void shop_id_new(const char *prefix, char *buf)
{
    uint64_t v = 0;
    /* getrandom of 8 bytes does not fail once the pool is initialised
     * (always, this late in a process); the clock makes a fallback unique
     * enough for a demo should it ever. */
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint64_t)tern_now() * 0x9e3779b97f4a7c15ull;
    snprintf(buf, SHOP_ID_MAX, "%s%016" PRIx64, prefix, v);
}

double shop_random(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint64_t)tern_now() * 0x9e3779b97f4a7c15ull;
    return (double)(v >> 11) / (double)(1ull << 53);
}

void *shop_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        protobuf_c_message_pack(m, buf);
    return buf;
}

int64_t shop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *shop_i64(char *buf, int64_t v)
{
    snprintf(buf, SHOP_I64_MAX, "%" PRId64, v);
    return buf;
}

const char *shop_col(const tern_sqlite_result *res, int row, const char *col)
{
    int c = tern_sqlite_result_col_index(res, col);
    return c < 0 ? "" : tern_sqlite_result_text(res, row, c);
}

int64_t shop_col_i64(const tern_sqlite_result *res, int row, const char *col)
{
    int64_t v = 0;
    int c = tern_sqlite_result_col_index(res, col);
    if (c >= 0 && tern_sqlite_result_int64(res, row, c, &v) < 0)
        v = 0;
    return v;
}

int shop_call_ctx(shop_role *r, tern_ctx *parent, tern_ctx **out)
{
    return tern_ctx_with_timeout(parent, tern_config_duration(r->cfg, "call.timeout"), out);
}

int shop_fail(tern_grpc_call *call, int rc, const char *what)
{
    if (rc >= 0)
        rc = -EPROTO;
    return tern_grpc_call_fail(call, tern_grpc_errno_to_code(rc), "%s", what ? what : tern_strerror(rc));
}
