/*
 * co_local.h - one pointer of state per coroutine, for the library's own
 * modules (the trace module keeps the coroutine's stack of current spans
 * there).  Not public: a coroutine-local API for users would want keys
 * and destructors; this is a single slot with one owner.
 */
#ifndef TERN_RUNTIME_CO_LOCAL_H
#define TERN_RUNTIME_CO_LOCAL_H

/* The calling coroutine's slot (NULL when the coroutine starts, reset on
 * every reuse of its control block), or a per-thread slot outside
 * coroutines.  Only the coroutine itself may use it: no locking. */
void **tern__co_local(void);

#endif
