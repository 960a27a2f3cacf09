/*
 * fuzz_grpc_json.c - libFuzzer target for gRPC's JSON mapping
 * (src/grpc/json_decode.c, json_encode.c): the input, parsed by jansson,
 * decoded into terntest.json.v1.All (tests/grpc_json/json_test.proto:
 * every scalar type, enums, bytes, nested and recursive messages, maps, a
 * oneof).
 *
 * Beyond "no crash, no leak": a refusal says why in a C string within its
 * buffer; a message that decodes packs and unpacks with protobuf-c; and
 * the mapping is a fixed point after one trip: the JSON of the message
 * decodes again, and that message's JSON is the same (the first trip may
 * normalise: "01" and "1" are one map key, 1.0 an integer).  The input
 * is also read as a Timestamp's and a Duration's text (json_wkt.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/grpc_json.h>

#include "grpc/json_internal.h"

#include "json_test.pb-c.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void packs(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    check(buf != NULL);
    check(protobuf_c_message_pack(m, buf) == n);
    ProtobufCMessage *back = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    check(back != NULL);
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
}

/* The input as a Timestamp's and a Duration's text: what parses is in the
 * spec's range, nanos within a second and of the seconds' sign. */
static void wkt_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    check(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t sec;
    int32_t ns;
    if (tern__grpc_json_timestamp_parse(s, &sec, &ns) == 0)
        check(sec >= -62135596800LL && sec <= 253402300799LL && ns >= 0 && ns <= 999999999);
    if (tern__grpc_json_duration_parse(s, &sec, &ns) == 0)
        check(sec >= -315576000000LL && sec <= 315576000000LL && ns >= -999999999 && ns <= 999999999 &&
              !(sec > 0 && ns < 0) && !(sec < 0 && ns > 0));
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wkt_text(data, size);
    json_t *in = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    if (!in)
        return 0;
    const ProtobufCMessageDescriptor *d = &terntest__json__v1__all__descriptor;
    ProtobufCMessage *m = NULL;
    char err[128];
    memset(err, 'x', sizeof err);
    int rc = tern_grpc_json_to_message(d, in, &m, err, sizeof err);
    json_decref(in);
    if (rc < 0) {
        check(rc == -EINVAL && m == NULL);
        check(memchr(err, 0, sizeof err) != NULL && err[0] != '\0');
        return 0;
    }
    packs(m);
    json_t *j1 = NULL, *j2 = NULL;
    check(tern_grpc_json_from_message(m, &j1) == 0);
    ProtobufCMessage *m2 = NULL;
    rc = tern_grpc_json_to_message(d, j1, &m2, err, sizeof err);
    check(rc == 0);
    check(tern_grpc_json_from_message(m2, &j2) == 0);
    check(json_equal(j1, j2));
    char *text = json_dumps(j1, 0);     /* what the gateway would send: always valid JSON */
    check(text != NULL);
    free(text);
    json_decref(j1);
    json_decref(j2);
    protobuf_c_message_free_unpacked(m, NULL);
    protobuf_c_message_free_unpacked(m2, NULL);
    return 0;
}
