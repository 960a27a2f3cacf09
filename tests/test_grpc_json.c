/*
 * test_grpc_json.c - tern/grpc_json.h: proto3's JSON mapping on protoc-c's
 * messages (tests/grpc_json/json_test.proto: every scalar type, enums,
 * bytes, nested and repeated messages, maps, a oneof),
 * both ways and through the binary format in between, the errors that
 * name the field, and the process-wide method registry.
 */
#include "check.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <tern/grpc_json.h>

#include "json_test.pb-c.h"
#include "json_wkt_test.pb-c.h"

typedef Terntest__Json__V1__All All;
#define ALL_D (&terntest__json__v1__all__descriptor)

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    if (!j)
        fprintf(stderr, "bad test JSON: %s: %s\n", text, je.text);
    CHECK(j != NULL);
    return j;
}

/* text -> All, or abort with the mapping's error */
static All *decode(const char *text)
{
    json_t *j = parse(text);
    ProtobufCMessage *m = NULL;
    char err[256];
    int rc = tern_grpc_json_to_message(ALL_D, j, &m, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "decode %s: %d %s\n", text, rc, err);
    CHECK_EQ(rc, 0);
    json_decref(j);
    return (All *)m;
}

/* The error decoding text gives (-EINVAL expected), into err. */
static void decode_fails(const char *text, const char *want)
{
    json_t *j = parse(text);
    ProtobufCMessage *m = (ProtobufCMessage *)1;
    char err[256];
    CHECK_EQ(tern_grpc_json_to_message(ALL_D, j, &m, err, sizeof err), -EINVAL);
    CHECK(m == (ProtobufCMessage *)1);            /* *out untouched on failure */
    if (strcmp(err, want) != 0) {
        fprintf(stderr, "decoding %s\n  error: %s\n  wanted: %s\n", text, err, want);
        abort();
    }
    json_decref(j);
}

/* m as compact JSON with sorted keys (malloc'd) */
static char *encode(const ProtobufCMessage *m)
{
    json_t *j = NULL;
    CHECK_EQ(tern_grpc_json_from_message(m, &j), 0);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(s != NULL);
    json_decref(j);
    return s;
}

static void expect_json(const ProtobufCMessage *m, const char *want)
{
    char *got = encode(m);
    json_t *a = parse(got), *b = parse(want);
    if (!json_equal(a, b)) {
        fprintf(stderr, "JSON\n  got:    %s\n  wanted: %s\n", got, want);
        abort();
    }
    json_decref(a);
    json_decref(b);
    free(got);
}

/* m packed and unpacked again (the decoder's message is one protobuf-c
 * can pack, and nothing is lost in the binary form) */
static All *through_the_wire(const All *m)
{
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    uint8_t *buf = malloc(n ? n : 1);
    CHECK(buf != NULL);
    CHECK_EQ(protobuf_c_message_pack(&m->base, buf), n);
    All *back = terntest__json__v1__all__unpack(NULL, n, buf);
    CHECK(back != NULL);
    free(buf);
    return back;
}

static const char every_field[] =
    "{\"i32\": -5, \"s32\": -6, \"sf32\": 7, \"u32\": 4000000000, \"f32\": 9,"
    " \"i64\": \"-9223372036854775808\", \"s64\": -12, \"sf64\": \"13\","
    " \"u64\": \"18446744073709551615\", \"f64\": 15,"
    " \"fl\": 1.5, \"db\": -0.25, \"flag\": true, \"unitPriceText\": \"caf\\u00e9\","
    " \"blob\": \"AAECAw==\", \"color\": \"GREEN\", \"inner\": {\"text\": \"in\", \"n\": 3,"
    " \"children\": [{\"n\": 1}, {\"text\": \"deep\"}]},"
    " \"ids\": [\"1\", 2, \"-3\"], \"tags\": [\"a\", \"b\"], \"items\": [{\"n\": 1}, {}],"
    " \"colors\": [\"RED\", 2, 0], \"blobs\": [\"\", \"/w==\"],"
    " \"counts\": {\"x\": 1, \"y\": -2}, \"byId\": {\"7\": {\"text\": \"seven\"}, \"-1\": {}},"
    " \"flags\": {\"true\": \"yes\", \"false\": \"no\"}, \"name\": \"nm\","
    " \"ratios\": [0.5, \"NaN\", \"Infinity\", \"-Infinity\", \"2.5\"]}";

