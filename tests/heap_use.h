/*
 * heap_use.h - bytes the process holds from malloc now, for tests that
 * bound what a server or a config keeps: glibc's mallinfo2 (small blocks
 * and mmapped ones), or, under ASan and TSan, whose allocators replace
 * malloc and leave mallinfo2 at zero, the sanitizer's own count.
 */
#ifndef TERN_TEST_HEAP_USE_H
#define TERN_TEST_HEAP_USE_H

#include <malloc.h>
#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HEAP_USE_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_USE_SANITIZER 1
#endif

#ifdef HEAP_USE_SANITIZER
/* sanitizer/allocator_interface.h, which GCC does not install */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

static inline size_t heap_in_use(void)
{
#ifdef HEAP_USE_SANITIZER
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

#endif
