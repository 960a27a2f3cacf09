/*
 * auth_cfg.h - reading the policies' configuration sections (auth.c's
 * "jwt", limit.c's "ratelimit"): durations in the schema's two spellings,
 * error sentences that name the key, and unknown keys refused (a typo in
 * a security setting must not pass silently as "not configured").
 */
#ifndef TERN_GATEWAY_AUTH_CFG_H
#define TERN_GATEWAY_AUTH_CFG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A duration: a JSON integer (ns) or a string in Go's syntax ("250ms",
 * "1m30s", "1.5s"; units ns us ms s m h).  0 with *ns, -EINVAL. */
int tern__gw_policy_duration(const json_t *v, int64_t *ns);
/* Write the sentence into err (errlen bytes, may be 0); returns -EINVAL. */
int tern__gw_policy_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 0 if obj is an object whose keys are all in allowed (NULL-terminated);
 * else -EINVAL with "<section>: ..." in err. */
int tern__gw_policy_keys(const json_t *obj, const char *section, const char *const *allowed,
                         char *err, size_t errlen);

#endif
