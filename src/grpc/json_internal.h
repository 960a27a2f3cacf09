/*
 * json_internal.h - what the JSON mapping's encoder (json_encode.c) and
 * decoder (json_decode.c) share: a field's JSON name, whether a repeated
 * field is a map, and the size of one value of a field's type.
 */
#ifndef TERN_GRPC_JSON_INTERNAL_H
#define TERN_GRPC_JSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
