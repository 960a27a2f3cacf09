/*
 * json_depth.h - how deep a JSON text nests, found before jansson parses
 * it.  jansson recurses once per level of [ and { (about 80 bytes of stack
 * a level on x86-64, 2.14) and stops only at 2048 levels (~160 KiB), far
 * past a coroutine's 64 KiB stack: a few hundred bytes of "[[[[" from a
 * client would overflow the stack and kill the process.  So every JSON
 * text that comes from outside (request bodies, configuration files) goes
 * through this scan first, and is refused when it nests too deep.
 */
#ifndef TERN_BASE_JSON_DEPTH_H
#define TERN_BASE_JSON_DEPTH_H

#include <stdbool.h>
#include <stddef.h>

/* Whether p[0..n) never has more than max unclosed [ or { outside
 * strings (string contents and their escapes skipped, as jansson reads
 * them).  Linear, no recursion, no allocation; malformed text is left to
 * the parser: the result bounds how deep jansson can recurse on p, so a
 * true is safe to parse whatever else is wrong with p. */
bool tern__json_depth_ok(const char *p, size_t n, int max);

#endif
