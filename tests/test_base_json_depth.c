/*
 * test_base_json_depth.c - the JSON depth pre-scan (src/base/json_depth.c):
 * it counts [ and { outside strings only, honours escapes inside them,
 * allows exactly max levels, and is never fooled below zero.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#include "base/json_depth.h"

#define OK(s, max) tern__json_depth_ok((s), strlen(s), (max))

static void json_depth_counts_both_brackets(void)
{
    CHECK(OK("", 0));
    CHECK(OK("1", 0));
    CHECK(!OK("[]", 0));
    CHECK(OK("[]", 1));
    CHECK(OK("[1,[2],{\"a\":[3]}]", 3));
    CHECK(!OK("[1,[2],{\"a\":[3]}]", 2));
    CHECK(OK("[[]][[]][[]]", 2));           /* siblings do not add up */
    CHECK(!OK("{\"a\":{\"b\":{}}}", 2));
}

static void json_depth_skips_strings_and_escapes(void)
{
    CHECK(OK("[\"[[[[{{{{\"]", 1));
    CHECK(OK("[\"\\\"[[[[\"]", 1));        /* an escaped quote does not end the string */
    CHECK(OK("[\"\\\\\",\"x\"]", 1));       /* nor does an escaped backslash start one */
    CHECK(!OK("[\"\\\\\"[[]]", 2));         /* after "\\" the string is over */
    CHECK(OK("\"[[[", 0));                  /* an unterminated string: the parser's problem */
    CHECK(OK("\"\\", 0));                   /* a backslash at the very end */
}

static void json_depth_never_goes_below_zero(void)
{
    /* closers first cannot buy room for openers later */
    CHECK(!OK("]]]]][[[", 2));
    CHECK(OK("]]]]][[", 2));
}

static void json_depth_limit_is_exact_on_deep_input(void)
{
    size_t n = 100000;
    char *p = malloc(2 * n);
    CHECK(p != NULL);
    memset(p, '[', n);
    memset(p + n, ']', n);
    CHECK(tern__json_depth_ok(p, 2 * n, (int)n));
    CHECK(!tern__json_depth_ok(p, 2 * n, (int)n - 1));
    CHECK(!tern__json_depth_ok(p, n, 128));
    CHECK(tern__json_depth_ok(p + n - 128, 256, 128));
    free(p);
}

TESTS(T(json_depth_counts_both_brackets), T(json_depth_skips_strings_and_escapes),
      T(json_depth_never_goes_below_zero), T(json_depth_limit_is_exact_on_deep_input))
