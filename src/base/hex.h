/*
 * hex.h - bytes as lower-case hex, for ids (trace and span ids, request
 * ids) written on every request.
 */
#ifndef TERN_BASE_HEX_H
#define TERN_BASE_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The n bytes at in as 2n lower-case hex digits at out, then a NUL. */
void tern__hex(const uint8_t *in, size_t n, char *out);

#endif
