/*
 * sanitizer.h - tells ASan, TSan and valgrind about coroutine stacks, so
 * that our tools keep working on coroutine code.  Everything compiles to
 * nothing in a normal build.
 */
#ifndef TERN_SANITIZER_H
#define TERN_SANITIZER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define TERN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TERN_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define TERN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TERN_TSAN 1
#endif
#endif

#ifdef TERN_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
#define TERN_NO_ASAN __attribute__((no_sanitize_address))
#else
#define TERN_NO_ASAN
#endif

#ifdef TERN_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TERN_VALGRIND 1
#endif
#endif

static inline unsigned tern_vg_stack_register(void *lo, void *hi)
{
#ifdef TERN_VALGRIND
    return VALGRIND_STACK_REGISTER(lo, hi);
#else
    (void)lo, (void)hi;
    return 0;
#endif
}

static inline void tern_vg_stack_deregister(unsigned id)
{
#ifdef TERN_VALGRIND
    VALGRIND_STACK_DEREGISTER(id);
#else
    (void)id;
#endif
}

#endif
