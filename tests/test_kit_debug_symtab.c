/*
 * test_kit_debug_symtab.c - the ELF symbol reader behind the profiler's
 * function names (src/kit/debug/symtab.c): it names this binary's static
 * functions at their addresses, and a file that is not a well-formed ELF
 * (empty, a script, cut short, with offsets past its end) is an error,
 * never a crash or a read past the end (ASan checks that in CI).
 */
#include "check.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kit/debug/internal.h"

/* A function only this file's symbol table names (its address is taken
 * below, so it stays a function of its own). */
__attribute__((noinline)) static unsigned long marker_fn(unsigned long x)
{
    return x * 2654435761u ^ (x >> 7);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK_EQ(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* this test's executable, whole */
static char *read_exe(size_t *n)
{
    FILE *f = fopen("/proc/self/exe", "rb");
    CHECK(f);
    size_t cap = 1 << 20, len = 0;
    char *b = malloc(cap);
    CHECK(b);
    size_t k;
    while ((k = fread(b + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            b = realloc(b, cap *= 2);
            CHECK(b);
        }
    }
    fclose(f);
    *n = len;
    return b;
}

static void debug_symtab_names_functions_and_refuses_bad_files(void)
{
    /* this binary: its static functions, at their addresses (the file's
     * addresses plus the load bias, which &fn minus its symbol gives) */
    tern__symtab t;
    CHECK_EQ(tern__symtab_load(&t, "/proc/self/exe", 0), 0);
    CHECK(t.n > 2);
    const tern__sym *me = NULL;
    for (size_t i = 0; i < t.n; i++)
        if (!strncmp(t.syms[i].name, "marker_fn", 9))
            me = &t.syms[i];
    CHECK(me != NULL);
    uintptr_t bias = (uintptr_t)&marker_fn - me->lo;
    t.bias = bias;
    CHECK(!strncmp(tern__symtab_find(&t, (uintptr_t)&marker_fn), "marker_fn", 9));
    CHECK(!strncmp(tern__symtab_find(&t, (uintptr_t)&marker_fn + (me->hi - me->lo) - 1),
                   "marker_fn", 9));
    CHECK(tern__symtab_find(&t, bias - 1) == NULL || bias == 0);
    CHECK(tern__symtab_find(&t, 0) == NULL || bias == 0);
    for (size_t i = 1; i < t.n; i++)
        CHECK(t.syms[i - 1].lo <= t.syms[i].lo);      /* sorted */
    tern__symtab_free(&t);
    CHECK(tern__symtab_find(&t, (uintptr_t)&marker_fn) == NULL);    /* empty after free */

    /* bad files: an error, an empty table, never a crash */
    CHECK_EQ(tern__symtab_load(&t, "/nonexistent/tern-exe", 0), -ENOENT);
    CHECK_EQ(t.n, 0);
    char path[] = "/tmp/tern-symtab-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_EQ(tern__symtab_load(&t, path, 0), -ENOEXEC);     /* empty */
    write_file(path, "#!/bin/sh\necho not an ELF file\n", 31);
    CHECK_EQ(tern__symtab_load(&t, path, 0), -ENOEXEC);
    size_t n;
    char *exe = read_exe(&n);
    /* cut anywhere: the section headers are at the end, so most cuts lose
     * them; none may be read past the end */
    static const size_t cuts[] = {4, 63, 64, 65, 4096};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(path, exe, cuts[i]);
        CHECK(tern__symtab_load(&t, path, 0) < 0);
        CHECK_EQ(t.n, 0);
    }
    write_file(path, exe, n - 1);       /* the last section header cut */
    CHECK(tern__symtab_load(&t, path, 0) < 0);
    /* section headers said to lie beyond the file */
    Elf64_Ehdr *eh = (Elf64_Ehdr *)exe;
    Elf64_Off shoff = eh->e_shoff;
    eh->e_shoff = (Elf64_Off)n;
    write_file(path, exe, n);
    CHECK_EQ(tern__symtab_load(&t, path, 0), -ENOEXEC);
    eh->e_shoff = shoff;
    /* section headers at an odd offset (read in place, so refused) */
    eh->e_shoff = shoff + 1;
    write_file(path, exe, n);
    CHECK_EQ(tern__symtab_load(&t, path, 0), -ENOEXEC);
    eh->e_shoff = shoff;
    /* a symbol table and its strings said to lie beyond the file */
    Elf64_Shdr *sh = (Elf64_Shdr *)(exe + shoff);
    for (size_t i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB || sh[i].sh_type == SHT_DYNSYM)
            sh[i].sh_offset = (Elf64_Off)n - 8;
    write_file(path, exe, n);
    CHECK_EQ(tern__symtab_load(&t, path, 0), -ENOEXEC);
    unlink(path);
    free(exe);
}

TESTS(T(debug_symtab_names_functions_and_refuses_bad_files))
