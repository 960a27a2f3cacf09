/*
 * test_grpc_wire.c - gRPC's codecs (src/grpc/wire.c): grpc-timeout both
 * ways, the percent-encoded grpc-message, base64 for -bin metadata, the
 * 5-byte message prefix, gzip with its size limit, and the code <-> errno
 * table of tern/grpc.h.
 */
#include "../check.h"

#include <errno.h>

#include "grpc/grpc_internal.h"

static void timeout_parse_and_format(void)
{
    int64_t ns;
    CHECK_EQ(tern_grpc_timeout_parse("1S", &ns), 0);
    CHECK_EQ(ns, 1000000000LL);
    CHECK_EQ(tern_grpc_timeout_parse("250m", &ns), 0);
    CHECK_EQ(ns, 250000000LL);
    CHECK_EQ(tern_grpc_timeout_parse("99999999H", &ns), 0);
    CHECK_EQ(ns, INT64_MAX);                            /* clamped, not wrapped */
    CHECK_EQ(tern_grpc_timeout_parse("7n", &ns), 0);
    CHECK_EQ(ns, 7);
    CHECK_EQ(tern_grpc_timeout_parse("2M", &ns), 0);
    CHECK_EQ(ns, 120000000000LL);
    CHECK_EQ(tern_grpc_timeout_parse("123456789S", &ns), -EINVAL);   /* 9 digits */
    CHECK_EQ(tern_grpc_timeout_parse("S", &ns), -EINVAL);
    CHECK_EQ(tern_grpc_timeout_parse("10x", &ns), -EINVAL);
    CHECK_EQ(tern_grpc_timeout_parse("-1S", &ns), -EINVAL);
    char buf[16];
    CHECK_EQ(tern_grpc_timeout_format(500, buf), 4);
    CHECK(!strcmp(buf, "500n"));
    tern_grpc_timeout_format(1500000000LL, buf);        /* 1.5 s: exact in ns? 10 digits: no; us */
    CHECK(!strcmp(buf, "1500000u"));
    tern_grpc_timeout_format(3600LL * 1000000000 * 30000, buf);
    CHECK(!strcmp(buf, "1800000M"));
    tern_grpc_timeout_format(123456789123LL, buf);      /* rounded up, never shorter */
    CHECK(!strcmp(buf, "123457m"));
    CHECK(tern_grpc_timeout_parse(buf, &ns) == 0 && ns >= 123456789123LL);
}

static void message_percent_encoding(void)
{
    char *e = tern_grpc_message_encode("a 100% \xc3\xbc\n");
    CHECK(!strcmp(e, "a 100%25 %C3%BC%0A"));
    char *d = tern_grpc_message_decode(e);
    CHECK(!strcmp(d, "a 100% \xc3\xbc\n"));
    free(e);
    free(d);
    d = tern_grpc_message_decode("bad %zz %4 %00 end%");  /* kept as they are */
    CHECK(!strcmp(d, "bad %zz %4 %00 end%"));
    free(d);
}

static void base64_for_bin_metadata(void)
{
    const uint8_t raw[] = { 0, 1, 0xfe, 0xff, 0x10 };
    char enc[16];
    CHECK_EQ(tern__grpc_b64_encode(raw, 5, enc), 7);
    CHECK(!strcmp(enc, "AAH+/xA"));                     /* unpadded */
    uint8_t out[16];
    CHECK_EQ(tern__grpc_b64_decode("AAH+/xA", 7, out), 5);
    CHECK(!memcmp(out, raw, 5));
    CHECK_EQ(tern__grpc_b64_decode("AAH+/xA=", 8, out), 5);   /* padded */
    CHECK_EQ(tern__grpc_b64_decode("AAH-_xA", 7, out), 5);    /* URL-safe */
    CHECK(!memcmp(out, raw, 5));
    CHECK_EQ(tern__grpc_b64_decode("A", 1, out), -EBADMSG);
    CHECK_EQ(tern__grpc_b64_decode("AA*A", 4, out), -EBADMSG);
    CHECK_EQ(tern__grpc_b64_decode("", 0, out), 0);
}

