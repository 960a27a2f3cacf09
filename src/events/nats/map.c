/*
 * map.c - uint64 ids to pointers: linear probing, power-of-two capacity,
 * at most half full, deletion by backward shift (no tombstones, so a map
 * that sees many short-lived request tokens never degrades).  Ids start
 * at 1: a zero key marks an empty slot.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/check.h"
#include "events/nats/internal.h"

static size_t slot(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

static int grow(tern__nats_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    uint64_t *keys = calloc(ncap, sizeof *keys);
    void **vals = calloc(ncap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = slot(m->keys[i], ncap);
        while (keys[j])
            j = (j + 1) & (ncap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = ncap;
    return 0;
}

int tern__nats_map_put(tern__nats_map *m, uint64_t key, void *val)
{
    TERN_ASSERT(key != 0);
    if ((m->len + 1) * 2 > m->cap) {
        int err = grow(m);
        if (err)
            return err;
    }
    size_t i = slot(key, m->cap);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->len++;
    m->keys[i] = key;
    m->vals[i] = val;
    return 0;
}

void *tern__nats_map_get(const tern__nats_map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = slot(key, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == key)
            return m->vals[i];
    return NULL;
}

void *tern__nats_map_del(tern__nats_map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1, i = slot(key, m->cap);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & mask;
    if (!m->keys[i])
        return NULL;
    void *v = m->vals[i];
    /* Backward shift: move later members of the probe run into the hole
     * unless their home slot lies cyclically in (hole, j]. */
    size_t j = i;
    for (;;) {
        m->keys[i] = 0;
        m->vals[i] = NULL;
        for (;;) {
            j = (j + 1) & mask;
            if (!m->keys[j]) {
                m->len--;
                return v;
            }
            size_t h = slot(m->keys[j], m->cap);
            if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
                continue;
            break;
        }
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
}

void tern__nats_map_free(tern__nats_map *m)
{
    free(m->keys);
    free(m->vals);
    *m = (tern__nats_map){0};
}
