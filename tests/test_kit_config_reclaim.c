/* test_kit_config_reclaim.c - reloads cost no memory in the long run (issue
 * 15, item 4: every reload kept the snapshot it replaced, +404 bytes per
 * SIGHUP, +934 KB with a 1 MB value): a value a reload leaves unchanged
 * keeps its copy (the same string, however many reloads), a changed one's
 * old copy stays readable for options.retain and is freed at a reload
 * after that, and retain < 0 keeps the old behaviour.  Heap use is
 * heap_use.h's.  Real files, tern_config_reload from a coroutine. */
#include "check.h"
#include "heap_use.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tern/config.h>

#define VALUE_BYTES (512 * 1024)

static char path[64];

static const tern_config_key keys[] = {
    TERN_CONFIG_KEY("big", TERN_CONFIG_STRING),
    TERN_CONFIG_KEY("n", TERN_CONFIG_INT),
};

static void write_file(int n, char fill)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "{\"n\": %d, \"big\": \"", n);
    for (int i = 0; i < VALUE_BYTES; i++)
        fputc(fill, f);
    fputs("\"}", f);
    CHECK(fclose(f) == 0);
}

static tern_config *make(int64_t retain)
{
    strcpy(path, "/tmp/tern_cfg_reclaim_XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    write_file(0, 'a');
    tern_config_options o = {.keys = keys, .nkeys = 2, .file = path,
                             .max_file_bytes = 4 << 20, .retain = retain};
    tern_config *cfg;
    CHECK_EQ(tern_config_new(0, NULL, NULL, &o, &cfg), 0);
    return cfg;
}

/* Found: 100 SIGHUPs with a 512 KiB value kept 100 copies of it. */
static int reloads_that_change_nothing_cost_nothing_main(void *arg)
{
    (void)arg;
    tern_config *cfg = make(0);
    const char *big = tern_config_str(cfg, "big");
    size_t before = heap_in_use();
    for (int i = 0; i < 100; i++)
        CHECK_EQ(tern_config_reload(cfg, NULL), 0);
    size_t after = heap_in_use();
    fprintf(stderr, "heap after 100 reloads of the same %d-byte value: %+ld bytes\n",
            VALUE_BYTES, (long)(after - before));
    CHECK(after < before + 64 * 1024);
    CHECK(tern_config_str(cfg, "big") == big);  /* the very same copy */
    CHECK_EQ(strlen(big), VALUE_BYTES);
    tern_config_free(cfg);
    unlink(path);
    return 0;
}

static void reloads_that_change_nothing_cost_nothing(void)
{
    run_ok(reloads_that_change_nothing_cost_nothing_main, NULL, 1);
}

/* Each reload changes a small key; the big one keeps its copy and the
 * replaced snapshots go once retain has passed. */
static int replaced_values_are_freed_after_retain_main(void *arg)
{
    (void)arg;
    tern_config *cfg = make(50 * TERN_MS);
    size_t before = heap_in_use();
    for (int i = 1; i <= 100; i++) {
        write_file(i, 'a');
        CHECK_EQ(tern_config_reload(cfg, NULL), 0);
    }
    size_t after = heap_in_use();
    CHECK(after < before + 64 * 1024);
    /* a changed value's old string stays readable for retain (ASan
     * would see a freed one) */
    write_file(0, 'b');
    const char *old = tern_config_str(cfg, "big");
    CHECK_EQ(tern_config_reload(cfg, NULL), 0);
    CHECK(old[0] == 'a' && strlen(old) == VALUE_BYTES);
    CHECK(tern_config_str(cfg, "big")[0] == 'b');
    size_t two = heap_in_use();     /* the 'a' copy and the 'b' copy */
    CHECK(two > before + VALUE_BYTES / 2);
    tern_sleep(100 * TERN_MS);
    write_file(1, 'b');
    CHECK_EQ(tern_config_reload(cfg, NULL), 0);     /* frees the 'a' copy */
    size_t one = heap_in_use();
    fprintf(stderr, "heap with two copies %zu, after retain and a reload %zu\n", two, one);
    CHECK(one + VALUE_BYTES / 2 < two);
    tern_config_free(cfg);
    unlink(path);
    return 0;
}

static void replaced_values_are_freed_after_retain(void)
{
    run_ok(replaced_values_are_freed_after_retain_main, NULL, 1);
}

/* retain < 0: every replaced snapshot stays until tern_config_free. */
static int negative_retain_keeps_every_replaced_value_main(void *arg)
{
    (void)arg;
    tern_config *cfg = make(-1);
    size_t before = heap_in_use();
    for (int i = 1; i <= 4; i++) {
        write_file(i, (char)('a' + i));
        CHECK_EQ(tern_config_reload(cfg, NULL), 0);
    }
    CHECK(heap_in_use() > before + 3 * VALUE_BYTES);
    tern_config_free(cfg);
    unlink(path);
    return 0;
}

static void negative_retain_keeps_every_replaced_value(void)
{
    run_ok(negative_retain_keeps_every_replaced_value_main, NULL, 1);
}

TESTS(T(reloads_that_change_nothing_cost_nothing),
      T(replaced_values_are_freed_after_retain),
      T(negative_retain_keeps_every_replaced_value))
