/* TEMPORARY (helper A's own tests until auth.c, limit.c, transcode.c and
 * aggregate.c land): every policy refuses to be built.  Delete before
 * merging. */
#include "gateway/policy.h"

int tern__gw_auth_new(const json_t *cfg, const tern__gw_env *env, tern__gw_auth **out, char *err, size_t errlen)
{ (void)cfg; (void)env; (void)err; (void)errlen; *out = NULL; return -ENOTSUP; }
void tern__gw_auth_free(tern__gw_auth *a) { (void)a; }
int tern__gw_auth_check(tern__gw_auth *a, tern_http_req *r, tern__gw_fwd *fwd, const char **subject, const char **why)
{ (void)a; (void)r; (void)fwd; (void)subject; *why = "stub"; return -EACCES; }
int tern__gw_limit_new(const json_t *cfg, const tern__gw_env *env, tern__gw_limit **out, char *err, size_t errlen)
{ (void)cfg; (void)env; (void)err; (void)errlen; *out = NULL; return -ENOTSUP; }
void tern__gw_limit_free(tern__gw_limit *l) { (void)l; }
int tern__gw_limit_take(tern__gw_limit *l, tern_http_req *r, const char *subject, int64_t *retry_after, tern_ctx *ctx)
{ (void)l; (void)r; (void)subject; (void)ctx; *retry_after = 0; return 0; }
int tern__gw_transcode_new(const json_t *route, const tern__gw_env *env, tern__gw_transcode **out, char *err, size_t errlen)
{ (void)route; (void)env; (void)err; (void)errlen; *out = NULL; return -ENOTSUP; }
void tern__gw_transcode_free(tern__gw_transcode *t) { (void)t; }
int tern__gw_transcode_serve(tern__gw_transcode *t, tern_http_req *r, tern_http_resp *w, const tern__gw_fwd *fwd, tern_ctx *ctx)
{ (void)t; (void)r; (void)fwd; (void)ctx; return tern_http_resp_error(w, 501, NULL); }
int tern__gw_aggregate_new(const json_t *route, const tern__gw_env *env, tern__gw_aggregate **out, char *err, size_t errlen)
{ (void)route; (void)env; (void)err; (void)errlen; *out = NULL; return -ENOTSUP; }
void tern__gw_aggregate_free(tern__gw_aggregate *a) { (void)a; }
int tern__gw_aggregate_serve(tern__gw_aggregate *a, tern_http_req *r, tern_http_resp *w, const tern__gw_fwd *fwd, tern_ctx *ctx)
{ (void)a; (void)r; (void)fwd; (void)ctx; return tern_http_resp_error(w, 501, NULL); }
