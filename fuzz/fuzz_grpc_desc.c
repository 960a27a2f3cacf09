/*
 * fuzz_grpc_desc.c - libFuzzer target for server reflection's reader of
 * serialized FileDescriptorProtos (src/grpc/reflection_desc.c).  The input
 * is a symbol, a newline, then the descriptor bytes.  The descriptors come
 * from generated code, but the reader takes nothing on trust: every length
 * checked, nesting bounded; beyond "no crash", a name found must be one
 * the symbol could be (non-empty, no leading dot), and the extension walk
 * reports only numbers in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection_internal.h"

static int ext_seen(int32_t number, void *arg)
{
    (void)arg;
    if (number < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t sym_len = nl ? (size_t)(nl - data) : 0;
    char *sym = malloc(sym_len + 1);
    memcpy(sym, data, sym_len);
    sym[sym_len] = '\0';
    const uint8_t *desc = nl ? nl + 1 : data;
    size_t len = size - (size_t)(desc - data);
    /* a copy of exactly len bytes: reading past it is ASan's to catch */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, desc, len);
    if (tern__grpc_desc_declares(copy, len, sym) && (sym[0] == '\0' || sym[0] == '.'))
        abort();
    tern__grpc_desc_extensions(copy, len, sym, ext_seen, NULL);
    free(copy);
    free(sym);
    return 0;
}
