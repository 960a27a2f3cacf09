/*
 * tern/grpc_json.h - protobuf messages as JSON (proto3's JSON mapping) and
 * a process-wide registry of gRPC services, so that a program holding no
 * generated code for a method (the gateway's REST -> gRPC transcoding) can
 * find the method's descriptors by name and turn JSON into its request and
 * its response into JSON.
 *
 *     tern_grpc_json_register(&shop_catalog_v1_catalog_desc);   // generated
 *     const tern_grpc_method_desc *m;
 *     tern_grpc_json_find("shop.catalog.v1.Catalog/GetProduct", &m);
 *     ProtobufCMessage *req;
 *     char err[200];
 *     if (tern_grpc_json_to_message(m->input, body, &req, err, sizeof err) < 0)
 *         answer 400 with err;
 *     ... tern_grpc_unary(ch, m, req, &resp, NULL, &st, ctx) ...
 *     json_t *out;
 *     tern_grpc_json_from_message(resp, &out);
 *
 * The mapping (protobuf.dev/programming-guides/json), on protobuf-c's
 * descriptors:
 *   - field names: lowerCamelCase on output ("unit_price" -> "unitPrice");
 *     input accepts that and the name in the .proto
 *   - int64, uint64, sint64, fixed64, sfixed64: decimal strings on output;
 *     input accepts strings and JSON numbers (integral, in range)
 *   - 32-bit integers and floating point: numbers (input accepts them as
 *     strings too); NaN and infinities as "NaN", "Infinity", "-Infinity"
 *   - bool: true/false; string: string; bytes: base64 (padded on output;
 *     input standard or URL-safe, padded or not)
 *   - enums by value name (input accepts the number too; unknown numbers
 *     come out as numbers)
 *   - nested messages as objects, repeated fields as arrays, maps (the
 *     map<K, V> fields protoc makes into repeated KEntry messages) as
 *     objects whose keys are the map keys as strings
 *   - oneof: the field that is set; input with two members of one oneof
 *     is an error
 *   - output leaves out fields holding their default (0, "", false, empty,
 *     the first enum value, an unset message) unless the field tracks
 *     presence (a oneof member, proto2 optional);
 *     input null means "the default"
 *   - well-known types: google.protobuf.Timestamp as an RFC 3339 string
 *     in UTC ("2026-12-05T21:30:00.250Z"; input with any offset),
 *     Duration as "1.500s", the wrappers (Int64Value, StringValue, ...)
 *     as their bare value; the others (Struct, Value, Any, FieldMask)
 *     as the plain messages they are
 *
 * Errors name the field by its path from the top message
 * ("items[2].quantity: expected an integer, got a string"): an unknown
 * field, a value of the wrong type or out of range, a bad base64 string,
 * an unknown enum name, nesting deeper than TERN_GRPC_JSON_MAX_DEPTH.
 *
 * Threads: every function may be called from any thread or coroutine; the
 * registry is locked inside.  None of them blocks.
 */
#ifndef TERN_GRPC_JSON_H
#define TERN_GRPC_JSON_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "tern/grpc.h"      /* and through tern/http.h, json_t (include <jansson.h> to use it) */

#ifdef __cplusplus
extern "C" {
#endif

/* Nested messages (and maps of messages) deeper than this are refused, so
 * a recursive message type cannot exhaust a coroutine's stack. */
#define TERN_GRPC_JSON_MAX_DEPTH 64

/* Add a service's methods to the process-wide registry.  svc is borrowed
 * for the life of the process (generated descs are static data).
 * Idempotent: registering a service of a name already registered is 0 and
 * keeps the first.  0, -EINVAL (NULL, or no name), -ENOMEM. */
int tern_grpc_json_register(const tern_grpc_service_desc *svc);

/* The registered method "pkg.Svc/Method" (or its path, "/pkg.Svc/Method").
 * 0 with *out (the registered desc's own entry), -ENOENT, -EINVAL. */
int tern_grpc_json_find(const char *method, const tern_grpc_method_desc **out);

/* JSON (an object; for a wrapper, Timestamp or Duration, its value) into
 * a new message of type d.  0 with *out, which the
 * caller frees with protobuf_c_message_free_unpacked(*out, NULL); -EINVAL
 * with a sentence naming the field in err (errlen bytes, may be 0) when
 * the JSON does not fit the message; -ENOMEM. */
int tern_grpc_json_to_message(const ProtobufCMessageDescriptor *d, const json_t *in, ProtobufCMessage **out,
                              char *err, size_t errlen);

/* A message as JSON (a new object, the caller's: json_decref; for a
 * wrapper, Timestamp or Duration at the top, its value).  0, -EINVAL (a
 * message nested deeper than TERN_GRPC_JSON_MAX_DEPTH, a Timestamp or
 * Duration outside the spec's range), -ENOMEM. */
int tern_grpc_json_from_message(const ProtobufCMessage *m, json_t **out);

#ifdef __cplusplus
}
#endif
#endif
