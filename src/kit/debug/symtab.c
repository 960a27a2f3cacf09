/*
 * symtab.c - function names from an ELF file's symbol table, for
 * the profiler's addresses that dladdr cannot name.
 *
 * dladdr reads the dynamic symbol table, which lists what a shared object
 * exports; the executable's own functions are mostly static or not
 * exported, so only the full .symtab names them.  A profile that carries
 * those names reads in any pprof, on any machine, without the binary's
 * debug information: Debian's llvm-symbolizer (which `go tool pprof`
 * prefers) finds no function names in the DWARF of a gcc build with
 * link-time optimization, and a stripped-of-DWARF binary has none at all.
 *
 * The file is untrusted input as far as this code goes (another program
 * may have been put at the path): every offset and size is checked
 * against the file's length, and every table's alignment, before it is
 * used, and a file that does not add up is an error, never a crash.  Names are copied out, so
 * the table outlives the mapping of the file.
 */
#define _GNU_SOURCE
#include "kit/debug/internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* [off, off + len) lies within a file of size n. */
static int in_file(uint64_t off, uint64_t len, uint64_t n)
{
    return off <= n && len <= n - off;
}

static int cmp_sym(const void *a, const void *b)
{
    const tern__sym *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* A defined function with a size and a name inside the string table. */
static bool is_function(const Elf64_Sym *s, uint64_t names_size)
{
    return ELF64_ST_TYPE(s->st_info) == STT_FUNC && s->st_shndx != SHN_UNDEF && s->st_size > 0 &&
           s->st_name < names_size;
}

/* The function symbols of one symbol table section into t. */
static int take_symbols(tern__symtab *t, const unsigned char *f, uint64_t size,
                        const Elf64_Shdr *symtab, const Elf64_Shdr *strtab)
{
    if (symtab->sh_entsize != sizeof(Elf64_Sym) || symtab->sh_offset % 8 != 0 ||
        !in_file(symtab->sh_offset, symtab->sh_size, size) ||
        !in_file(strtab->sh_offset, strtab->sh_size, size) || strtab->sh_size == 0)
        return -ENOEXEC;
    const char *names = (const char *)f + strtab->sh_offset;
    if (names[strtab->sh_size - 1] != '\0')
        return -ENOEXEC;        /* a name could run off the end */
    size_t nsyms = symtab->sh_size / sizeof(Elf64_Sym), nfunc = 0, bytes = 0;
    const Elf64_Sym *syms = (const Elf64_Sym *)(f + symtab->sh_offset);
    for (size_t i = 0; i < nsyms; i++) {
        const Elf64_Sym *s = &syms[i];
        if (!is_function(s, strtab->sh_size))
            continue;
        nfunc++;
        bytes += strlen(names + s->st_name) + 1;
    }
    if (nfunc == 0)
        return -ENOENT;
    t->syms = malloc(nfunc * sizeof *t->syms);
    t->names = malloc(bytes);
    if (!t->syms || !t->names)
        return -ENOMEM;
    char *p = t->names;
    for (size_t i = 0; i < nsyms; i++) {
        const Elf64_Sym *s = &syms[i];
        if (!is_function(s, strtab->sh_size))
            continue;
        size_t len = strlen(names + s->st_name) + 1;
        memcpy(p, names + s->st_name, len);
        t->syms[t->n++] = (tern__sym){.lo = s->st_value, .hi = s->st_value + s->st_size,
                                      .name = p};
        p += len;
    }
    qsort(t->syms, t->n, sizeof *t->syms, cmp_sym);
    return 0;
}

static int parse(tern__symtab *t, const unsigned char *f, uint64_t size)
{
    if (size < sizeof(Elf64_Ehdr) || memcmp(f, ELFMAG, SELFMAG) != 0)
        return -ENOEXEC;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
        eh->e_shoff % 8 != 0 ||     /* the tables are read in place: aligned */
        !in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), size))
        return -ENOEXEC;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(f + eh->e_shoff);
    /* .symtab has every function; .dynsym, if that is all there is (a
     * stripped binary), at least the exported ones */
    for (Elf32_Word want = SHT_SYMTAB;; want = SHT_DYNSYM) {
        for (size_t i = 0; i < eh->e_shnum; i++) {
            if (sh[i].sh_type != want || sh[i].sh_link >= eh->e_shnum)
                continue;
            int r = take_symbols(t, f, size, &sh[i], &sh[sh[i].sh_link]);
            if (r != -ENOENT)
                return r;
        }
        if (want == SHT_DYNSYM)
            return -ENOENT;
    }
}

int tern__symtab_load(tern__symtab *t, const char *path, uintptr_t bias)
{
    *t = (tern__symtab){.bias = bias};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int e = fstat(fd, &st) != 0 ? -errno : st.st_size <= 0 ? -ENOEXEC : 0;
    if (e != 0) {
        close(fd);
        return e;
    }
    void *f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    e = f == MAP_FAILED ? -errno : 0;
    close(fd);
    if (e != 0)
        return e;
    int r = parse(t, f, (uint64_t)st.st_size);
    munmap(f, (size_t)st.st_size);
    if (r != 0)
        tern__symtab_free(t);
    return r;
}

const char *tern__symtab_find(const tern__symtab *t, uintptr_t addr)
{
    if (t->n == 0 || addr < t->bias)
        return NULL;
    uintptr_t a = addr - t->bias;
    size_t lo = 0, hi = t->n;           /* the last symbol starting at or before a */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->syms[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* symbols may nest (an alias inside a larger one): look back a little */
    for (size_t i = lo; i-- > 0 && lo - i <= 4;)
        if (a >= t->syms[i].lo && a < t->syms[i].hi)
            return t->syms[i].name;
    return NULL;
}

void tern__symtab_free(tern__symtab *t)
{
    free(t->syms);
    free(t->names);
    *t = (tern__symtab){0};
}