static void prefix_and_gzip(void)
{
    uint8_t p[5];
    tern__grpc_prefix_put(p, true, 0x01020304);
    bool z;
    uint32_t len;
    CHECK_EQ(tern__grpc_prefix_parse(p, &z, &len), 0);
    CHECK(z && len == 0x01020304);
    p[0] = 2;
    CHECK_EQ(tern__grpc_prefix_parse(p, &z, &len), -EBADMSG);
    char text[5000];
    memset(text, 'q', sizeof text);
    tern__growbuf gz = { 0 }, back = { 0 };
    CHECK_EQ(tern__grpc_gzip((const uint8_t *)text, sizeof text, &gz), 0);
    CHECK(gz.len < 200);
    CHECK_EQ(tern__grpc_gunzip((const uint8_t *)gz.p, gz.len, 1 << 20, &back), 0);
    CHECK(back.len == sizeof text && !memcmp(back.p, text, sizeof text));
    back.len = 0;
    CHECK_EQ(tern__grpc_gunzip((const uint8_t *)gz.p, gz.len, 4000, &back), -EMSGSIZE);  /* a zip bomb */
    CHECK_EQ(back.len, 0);
    CHECK_EQ(tern__grpc_gunzip((const uint8_t *)gz.p, gz.len - 4, 1 << 20, &back), -EBADMSG);  /* cut */
    tern__growbuf_free(&gz);
    tern__growbuf_free(&back);
}

static void codes_and_errnos(void)
{
    for (int c = 0; c <= TERN_GRPC_UNAUTHENTICATED; c++)      /* the table is a bijection on codes */
        CHECK_EQ(tern_grpc_errno_to_code(tern_grpc_code_to_errno((tern_grpc_code)c)), c);
    CHECK_EQ(tern_grpc_code_to_errno(TERN_GRPC_NOT_FOUND), -ENOENT);
    CHECK_EQ(tern_grpc_code_to_errno(TERN_GRPC_UNIMPLEMENTED), -ENOSYS);
    CHECK_EQ(tern_grpc_errno_to_code(-EMSGSIZE), TERN_GRPC_RESOURCE_EXHAUSTED);
    CHECK_EQ(tern_grpc_errno_to_code(-ECONNREFUSED), TERN_GRPC_UNAVAILABLE);
    CHECK_EQ(tern_grpc_errno_to_code(-EBADMSG), TERN_GRPC_INTERNAL);
    CHECK_EQ(tern_grpc_errno_to_code(-ENOTDIR), TERN_GRPC_UNKNOWN);
    CHECK(!strcmp(tern_grpc_code_name(TERN_GRPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED"));
    CHECK(!strcmp(tern_grpc_code_name((tern_grpc_code)99), "UNKNOWN"));
}

static void metadata_names(void)
{
    CHECK(tern__grpc_md_name_ok("x-trace-bin"));
    CHECK(!tern__grpc_md_name_ok("x y"));
    CHECK(!tern__grpc_md_name_ok(""));
    CHECK(tern__grpc_md_reserved("grpc-timeout"));
    CHECK(tern__grpc_md_reserved(":path"));
    CHECK(tern__grpc_md_reserved("content-type"));
    CHECK(!tern__grpc_md_reserved("authorization"));
    CHECK(tern__grpc_md_is_bin("a-bin", 5));
    CHECK(!tern__grpc_md_is_bin("-bin", 4));
    CHECK(tern__grpc_md_value_ok("v 1", 3));
    CHECK(!tern__grpc_md_value_ok("v\n", 2));
}

TESTS({ "timeout_parse_and_format", timeout_parse_and_format },
      { "message_percent_encoding", message_percent_encoding },
      { "base64_for_bin_metadata", base64_for_bin_metadata }, { "prefix_and_gzip", prefix_and_gzip },
      { "codes_and_errnos", codes_and_errnos }, { "metadata_names", metadata_names })
