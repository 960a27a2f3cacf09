/*
 * json_internal.h - what the JSON mapping's encoder (json_encode.c) and
 * decoder (json_decode.c) share: a field's JSON name, whether a repeated
 * field is a map, the size of one value of a field's type, and the
 * well-known types' own forms (json_wkt.c).
 */
#ifndef TERN_GRPC_JSON_INTERNAL_H
#define TERN_GRPC_JSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "tern/grpc_json.h"

/* protoc's ToJsonName: underscores dropped, the letter after one
 * upper-cased ("unit_price" -> "unitPrice").  Writes at most cap bytes
 * with the NUL; returns the name's length (truncated when >= cap). */
size_t tern__grpc_json_name(const char *proto_name, char *out, size_t cap);

/* A map<K, V> field: protoc makes it a repeated message field whose type
 * is the nested "<CamelName>Entry" with exactly key = 1 and value = 2
 * (protobuf-c keeps no map flag, so this is recognised by that shape). */
bool tern__grpc_json_is_map(const ProtobufCFieldDescriptor *f);

/* Bytes one value of f's type takes in a message or a repeated array. */
size_t tern__grpc_json_value_size(const ProtobufCFieldDescriptor *f);

/* The well-known types with a JSON form of their own (json_wkt.c). */
typedef enum tern__grpc_wkt {
    TERN__GRPC_WKT_NONE,
    TERN__GRPC_WKT_TIMESTAMP,                   /* "2026-12-05T21:30:00.250Z" */
    TERN__GRPC_WKT_DURATION,                    /* "1.500s" */
    TERN__GRPC_WKT_WRAPPER,                     /* Int64Value and co.: the bare value */
} tern__grpc_wkt;
tern__grpc_wkt tern__grpc_json_wkt(const ProtobufCMessageDescriptor *d);
/* m (of that kind) as JSON: 0, -EINVAL (a Timestamp or Duration out of
 * the spec's range), -ENOMEM. */
int tern__grpc_json_wkt_encode(const ProtobufCMessage *m, tern__grpc_wkt kind, json_t **out);
/* A Timestamp or Duration from its string into m (initialised): 0, or
 * -EINVAL with *why (static text).  Wrappers are the decoder's (a value
 * of the wrapped field's type). */
int tern__grpc_json_wkt_decode(const json_t *in, tern__grpc_wkt kind, ProtobufCMessage *m, const char **why);
int tern__grpc_json_timestamp_parse(const char *s, int64_t *sec, int32_t *nanos);
int tern__grpc_json_duration_parse(const char *s, int64_t *sec, int32_t *nanos);
/* One value of f's type at slot as JSON (json_encode.c); NULL: no memory. */
json_t *tern__grpc_json_encode_value(const ProtobufCFieldDescriptor *f, const void *slot);

#endif
