/*
 * result.c - a query's result and its typed accessors.
 *
 * Results arrive in PostgreSQL's text format, so the accessors parse:
 * integers with strtoll (the whole value must be a number), floats with
 * strtod (which also takes NaN and Infinity, as the server writes them),
 * booleans as 't' / 'f', bytea from the server's hex form (the default
 * since 9.0) through PQunescapeBytea, into copies the result owns so that
 * the caller never frees them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "data/pg/pg_internal.h"

struct bytea_buf {
    struct bytea_buf *next;
    unsigned char *data;            /* from PQunescapeBytea: PQfreemem */
};

int tern__pg_result_wrap(PGresult *res, tern_pg_result **out)
{
    /* In the result's own storage (usually room left in a block libpq has
     * already allocated): no malloc and free per query, and PQclear frees
     * it with the rest. */
    tern_pg_result *r = PQresultAlloc(res, sizeof *r);
    if (!r) {
        PQclear(res);
        return -ENOMEM;
    }
    r->res = res;
    r->decoded = NULL;
    *out = r;
    return 0;
}

int tern_pg_result_rows(const tern_pg_result *r)
{
    TERN_CHECK_ARG(r);
    return PQntuples(r->res);
}

int tern_pg_result_cols(const tern_pg_result *r)
{
    TERN_CHECK_ARG(r);
    return PQnfields(r->res);
}

const char *tern_pg_result_col_name(const tern_pg_result *r, int col)
{
    TERN_CHECK_ARG(r);
    const char *n = PQfname(r->res, col);
    return n ? n : "";
}

int tern_pg_result_col_index(const tern_pg_result *r, const char *name)
{
    TERN_CHECK_ARG(r);
    TERN_CHECK_ARG(name);
    int i = PQfnumber(r->res, name);
    return i < 0 ? -ENOENT : i;
}

static bool in_range(const tern_pg_result *r, int row, int col)
{
    return row >= 0 && col >= 0 && row < PQntuples(r->res) && col < PQnfields(r->res);
}

bool tern_pg_result_is_null(const tern_pg_result *r, int row, int col)
{
    TERN_CHECK_ARG(r);
    return !in_range(r, row, col) || PQgetisnull(r->res, row, col);
}

const char *tern_pg_result_text(const tern_pg_result *r, int row, int col)
{
    TERN_CHECK_ARG(r);
    return in_range(r, row, col) ? PQgetvalue(r->res, row, col) : "";
}

/* The cell's text, or why there is none. */
static int cell(const tern_pg_result *r, int row, int col, const char **v)
{
    TERN_CHECK_ARG(r);
    if (!in_range(r, row, col))
        return -ERANGE;
    if (PQgetisnull(r->res, row, col))
        return -ENODATA;
    if (PQfformat(r->res, col) != 0)
        return -EINVAL;         /* binary results are not requested */
    *v = PQgetvalue(r->res, row, col);
    return 0;
}

int tern_pg_result_int64(const tern_pg_result *r, int row, int col, int64_t *out)
{
    TERN_CHECK_ARG(out);
    const char *v;
    int rc = cell(r, row, col, &v);
    if (rc < 0)
        return rc;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    if (end == v || *end)
        return -EINVAL;
    *out = x;
    return 0;
}

int tern_pg_result_double(const tern_pg_result *r, int row, int col, double *out)
{
    TERN_CHECK_ARG(out);
    const char *v;
    int rc = cell(r, row, col, &v);
    if (rc < 0)
        return rc;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end)
        return -EINVAL;
    if (errno == ERANGE && (x > 1 || x < -1))
        return -ERANGE;         /* overflow; underflow to a denormal is fine */
    *out = x;
    return 0;
}

int tern_pg_result_bool(const tern_pg_result *r, int row, int col, bool *out)
{
    TERN_CHECK_ARG(out);
    const char *v;
    int rc = cell(r, row, col, &v);
    if (rc < 0)
        return rc;
    if (strcmp(v, "t") == 0)
        *out = true;
    else if (strcmp(v, "f") == 0)
        *out = false;
    else
        return -EINVAL;
    return 0;
}

int tern_pg_result_bytea(tern_pg_result *r, int row, int col, const uint8_t **data, size_t *len)
{
    TERN_CHECK_ARG(data);
    TERN_CHECK_ARG(len);
    const char *v;
    int rc = cell(r, row, col, &v);
    if (rc < 0)
        return rc;
    if (strncmp(v, "\\x", 2) != 0)
        return -EINVAL;         /* only the hex form: bytea_output = escape is not read */
    struct bytea_buf *b = malloc(sizeof *b);
    if (!b)
        return -ENOMEM;
    size_t n;
    b->data = PQunescapeBytea((const unsigned char *)v, &n);
    if (!b->data) {
        free(b);
        return -ENOMEM;
    }
    b->next = r->decoded;
    r->decoded = b;
    *data = b->data;
    *len = n;
    return 0;
}

const char *tern_pg_result_cmd_tag(const tern_pg_result *r)
{
    TERN_CHECK_ARG(r);
    return PQcmdStatus(r->res);
}

int64_t tern_pg_result_affected(const tern_pg_result *r)
{
    TERN_CHECK_ARG(r);
    const char *t = PQcmdTuples(r->res);
    return t[0] ? strtoll(t, NULL, 10) : 0;
}

void tern_pg_result_free(tern_pg_result *r)
{
    if (!r)
        return;
    while (r->decoded) {
        struct bytea_buf *b = r->decoded;
        r->decoded = b->next;
        PQfreemem(b->data);
        free(b);
    }
    PQclear(r->res);            /* frees r too (PQresultAlloc) */
}
