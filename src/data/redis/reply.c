/*
 * reply.c - typed replies: hiredis's redisReply tree, handed out as is.
 *
 * The reader builds the tree with hiredis's default functions; a caller
 * gets the root and reaches elements through borrowed pointers, so a
 * reply crosses from the reader coroutine to its caller without a copy.
 */
#include <stdlib.h>

#include "base/check.h"
#include "data/redis/internal.h"

_Static_assert(TERN_REDIS_STRING == REDIS_REPLY_STRING && TERN_REDIS_ARRAY == REDIS_REPLY_ARRAY &&
                   TERN_REDIS_INTEGER == REDIS_REPLY_INTEGER && TERN_REDIS_NIL == REDIS_REPLY_NIL &&
                   TERN_REDIS_STATUS == REDIS_REPLY_STATUS && TERN_REDIS_ERROR == REDIS_REPLY_ERROR,
               "tern_redis_type mirrors hiredis's reply types");

tern_redis_type tern_redis_reply_type(const tern_redis_reply *r)
{
    TERN_CHECK_ARG(r);
    return (tern_redis_type)tern__redis_rr(r)->type;
}

const char *tern_redis_reply_str(const tern_redis_reply *r, size_t *len)
{
    TERN_CHECK_ARG(r);
    const redisReply *rr = tern__redis_rr(r);
    bool text = rr->type == REDIS_REPLY_STRING || rr->type == REDIS_REPLY_STATUS ||
                rr->type == REDIS_REPLY_ERROR;
    if (len)
        *len = text ? rr->len : 0;
    return text ? rr->str : NULL;
}

int64_t tern_redis_reply_int(const tern_redis_reply *r)
{
    TERN_CHECK_ARG(r);
    const redisReply *rr = tern__redis_rr(r);
    return rr->type == REDIS_REPLY_INTEGER ? (int64_t)rr->integer : 0;
}

size_t tern_redis_reply_len(const tern_redis_reply *r)
{
    TERN_CHECK_ARG(r);
    const redisReply *rr = tern__redis_rr(r);
    return rr->type == REDIS_REPLY_ARRAY ? rr->elements : 0;
}

const tern_redis_reply *tern_redis_reply_at(const tern_redis_reply *r, size_t i)
{
    TERN_CHECK_ARG(r);
    const redisReply *rr = tern__redis_rr(r);
    if (rr->type != REDIS_REPLY_ARRAY || i >= rr->elements)
        tern__assert_fail("i < tern_redis_reply_len(r)", __FILE__, __LINE__, __func__);
    return tern__redis_wrap(rr->element[i]);
}

void tern_redis_reply_free(tern_redis_reply *r)
{
    if (r)
        freeReplyObject(r);
}
