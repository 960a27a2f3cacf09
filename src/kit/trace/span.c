/*
 * span.c - spans: ids, attributes, events, status, end-once, references;
 * the span in a context; the coroutine's current span and the log hook.
 *
 * Ownership: a span starts with one reference (its owner's).  Ending a
 * recorded span hands it to the exporter, which takes a second reference
 * while it waits in the queue, so the owner may read it (or free it) at
 * any time after end without racing the export.  After `ended` is set no
 * field changes, which is what makes the shared reads safe.
 *
 * The current span: tern_log's hook receives no context, so the span must
 * be found from the calling coroutine alone.  A thread-local would be
 * wrong: a handler parks (network, timers), another coroutine runs on the
 * same thread and would log with the handler's ids, and the handler may
 * resume on another thread.  So each coroutine keeps its open scopes in
 * a list hanging off its own slot of per-coroutine state (newest first,
 * which gives nesting for free; a plain thread has a slot of its own).
 * The hook reads the head, never parks, and returns strings that live in
 * the span, which outlives its scope.  (It was a hash table of scopes
 * keyed by coroutine, a spinlock per bucket: two locked operations per
 * request and a line shared by the workers.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/hex.h"
#include "base/rand.h"
#include "base/wall.h"
#include "kit/trace/internal.h"
#include "runtime/export.h"
#include "tern/runtime.h"

void tern_trace_hex(const uint8_t *id, size_t n, char *out)
{
    tern__hex(id, n, out);
}

/* A new trace id (unless trace_id is NULL) and span id, both non-zero
 * (all-zero ids are invalid in W3C Trace Context).  Taken as words, not
 * filled into a byte buffer and copied out: a 16-byte load of what two
 * 8-byte stores just wrote cannot be forwarded from them, and stalled
 * here on every request. */
static void random_ids(uint8_t *trace_id, uint8_t span_id[8])
{
    uint64_t sp;
    while (!(sp = tern__rand64()))
        ;
    memcpy(span_id, &sp, 8);
    if (trace_id) {
        uint64_t hi, lo;
        do {
            hi = tern__rand64();
            lo = tern__rand64();
        } while (!(hi | lo));
        memcpy(trace_id, &hi, 8);
        memcpy(trace_id + 8, &lo, 8);
    }
}

