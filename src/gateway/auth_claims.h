/*
 * auth_claims.h - a verified token's claims for the later policies of the
 * same request: a rate limit keyed by "claim:<name>" (limit.c) reads the
 * claim the JWT policy (auth.c) verified.  policy.h hands the limiter only
 * the subject; any other claim goes through here.
 *
 * auth.c keeps the claims (as JSON text in the request's memory) only
 * once some limiter has asked for them (tern__gw_auth_want_claims), so
 * routes that key by sub, IP or header pay nothing for it.
 */
#ifndef TERN_GATEWAY_AUTH_CLAIMS_H
#define TERN_GATEWAY_AUTH_CLAIMS_H

#include <stddef.h>

#include "tern/http.h"

/* From now on, requests whose token verifies keep their claims.  Any
 * thread; never undone. */
void tern__gw_auth_want_claims(void);
/* The claim name of r's verified token as text (a string as it is, other
 * values as compact JSON), cut to len - 1 bytes: 0, or -ENOENT when r
 * had no verified token (or claims were not wanted then), or the claim
 * is absent or null. */
int tern__gw_auth_claim(tern_http_req *r, const char *name, char *buf, size_t len);

#endif
