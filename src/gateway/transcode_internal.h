/*
 * transcode_internal.h - what transcode.c and aggregate.c share
 * (transcode_call.c): a route's path parameter names, an HTTP request
 * turned into a gRPC request message, one unary call with the forwarded
 * headers and the trace as metadata, and gRPC codes as HTTP statuses.
 */
#ifndef TERN_GATEWAY_TRANSCODE_INTERNAL_H
#define TERN_GATEWAY_TRANSCODE_INTERNAL_H

#include <jansson.h>

#include "gateway/policy.h"
#include "tern/grpc_json.h"
#include "tern/trace.h"

/* The ":name" and "*name" segments of the route's match.path, in order
 * (a NULL-terminated malloc'd array of malloc'd names; *out NULL when the
 * route has none).  0 or -ENOMEM. */
int tern__gw_tc_param_names(const json_t *route, char ***out);
void tern__gw_tc_names_free(char **names);

/* Set one request field from text (a path parameter or a query value):
 * name is a field of d, or a dotted path through nested messages
 * ("item.id"); the text becomes the JSON value the field's type wants
 * (true/false for bool, a number for a numeric enum, a string otherwise);
 * a repeated field collects every value given.  0; -ENOENT when no field
 * has that name; -ENOMEM. */
int tern__gw_tc_put(const ProtobufCMessageDescriptor *d, json_t *obj, const char *name, const char *text);

/* The request message for m from r: the JSON body when with_body (and
 * not empty), then the query's parameters that name fields, then the
 * path parameters (names).  0 with *out (the caller's:
 * protobuf_c_message_free_unpacked); -EINVAL with why in err (400);
 * -EMSGSIZE (413) and the body's other errors; -ENOMEM. */
int tern__gw_tc_request(const tern_grpc_method_desc *m, tern_http_req *r, char *const *names, bool with_body,
                        ProtobufCMessage **out, char *err, size_t errlen);

/* What a call sends as metadata: fwd's pairs, the trace (the span in ctx
 * or the coroutine's current one, else the client's traceparent and
 * tracestate), and the client's own headers of TERN__GW_TC_PASS (the
 * services read an Idempotency-Key as metadata), NULL-terminated in kv.
 * No other client header passes: services trust metadata such as
 * x-user-id because only the gateway (auth's fwd) sets it.  Made in the
 * request's coroutine (the current span is per coroutine), used by the
 * calls it starts; kv may point into tp, so the struct stays put. */
#define TERN__GW_TC_PASS {"idempotency-key", "x-request-id"}
typedef struct tern__gw_tc_md {
    const char *kv[2 * (TERN__GW_FWD_MAX + 2 + 2) + 1];
    char tp[TERN_TRACE_PARENT_LEN + 1];
} tern__gw_tc_md;
void tern__gw_tc_metadata(tern_http_req *r, const tern__gw_fwd *fwd, tern__gw_tc_md *md, tern_ctx *ctx);

/* Call m on ch with req and the metadata md->kv.  0 with *resp as JSON
 * (the caller's); or the call's -errno with *code and *msg (malloc'd, or
 * NULL) saying why. */
int tern__gw_tc_call(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                     const tern__gw_tc_md *md, json_t **resp, tern_grpc_code *code, char **msg, tern_ctx *ctx);

/* google.rpc's HTTP status for a gRPC code (NOT_FOUND 404, ...). */
int tern__gw_tc_http_status(tern_grpc_code code);

/* {"error": msg, "status": status, "code": code's name}; 0 or -errno. */
int tern__gw_tc_error(tern_http_resp *w, int status, tern_grpc_code code, const char *msg);

#endif