static char *dup_cut(const char *s)
{
    size_t n = strnlen(s, TERN_TRACE_STR_MAX);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Give s the name (cut to TERN_TRACE_STR_MAX bytes): a short one in the
 * span itself, a longer one allocated.  0 or -ENOMEM (the old name kept). */
static int set_name(tern_trace_span *s, const char *name)
{
    size_t n = strnlen(name, TERN_TRACE_STR_MAX);
    char *d = s->name_inline;
    if (n >= sizeof s->name_inline && !(d = malloc(n + 1)))
        return -ENOMEM;
    if (s->name != s->name_inline)
        free(s->name);
    memcpy(d, name, n);
    d[n] = 0;
    s->name = d;
    return 0;
}

/* ---- the sampler in force --------------------------------------------------- */

static _Atomic int sampler_kind;       /* 0: parentbased_always_on */
static _Atomic uint64_t sampler_ratio_bits;

void tern__trace_set_sampler(const tern_trace_sampler *s)
{
    uint64_t bits;
    memcpy(&bits, &s->ratio, sizeof bits);
    atomic_store(&sampler_ratio_bits, bits);
    atomic_store(&sampler_kind, (int)s->kind);
}

static tern_trace_sampler current_sampler(void)
{
    tern_trace_sampler s = {.kind = (tern_trace_sampler_kind)atomic_load(&sampler_kind)};
    uint64_t bits = atomic_load(&sampler_ratio_bits);
    memcpy(&s.ratio, &bits, sizeof bits);
    return s;
}

/* ---- lifecycle ----------------------------------------------------------------- */

/* A span in mem when one is given and the span is unsampled, else
 * allocated. */
static int span_start(void *mem, const char *name, tern_trace_kind kind,
                      const tern_trace_span_context *parent, tern_trace_span **out)
{
    if (!name || !out)
        return -EINVAL;
    tern_trace_span_context sc;
    if (parent)
        memcpy(sc.trace_id, parent->trace_id, 16);
    random_ids(parent ? NULL : sc.trace_id, sc.span_id);
    tern_trace_sampler smp = current_sampler();
    bool recording = tern_trace_sampler_decide(&smp, parent, sc.trace_id);
    /* An unsampled span never holds attributes, so it is made without
     * their array (a kilobyte): under malloc's per-thread cache limit, or
     * in the caller's memory. */
    bool borrowed = mem && !recording;
    tern_trace_span *s = borrowed ? mem : malloc(recording ? sizeof *s : TERN__TRACE_UNSAMPLED_SIZE);
    if (!s)
        return -ENOMEM;
    /* all but tracestate, which is a string: half a kilobyte not zeroed */
    memset(s, 0, offsetof(tern_trace_span, sc.tracestate));
    memset(s->parent_id, 0, offsetof(tern_trace_span, attrs) - offsetof(tern_trace_span, parent_id));
    s->sc.tracestate[0] = 0;
    atomic_init(&s->refs, 1);
    s->borrowed = borrowed;
    if (set_name(s, name) != 0) {
        if (!borrowed)
            free(s);
        return -ENOMEM;
    }
    s->kind = kind;
    memcpy(s->sc.trace_id, sc.trace_id, 16);
    memcpy(s->sc.span_id, sc.span_id, 8);
    if (parent) {
        memcpy(s->parent_id, parent->span_id, 8);
        s->has_parent = true;
        memcpy(s->sc.tracestate, parent->tracestate, sizeof s->sc.tracestate);
    }
    s->recording = recording;
    s->sc.flags = recording ? TERN_TRACE_FLAG_SAMPLED : 0;
    tern_trace_hex(s->sc.trace_id, 16, s->trace_hex);
    tern_trace_hex(s->sc.span_id, 8, s->span_hex);
    /* Only exported spans need times: an unsampled one skips the clock. */
    s->start_ns = recording ? tern__wall_ns() : 0;
    *out = s;
    return 0;
}

int tern_trace_span_start(const char *name, tern_trace_kind kind,
                          const tern_trace_span_context *parent, tern_trace_span **out)
{
    return span_start(NULL, name, kind, parent, out);
}

int tern__trace_span_start_in(void *mem, const char *name, tern_trace_kind kind,
                              const tern_trace_span_context *parent, tern_trace_span **out)
{
    return span_start(mem, name, kind, parent, out);
}

int tern_trace_span_end(tern_trace_span *s)
{
    if (!s)
        return -EINVAL;
    if (s->ended)
        return -EALREADY;
    s->end_ns = s->recording ? tern__wall_ns() : 0;
    if (s->end_ns < s->start_ns)
        s->end_ns = s->start_ns;    /* the wall clock may step back (wall.h) */
    s->ended = true;
    TERN_ASSERT(s->end_ns >= s->start_ns);
    TERN_ASSERT(atomic_load(&s->refs) >= 1);  /* ended by a holder */
    if (s->recording)
        tern__trace_export_submit(s);
    return 0;
}

static void attr_clear(tern_trace_attr *a)
{
    free((char *)a->key);
    if (a->kind == TERN_TRACE_ATTR_STR)
        free((char *)a->v.s);
}

void tern_trace_span_free(tern_trace_span *s)
{
    if (!s)
        return;
    TERN_ASSERT(atomic_load_explicit(&s->refs, memory_order_relaxed) >= 1);
    /* an unsampled span never holds attributes or events (nor their array) */
    TERN_ASSERT(s->recording || (s->nattrs == 0 && s->nevents == 0));
    /* The last reference (every unsampled span: nothing else takes one)
     * needs no locked decrement, which would wait for the request's
     * stores to drain: no other holder is left to race with. */
    if (atomic_load_explicit(&s->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    TERN_ASSERT(s->nattrs <= TERN_TRACE_MAX_ATTRS && s->nevents <= s->events_cap);
    for (size_t i = 0; i < s->nattrs; i++)
        attr_clear(&s->attrs[i]);
    for (size_t i = 0; i < s->nevents; i++) {
        for (size_t j = 0; j < s->events[i].nattrs; j++)
            attr_clear(&s->events[i].attrs[j]);
        free(s->events[i].name);
    }
    free(s->events);
    if (s->name != s->name_inline)
        free(s->name);
    free(s->status_msg);
    if (!s->borrowed)
        free(s);
}

/* ---- reading ------------------------------------------------------------------- */

const tern_trace_span_context *tern_trace_span_context_of(const tern_trace_span *s)
{
    return s ? &s->sc : NULL;
}
bool tern_trace_span_recording(const tern_trace_span *s) { return s && s->recording; }
const char *tern_trace_span_trace_id(const tern_trace_span *s)
{
    TERN_CHECK_ARG(s);
    return s->trace_hex;
}
const char *tern_trace_span_span_id(const tern_trace_span *s)
{
    TERN_CHECK_ARG(s);
    return s->span_hex;
}
const char *tern_trace_span_name(const tern_trace_span *s)
{
    TERN_CHECK_ARG(s);
    return s->name;
}
tern_trace_status tern_trace_span_status(const tern_trace_span *s)
{
    TERN_CHECK_ARG(s);
    return s->status;
}
size_t tern_trace_span_attr_count(const tern_trace_span *s)
{
    TERN_CHECK_ARG(s);
    return s->nattrs;
}
size_t tern_trace_span_event_count(const tern_trace_span *s)
{
    TERN_CHECK_ARG(s);
    return s->nevents;
}

const tern_trace_attr *tern_trace_span_attr(const tern_trace_span *s, const char *key)
{
    TERN_CHECK_ARG(s);
    for (size_t i = 0; i < s->nattrs; i++)
        if (strcmp(s->attrs[i].key, key) == 0)
            return &s->attrs[i];
    return NULL;
}

bool tern_trace_span_parent_id(const tern_trace_span *s, uint8_t out[8])
{
    TERN_CHECK_ARG(s);
    if (s->has_parent)
        memcpy(out, s->parent_id, 8);
    return s->has_parent;
}

/* ---- mutation ------------------------------------------------------------------ */

/* 0 when the span takes changes, 1 when it silently ignores them
 * (unrecorded), -EALREADY once ended. */
static int writable(const tern_trace_span *s)
{
    if (!s)
        return -EINVAL;
    if (s->ended)
        return -EALREADY;
    return s->recording ? 0 : 1;
}

int tern_trace_span_set_name(tern_trace_span *s, const char *name)
{
    int w = writable(s);
    if (w < 0)
        return w;
    if (!name)
        return -EINVAL;
    return set_name(s, name);
}

/* Copy a's value into dst (whose key is set by the caller). */
static int attr_value_copy(tern_trace_attr *dst, const tern_trace_attr *a)
{
    dst->kind = a->kind;
    dst->v = a->v;
    if (a->kind == TERN_TRACE_ATTR_STR) {
        dst->v.s = dup_cut(a->v.s ? a->v.s : "");
        if (!dst->v.s)
            return -ENOMEM;
    } else if (a->kind < TERN_TRACE_ATTR_STR || a->kind > TERN_TRACE_ATTR_BOOL) {
        return -EINVAL;
    }
    return 0;
}

static int attr_copy(tern_trace_attr *dst, const tern_trace_attr *a)
{
    if (!a->key)
        return -EINVAL;
    tern_trace_attr t = {.key = dup_cut(a->key)};
    if (!t.key)
        return -ENOMEM;
    int rc = attr_value_copy(&t, a);
    if (rc < 0) {
        free((char *)t.key);
        return rc;
    }
    *dst = t;
    return 0;
}

int tern_trace_span_set(tern_trace_span *s, const tern_trace_attr *a)
{
    int w = writable(s);
    if (w != 0)
        return w > 0 ? 0 : w;
    if (!a || !a->key)
        return -EINVAL;
    for (size_t i = 0; i < s->nattrs; i++) {
        if (strcmp(s->attrs[i].key, a->key) != 0)
            continue;
        tern_trace_attr t = {.key = s->attrs[i].key};
        int rc = attr_value_copy(&t, a);
        if (rc < 0)
            return rc;
        if (s->attrs[i].kind == TERN_TRACE_ATTR_STR)
            free((char *)s->attrs[i].v.s);
        s->attrs[i] = t;
        return 0;
    }
    if (s->nattrs == TERN_TRACE_MAX_ATTRS) {
        s->dropped_attrs++;
        return -ENOSPC;
    }
    int rc = attr_copy(&s->attrs[s->nattrs], a);
    if (rc == 0)
        s->nattrs++;
    return rc;
}

int tern_trace_span_add_event(tern_trace_span *s, const char *name, const tern_trace_attr *attrs,
                              size_t n)
{
    int w = writable(s);
    if (w != 0)
        return w > 0 ? 0 : w;
    if (!name || (n && !attrs))
        return -EINVAL;
    if (s->nevents == TERN_TRACE_MAX_EVENTS) {
        s->dropped_events++;
        return -ENOSPC;
    }
    if (s->nevents == s->events_cap) {
        size_t cap = s->events_cap ? 2 * s->events_cap : 2;
        tern__trace_event *e = realloc(s->events, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        s->events = e;
        s->events_cap = cap;
    }
    TERN_ASSERT(s->nevents < s->events_cap && s->nevents < TERN_TRACE_MAX_EVENTS);
    tern__trace_event *e = &s->events[s->nevents];
    *e = (tern__trace_event){.time_ns = tern__wall_ns(), .name = dup_cut(name)};
    if (!e->name)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (e->nattrs == TERN_TRACE_MAX_EVENT_ATTRS) {
            e->dropped_attrs++;
            continue;
        }
        if (attr_copy(&e->attrs[e->nattrs], &attrs[i]) == 0)
            e->nattrs++;
        else
            e->dropped_attrs++;
    }
    s->nevents++;
    return 0;
}

int tern_trace_span_set_status(tern_trace_span *s, tern_trace_status code, const char *message)
{
    int w = writable(s);
    if (w != 0)
        return w > 0 ? 0 : w;
    if (code < TERN_TRACE_STATUS_UNSET || code > TERN_TRACE_STATUS_ERROR)
        return -EINVAL;
    if (s->status == TERN_TRACE_STATUS_OK || code == TERN_TRACE_STATUS_UNSET)
        return 0;
    char *m = NULL;
    if (code == TERN_TRACE_STATUS_ERROR && message && !(m = dup_cut(message)))
        return -ENOMEM;
    free(s->status_msg);
    s->status_msg = m;
    s->status = code;
    return 0;
}

/* ---- context -------------------------------------------------------------------- */

/* Two keys: a span the user put in a context, and the server
 * middleware's holder.  The holder lives in the request's arena and is
 * emptied when the middleware frees its span, because the request's
 * context (which the request frees, later) would otherwise keep pointing
 * at a freed span for any link outside the middleware. */
static const char ctx_key, holder_key;

int tern_trace_ctx_with_span(tern_ctx *parent, tern_trace_span *s, tern_ctx **out)
{
    TERN_CHECK_ARG(out);
    return tern_ctx_with_value(parent, &ctx_key, s, out);
}

const void *tern__trace_holder_key(void)
{
    return &holder_key;
}

tern_trace_span *tern_trace_span_from_ctx(tern_ctx *ctx)
{
    if (!ctx)
        return NULL;
    tern_trace_span *s = tern_ctx_value(ctx, &ctx_key);
    if (s)
        return s;
    tern_trace_span **holder = tern_ctx_value(ctx, &holder_key);
    return holder ? *holder : NULL;
}

/* ---- the current span ------------------------------------------------------------ */

/* The coroutine's open scopes, newest first, hang off its one slot of
 * per-coroutine state (runtime/export.h): only the coroutine itself
 * reads or changes them, so entering, leaving and asking cost a few
 * loads and stores, with no lock and no shared line. */
void tern_trace_span_enter(tern_trace_scope *e, tern_trace_span *s)
{
    tern_trace_scope **top = (tern_trace_scope **)tern__co_local();
    TERN_ASSERT(*top != e);             /* a scope is entered once */
    e->co = tern_self();
    e->span = s;
    e->next = *top;
    *top = e;
}

void tern_trace_span_exit(tern_trace_scope *e)
{
    /* only the coroutine that entered the scope leaves it */
    TERN_ASSERT(e->co == tern_self());
    /* the newest as a rule; scopes left out of order are unlinked too */
    for (tern_trace_scope **p = (tern_trace_scope **)tern__co_local(); *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            break;
        }
    }
}

tern_trace_span *tern_trace_span_current(void)
{
    tern_trace_scope *top = *(tern_trace_scope **)tern__co_local();
    return top ? top->span : NULL;
}

bool tern_trace_log_ids(tern_log_ids *ids)
{
    tern_trace_span *s = tern_trace_span_current();
    if (!s)
        return false;
    ids->trace_id = s->trace_hex;
    ids->span_id = s->span_hex;
    return true;
}