static void every_kind_of_field_decodes(void)
{
    All *m = decode(every_field);
    CHECK_EQ(m->i32, -5);
    CHECK_EQ(m->s32, -6);
    CHECK_EQ(m->sf32, 7);
    CHECK(m->u32 == 4000000000u);
    CHECK_EQ(m->f32, 9);
    CHECK(m->i64 == INT64_MIN);
    CHECK_EQ(m->s64, -12);
    CHECK_EQ(m->sf64, 13);
    CHECK(m->u64 == UINT64_MAX);
    CHECK_EQ(m->f64, 15);
    CHECK(m->fl == 1.5f && m->db == -0.25 && m->flag);
    CHECK(!strcmp(m->unit_price_text, "caf\xc3\xa9"));
    CHECK(m->blob.len == 4 && !memcmp(m->blob.data, "\0\1\2\3", 4));
    CHECK_EQ(m->color, TERNTEST__JSON__V1__COLOR__GREEN);
    CHECK(m->inner && !strcmp(m->inner->text, "in") && m->inner->n == 3);
    CHECK(m->inner->n_children == 2 && m->inner->children[0]->n == 1);
    CHECK(!strcmp(m->inner->children[1]->text, "deep"));
    CHECK(m->n_ids == 3 && m->ids[0] == 1 && m->ids[1] == 2 && m->ids[2] == -3);
    CHECK(m->n_tags == 2 && !strcmp(m->tags[1], "b"));
    CHECK(m->n_items == 2 && m->items[1] != NULL && m->items[1]->n == 0);
    CHECK(m->n_colors == 3 && m->colors[0] == 1 && m->colors[1] == 2 && m->colors[2] == 0);
    CHECK(m->n_blobs == 2 && m->blobs[0].len == 0 && m->blobs[1].len == 1 && m->blobs[1].data[0] == 0xff);
    CHECK_EQ(m->n_counts, 2);
    CHECK_EQ(m->n_by_id, 2);
    for (size_t i = 0; i < m->n_by_id; i++)
        CHECK(m->by_id[i]->key == 7 ? !strcmp(m->by_id[i]->value->text, "seven") : m->by_id[i]->key == -1);
    CHECK_EQ(m->n_flags, 2);
    for (size_t i = 0; i < m->n_flags; i++)
        CHECK(!strcmp(m->flags[i]->value, m->flags[i]->key ? "yes" : "no"));
    CHECK_EQ(m->choice_case, TERNTEST__JSON__V1__ALL__CHOICE_NAME);
    CHECK(!strcmp(m->name, "nm"));
    CHECK_EQ(m->n_ratios, 5);
    CHECK(m->ratios[0] == 0.5 && isnan(m->ratios[1]) && m->ratios[2] == INFINITY);
    CHECK(m->ratios[3] == -INFINITY && m->ratios[4] == 2.5);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void every_kind_of_field_round_trips(void)
{
    All *m = decode(every_field);
    All *back = through_the_wire(m);
    /* 64-bit integers as strings, the rest as numbers, bytes padded */
    static const char want[] =
        "{\"i32\": -5, \"s32\": -6, \"sf32\": 7, \"u32\": 4000000000, \"f32\": 9,"
        " \"i64\": \"-9223372036854775808\", \"s64\": \"-12\", \"sf64\": \"13\","
        " \"u64\": \"18446744073709551615\", \"f64\": \"15\","
        " \"fl\": 1.5, \"db\": -0.25, \"flag\": true, \"unitPriceText\": \"caf\\u00e9\","
        " \"blob\": \"AAECAw==\", \"color\": \"GREEN\", \"inner\": {\"text\": \"in\", \"n\": 3,"
        " \"children\": [{\"n\": 1}, {\"text\": \"deep\"}]},"
        " \"ids\": [\"1\", \"2\", \"-3\"], \"tags\": [\"a\", \"b\"], \"items\": [{\"n\": 1}, {}],"
        " \"colors\": [\"RED\", \"GREEN\", \"COLOR_UNSPECIFIED\"], \"blobs\": [\"\", \"/w==\"],"
        " \"counts\": {\"x\": 1, \"y\": -2}, \"byId\": {\"7\": {\"text\": \"seven\"}, \"-1\": {}},"
        " \"flags\": {\"true\": \"yes\", \"false\": \"no\"}, \"name\": \"nm\","
        " \"ratios\": [0.5, \"NaN\", \"Infinity\", \"-Infinity\", 2.5]}";
    expect_json(&m->base, want);
    expect_json(&back->base, want);
    /* and what came out decodes to the same message again (in the
     * output's order: map entries keep theirs, JSON objects being ordered
     * in jansson) */
    json_t *j;
    CHECK_EQ(tern_grpc_json_from_message(&back->base, &j), 0);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    All *again = decode(text);
    free(text);
    size_t n1 = protobuf_c_message_get_packed_size(&m->base);
    size_t n2 = protobuf_c_message_get_packed_size(&again->base);
    CHECK_EQ(n1, n2);
    uint8_t *b1 = malloc(n1), *b2 = malloc(n2);
    protobuf_c_message_pack(&m->base, b1);
    protobuf_c_message_pack(&again->base, b2);
    CHECK(!memcmp(b1, b2, n1));
    free(b1);
    free(b2);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    protobuf_c_message_free_unpacked(&again->base, NULL);
}

static void defaults_are_left_out(void)
{
    All *m = decode("{}");
    expect_json(&m->base, "{}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* zero values given explicitly are still defaults; null is the default */
    m = decode("{\"i32\": 0, \"i64\": \"0\", \"unitPriceText\": \"\", \"flag\": false, \"color\": "
               "\"COLOR_UNSPECIFIED\", \"blob\": \"\", \"tags\": [], \"counts\": {}, \"db\": 0,"
               " \"inner\": null, \"fl\": null, \"ids\": null}");
    expect_json(&m->base, "{}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* a float is written as the shortest decimal that reads back as it */
    m = decode("{\"fl\": 0.1, \"db\": 0.1}");
    json_t *fj;
    CHECK_EQ(tern_grpc_json_from_message(&m->base, &fj), 0);
    CHECK(json_real_value(json_object_get(fj, "fl")) == 0.1);
    CHECK((float)json_real_value(json_object_get(fj, "fl")) == 0.1f);
    json_decref(fj);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* -0.0 is not the default 0 (the binary format keeps it too) */
    m = decode("{\"db\": -0.0}");
    char *s = encode(&m->base);
    CHECK(!strcmp(s, "{\"db\":-0.0}"));
    free(s);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* an empty message is shown (presence), as is a oneof member at its default */
    m = decode("{\"inner\": {}, \"number\": 0}");
    expect_json(&m->base, "{\"inner\": {}, \"number\": 0}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    m = decode("{\"detail\": {\"n\": 2}}");
    CHECK_EQ(m->choice_case, TERNTEST__JSON__V1__ALL__CHOICE_DETAIL);
    expect_json(&m->base, "{\"detail\": {\"n\": 2}}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void names_in_camel_case_or_as_in_the_proto(void)
{
    All *m = decode("{\"unit_price_text\": \"p\", \"by_id\": {\"1\": {\"n\": 1}}}");
    CHECK(!strcmp(m->unit_price_text, "p") && m->n_by_id == 1);
    expect_json(&m->base, "{\"unitPriceText\": \"p\", \"byId\": {\"1\": {\"n\": 1}}}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    decode_fails("{\"unit_price_text\": \"p\", \"unitPriceText\": \"q\"}",
                 "unitPriceText: given twice (by its JSON and its proto name)");
}

static void integers_as_numbers_or_strings(void)
{
    All *m = decode("{\"i32\": \"-2147483648\", \"u32\": \"4294967295\", \"i64\": 9007199254740993,"
                    " \"u64\": 1e3, \"sf64\": -2.0, \"f32\": 7.0, \"fl\": \"-1.25\", \"db\": \"1e300\"}");
    CHECK(m->i32 == INT32_MIN && m->u32 == UINT32_MAX && m->i64 == 9007199254740993LL);
    CHECK(m->u64 == 1000 && m->sf64 == -2 && m->f32 == 7 && m->fl == -1.25f && m->db == 1e300);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    decode_fails("{\"i32\": 2147483648}", "i32: 2147483648 is out of range for a 32-bit integer");
    decode_fails("{\"u32\": -1}", "u32: -1 is out of range");
    decode_fails("{\"u64\": \"-1\"}", "u64: \"-1\" is out of range");
    decode_fails("{\"i64\": \"9223372036854775808\"}", "i64: \"9223372036854775808\" is out of range");
    decode_fails("{\"i64\": \"12abc\"}", "i64: \"12abc\" is not an integer");
    decode_fails("{\"i64\": \" 12\"}", "i64: \" 12\" is not an integer");
    decode_fails("{\"i32\": 1.5}", "i32: 1.5 is not an integer in range");
    decode_fails("{\"i32\": true}", "i32: expected an integer, got a boolean");
    decode_fails("{\"fl\": 1e300}", "fl: 1e+300 is out of range for a float");
    decode_fails("{\"db\": \"inf\"}", "db: \"inf\" is not a number");
    decode_fails("{\"db\": \"0x10\"}", "db: \"0x10\" is not a number");
    decode_fails("{\"db\": [1]}", "db: expected a number, got an array");
}

static void enums_bytes_strings_and_bools(void)
{
    All *m = decode("{\"color\": 1, \"colors\": [7], \"blob\": \"_-8\", \"blobs\": [\"AQ\"]}");
    CHECK_EQ(m->color, 1);
    CHECK_EQ(m->colors[0], 7);      /* open enum: an unknown number is kept ... */
    CHECK(m->blob.len == 2 && m->blob.data[0] == 0xff && m->blob.data[1] == 0xef);
    CHECK(m->blobs[0].len == 1 && m->blobs[0].data[0] == 1);
    expect_json(&m->base, "{\"color\": \"RED\", \"colors\": [7], \"blob\": \"/+8=\", \"blobs\": [\"AQ==\"]}");
    protobuf_c_message_free_unpacked(&m->base, NULL);   /* ... and comes out as a number */
    decode_fails("{\"color\": \"BLUE\"}", "color: \"BLUE\" is not a value of terntest.json.v1.Color");
    decode_fails("{\"color\": true}", "color: expected an enum name or number, got a boolean");
    decode_fails("{\"blob\": \"a\"}", "blob: not base64");
    decode_fails("{\"blob\": \"ab!c\"}", "blob: not base64");
    decode_fails("{\"blob\": 5}", "blob: expected a base64 string, got an integer");
    decode_fails("{\"unitPriceText\": 5}", "unitPriceText: expected a string, got an integer");
    decode_fails("{\"unitPriceText\": \"a\\u0000b\"}", "unitPriceText: a string with a NUL character");
    decode_fails("{\"flag\": \"true\"}", "flag: expected a boolean, got a string");
    /* bytes that are not UTF-8 in a string field: U+FFFD in the output,
     * which stays valid JSON */
    All *bad = calloc(1, sizeof *bad);
    terntest__json__v1__all__init(bad);
    bad->unit_price_text = (char *)"ok\xff\xc3(\xed\xa0\x80z";
    json_t *j;
    CHECK_EQ(tern_grpc_json_from_message(&bad->base, &j), 0);
    CHECK(!strcmp(json_string_value(json_object_get(j, "unitPriceText")),
                  "ok\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz"));
    char *s = json_dumps(j, 0);
    CHECK(s != NULL);
    free(s);
    json_decref(j);
    free(bad);
}

static void maps_repeated_and_oneof_errors_name_the_field(void)
{
    decode_fails("{\"bogus\": 1}", "bogus: no such field in terntest.json.v1.All");
    decode_fails("{\"items\": [{}, {\"n\": 1, \"nope\": 2}]}", "items[1].nope: no such field in terntest.json.v1.Inner");
    decode_fails("{\"inner\": {\"children\": [{\"n\": \"x\"}]}}", "inner.children[0].n: \"x\" is not an integer");
    decode_fails("{\"byId\": {\"7\": {\"n\": []}}}", "byId[\"7\"].n: expected an integer, got an array");
    decode_fails("{\"byId\": {\"seven\": {}}}", "byId[\"seven\"]: \"seven\" is not an integer");
    decode_fails("{\"flags\": {\"yes\": \"y\"}}", "flags[\"yes\"]: a map key must be \"true\" or \"false\"");
    decode_fails("{\"counts\": [1]}", "counts: expected an object (a map), got an array");
    decode_fails("{\"tags\": \"a\"}", "tags: expected an array, got a string");
    decode_fails("{\"tags\": [\"a\", null]}", "tags[1]: null in a repeated field");
    decode_fails("{\"items\": [null]}", "items[0]: null in a repeated field");
    decode_fails("{\"inner\": 3}", "inner: expected an object (terntest.json.v1.Inner), got an integer");
    decode_fails("{\"name\": \"a\", \"number\": 1}", "number: another field of its oneof is set already");
    /* null for a oneof member is "not set", so another may follow */
    All *m = decode("{\"name\": null, \"number\": 4}");
    CHECK(m->choice_case == TERNTEST__JSON__V1__ALL__CHOICE_NUMBER && m->number == 4);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* the top must be an object */
    json_t *arr = parse("[1]");
    ProtobufCMessage *out;
    char err[128];
    CHECK_EQ(tern_grpc_json_to_message(ALL_D, arr, &out, err, sizeof err), -EINVAL);
    CHECK(!strcmp(err, "expected an object (terntest.json.v1.All), got an array"));
    /* a zero-sized or NULL error buffer is fine */
    CHECK_EQ(tern_grpc_json_to_message(ALL_D, arr, &out, NULL, 0), -EINVAL);
    CHECK_EQ(tern_grpc_json_to_message(ALL_D, arr, &out, err, 0), -EINVAL);
    CHECK_EQ(tern_grpc_json_to_message(NULL, arr, &out, err, sizeof err), -EINVAL);
    json_decref(arr);
}

static void nesting_is_bounded(void)
{
    /* Inner is recursive: 64 levels decode, 65 do not */
    char buf[4096];
    for (int levels = TERN_GRPC_JSON_MAX_DEPTH; levels <= TERN_GRPC_JSON_MAX_DEPTH + 1; levels++) {
        size_t k = 0;
        k += (size_t)snprintf(buf + k, sizeof buf - k, "{\"inner\": ");
        for (int i = 2; i < levels; i++)    /* All is one level, inner another, ... */
            k += (size_t)snprintf(buf + k, sizeof buf - k, "{\"children\": [");
        k += (size_t)snprintf(buf + k, sizeof buf - k, "{}");
        for (int i = 2; i < levels; i++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "]}");
        snprintf(buf + k, sizeof buf - k, "}");
        json_t *j = parse(buf);
        ProtobufCMessage *m = NULL;
        char err[512];
        int rc = tern_grpc_json_to_message(ALL_D, j, &m, err, sizeof err);
        json_decref(j);
        if (levels == TERN_GRPC_JSON_MAX_DEPTH) {
            CHECK_EQ(rc, 0);
            json_t *o;
            CHECK_EQ(tern_grpc_json_from_message(m, &o), 0);
            json_decref(o);
            /* one more level by hand: the encoder refuses it */
            Terntest__Json__V1__Inner *leaf = ((All *)m)->inner;
            while (leaf->n_children)
                leaf = leaf->children[0];
            Terntest__Json__V1__Inner *extra = malloc(sizeof *extra);
            terntest__json__v1__inner__init(extra);
            leaf->children = malloc(sizeof *leaf->children);
            leaf->children[0] = extra;
            leaf->n_children = 1;
            CHECK_EQ(tern_grpc_json_from_message(m, &o), -EINVAL);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            CHECK_EQ(rc, -EINVAL);
            CHECK(strstr(err, "nested deeper than 64 messages") != NULL);
            CHECK(strncmp(err, "inner.children[0].children[0].", 30) == 0);
        }
    }
}

/* ---- well-known types -------------------------------------------------- */

typedef Terntest__Json__V1__Times Times;

static ProtobufCMessage *decode_as(const ProtobufCMessageDescriptor *d, const char *text)
{
    json_t *j = parse(text);
    ProtobufCMessage *m = NULL;
    char err[256];
    int rc = tern_grpc_json_to_message(d, j, &m, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "decode %s: %d %s\n", text, rc, err);
    CHECK_EQ(rc, 0);
    json_decref(j);
    return m;
}

static void decode_as_fails(const ProtobufCMessageDescriptor *d, const char *text, const char *want)
{
    json_t *j = parse(text);
    ProtobufCMessage *m = NULL;
    char err[256];
    CHECK_EQ(tern_grpc_json_to_message(d, j, &m, err, sizeof err), -EINVAL);
    if (strcmp(err, want) != 0) {
        fprintf(stderr, "decoding %s\n  error: %s\n  wanted: %s\n", text, err, want);
        abort();
    }
    json_decref(j);
}

#define TIMES_D (&terntest__json__v1__times__descriptor)

static void timestamps_durations_and_wrappers_have_their_own_forms(void)
{
    Times *t = (Times *)decode_as(TIMES_D,
        "{\"at\": \"2026-12-05T21:30:00.25Z\", \"took\": \"1.5s\", \"count\": \"7\", \"note\": \"hi\","
        " \"ok\": false, \"history\": [\"1970-01-01T00:00:00Z\", \"2000-02-29t12:00:00+01:00\"],"
        " \"budgets\": {\"a\": \"-0.5s\"}, \"ratio\": 0.5, \"raw\": \"AQI=\"}");
    CHECK(t->at->seconds == 1796506200 && t->at->nanos == 250000000);
    CHECK(t->took->seconds == 1 && t->took->nanos == 500000000);
    CHECK(t->count->value == 7 && !strcmp(t->note->value, "hi") && t->ok && !t->ok->value);
    CHECK(t->n_history == 2 && t->history[0]->seconds == 0 && t->history[1]->seconds == 951822000);
    CHECK(t->n_budgets == 1 && t->budgets[0]->value->seconds == 0 && t->budgets[0]->value->nanos == -500000000);
    CHECK(t->ratio->value == 0.5 && t->raw->value.len == 2);
    /* out in the canonical forms: 0, 3, 6 or 9 digits, UTC, "s" */
    expect_json(&t->base, "{\"at\": \"2026-12-05T21:30:00.250Z\", \"took\": \"1.500s\", \"count\": \"7\","
                          " \"note\": \"hi\", \"ok\": false, \"history\": [\"1970-01-01T00:00:00Z\","
                          " \"2000-02-29T11:00:00Z\"], \"budgets\": {\"a\": \"-0.500s\"}, \"ratio\": 0.5,"
                          " \"raw\": \"AQI=\"}");
    t->at->nanos = 1000;
    t->took->seconds = 0;
    t->took->nanos = -1;
    t->history[0]->seconds = -62135596800LL;        /* 0001-01-01 */
    t->history[0]->nanos = 1;
    t->history[1]->seconds = 253402300799LL;        /* 9999-12-31T23:59:59 */
    char *s = encode(&t->base);
    CHECK(strstr(s, "\"at\":\"2026-12-05T21:30:00.000001Z\"") && strstr(s, "\"took\":\"-0.000000001s\""));
    CHECK(strstr(s, "\"history\":[\"0001-01-01T00:00:00.000000001Z\",\"9999-12-31T23:59:59Z\"]"));
    free(s);
    /* outside the spec's range: refused, not written wrong */
    json_t *o;
    t->history[1]->seconds = 253402300800LL;
    CHECK_EQ(tern_grpc_json_from_message(&t->base, &o), -EINVAL);
    t->history[1]->seconds = 0;
    t->took->seconds = 1;                           /* seconds and nanos of opposite signs */
    CHECK_EQ(tern_grpc_json_from_message(&t->base, &o), -EINVAL);
    protobuf_c_message_free_unpacked(&t->base, NULL);
    /* a wrapper or a Timestamp as the whole message is its bare value */
    ProtobufCMessage *w = decode_as(&google__protobuf__string_value__descriptor, "\"x\"");
    CHECK(!strcmp(((Google__Protobuf__StringValue *)w)->value, "x"));
    CHECK_EQ(tern_grpc_json_from_message(w, &o), 0);
    CHECK(json_is_string(o) && !strcmp(json_string_value(o), "x"));
    json_decref(o);
    protobuf_c_message_free_unpacked(w, NULL);
    w = decode_as(&google__protobuf__timestamp__descriptor, "\"1970-01-01T00:00:01.5Z\"");
    CHECK(((Google__Protobuf__Timestamp *)w)->seconds == 1 && ((Google__Protobuf__Timestamp *)w)->nanos == 500000000);
    protobuf_c_message_free_unpacked(w, NULL);
    /* errors name the field */
    static const char bad_time[] = "at: not an RFC 3339 time between years 1 and 9999";
    decode_as_fails(TIMES_D, "{\"at\": \"2026-13-01T00:00:00Z\"}", bad_time);
    decode_as_fails(TIMES_D, "{\"at\": \"2026-02-30T00:00:00Z\"}", bad_time);
    decode_as_fails(TIMES_D, "{\"at\": \"2026-12-05T21:30:00\"}", bad_time);
    decode_as_fails(TIMES_D, "{\"at\": \"2026-12-05T21:30:00.1234567891Z\"}", bad_time);
    decode_as_fails(TIMES_D, "{\"at\": \"2026-12-05T21:30:00.Z\"}", bad_time);
    decode_as_fails(TIMES_D, "{\"at\": \"0000-12-31T23:59:59Z\"}", bad_time);
    decode_as_fails(TIMES_D, "{\"at\": 5}", "at: expected an RFC 3339 time (\"2026-12-05T21:30:00Z\")");
    static const char bad_dur[] = "took: not a duration (\"1.5s\", \"-0.25s\")";
    decode_as_fails(TIMES_D, "{\"took\": \"1.5\"}", bad_dur);
    decode_as_fails(TIMES_D, "{\"took\": \"s\"}", bad_dur);
    decode_as_fails(TIMES_D, "{\"took\": \"315576000001s\"}", bad_dur);
    decode_as_fails(TIMES_D, "{\"took\": {\"seconds\": 1}}", "took: expected a duration (\"1.5s\")");
    decode_as_fails(TIMES_D, "{\"count\": \"x\"}", "count: \"x\" is not an integer");
    decode_as_fails(TIMES_D, "{\"budgets\": {\"a\": \"1m\"}}", "budgets[\"a\"]: not a duration (\"1.5s\", \"-0.25s\")");
    decode_as_fails(TIMES_D, "{\"history\": [null]}", "history[0]: null in a repeated field");
    decode_as_fails(&google__protobuf__string_value__descriptor, "null",
                    "expected an object (google.protobuf.StringValue), got null");
}

/* ---- the registry --------------------------------------------------- */

static const tern_grpc_method_desc methods[] = {
    {.name = "Get", .path = "/terntest.json.v1.Registry/Get", .type = TERN_GRPC_UNARY,
     .input = &terntest__json__v1__get_item_request__descriptor, .output = &terntest__json__v1__item__descriptor},
    {.name = "Put", .path = "/terntest.json.v1.Registry/Put", .type = TERN_GRPC_UNARY,
     .input = &terntest__json__v1__create_item_request__descriptor, .output = &terntest__json__v1__item__descriptor},
};
static const tern_grpc_service_desc service = {.name = "terntest.json.v1.Registry", .methods = methods,
                                               .n_methods = 2};
static const tern_grpc_method_desc other_methods[] = {
    {.name = "Get", .path = "/terntest.json.v1.Registry/Get", .type = TERN_GRPC_UNARY,
     .input = &terntest__json__v1__all__descriptor, .output = &terntest__json__v1__all__descriptor},
};
static const tern_grpc_service_desc same_name = {.name = "terntest.json.v1.Registry", .methods = other_methods,
                                                 .n_methods = 1};

static void registry_finds_methods_by_name(void)
{
    const tern_grpc_method_desc *m = NULL;
    CHECK_EQ(tern_grpc_json_find("terntest.json.v1.Registry/Get", &m), -ENOENT);
    CHECK_EQ(tern_grpc_json_register(&service), 0);
    CHECK_EQ(tern_grpc_json_register(&service), 0);
    CHECK_EQ(tern_grpc_json_register(&same_name), 0);     /* the first of a name stays */
    CHECK_EQ(tern_grpc_json_find("terntest.json.v1.Registry/Get", &m), 0);
    CHECK(m == &methods[0]);
    CHECK_EQ(tern_grpc_json_find("/terntest.json.v1.Registry/Put", &m), 0);
    CHECK(m == &methods[1] && m->input == &terntest__json__v1__create_item_request__descriptor);
    CHECK_EQ(tern_grpc_json_find("terntest.json.v1.Registry/Nope", &m), -ENOENT);
    CHECK_EQ(tern_grpc_json_find("terntest.json.v1.Registry", &m), -ENOENT);
    CHECK_EQ(tern_grpc_json_find("", &m), -ENOENT);
    CHECK_EQ(tern_grpc_json_find(NULL, &m), -EINVAL);
    CHECK_EQ(tern_grpc_json_register(NULL), -EINVAL);
    tern_grpc_service_desc nameless = {.methods = methods, .n_methods = 2};
    CHECK_EQ(tern_grpc_json_register(&nameless), -EINVAL);
    /* many services: the table grows */
    static tern_grpc_service_desc many[40];
    static char names[40][32];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "t.S%d", i);
        many[i] = (tern_grpc_service_desc){.name = names[i]};
        CHECK_EQ(tern_grpc_json_register(&many[i]), 0);
    }
    CHECK_EQ(tern_grpc_json_find("terntest.json.v1.Registry/Put", &m), 0);
}

TESTS(T(every_kind_of_field_decodes), T(every_kind_of_field_round_trips), T(defaults_are_left_out),
      T(names_in_camel_case_or_as_in_the_proto), T(integers_as_numbers_or_strings),
      T(enums_bytes_strings_and_bools), T(maps_repeated_and_oneof_errors_name_the_field), T(nesting_is_bounded), T(timestamps_durations_and_wrappers_have_their_own_forms),
      T(registry_finds_methods_by_name))
