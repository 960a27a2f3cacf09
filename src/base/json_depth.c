/*
 * json_depth.c - the depth pre-scan (json_depth.h).
 *
 * Brackets inside strings do not count, so the scan follows strings as
 * jansson's lexer does: a '"' opens one, a backslash escapes the next
 * byte (a "\u0022" holds no '"', so skipping one byte after a backslash
 * is enough), and an unescaped '"' closes it.  A closer with nothing open
 * leaves the depth at 0 rather than below: jansson stops at such a text,
 * and a negative count must never let a later run of openers through.
 */
#include "base/json_depth.h"

bool tern__json_depth_ok(const char *p, size_t n, int max)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;            /* the escaped byte, whatever it is */
            else if (c == '"')
                in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            break;
        case '[':
        case '{':
            if (++depth > max)
                return false;
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
    }
    return true;
}
