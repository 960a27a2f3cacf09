/*
 * once_init.c - Go's sync.Once for lazy initialisation:
 *
 *     var once sync.Once
 *     func getConfig() *Config { once.Do(loadConfig); return cfg }
 *
 * 100 request handlers spread over all Ps need the config at the same time.
 * loadConfig takes 20 ms (simulated file read) and must run exactly once;
 * every handler, including those that arrived while it was running, must
 * only go on once it has finished, so none ever sees a half-built config.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <tern/tern.h>

#define HANDLERS 100

typedef struct config {
    char db_url[64];
    int pool_size;
    bool ready;                         /* set last */
} config;

static tern_once once = TERN_ONCE_INIT;
static config cfg;
static atomic_int loads, saw_ready;
static tern_waitgroup wg = TERN_WAITGROUP_INIT;

static void load_config(void *arg)
{
    config *c = arg;
    atomic_fetch_add(&loads, 1);
    printf("  loading config (coroutine %llu got here first)\n", (unsigned long long)tern_id());
    tern_sleep(20 * TERN_MS);           /* parks: the others pile up in tern_once_do */
    strcpy(c->db_url, "postgres://db.internal/app");
    c->pool_size = 16;
    c->ready = true;
}

static const config *get_config(void)
{
    tern_once_do(&once, load_config, &cfg);
    return &cfg;
}

static int handler(void *arg)
{
    (void)arg;
    const config *c = get_config();
    if (c->ready && c->pool_size == 16 && strcmp(c->db_url, "postgres://db.internal/app") == 0)
        atomic_fetch_add(&saw_ready, 1);
    tern_waitgroup_done(&wg);
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    printf("%d handlers on %d Ps all ask for the config at once\n", HANDLERS, tern_runtime_procs());
    for (int i = 0; i < HANDLERS; i++) {
        tern_waitgroup_add(&wg, 1);
        int e = tern_go(handler, NULL);
        if (e < 0) {
            fprintf(stderr, "tern_go: %s\n", tern_strerror(e));
            return 1;
        }
    }
    tern_waitgroup_wait(&wg, NULL);
    /* A late caller takes the fast path: the load is not repeated. */
    const config *c = get_config();
    printf("config loaded %d time(s); %d of %d handlers saw it complete\n", atomic_load(&loads),
           atomic_load(&saw_ready), HANDLERS);
    printf("db_url=%s pool_size=%d\n", c->db_url, c->pool_size);
    if (atomic_load(&loads) != 1 || atomic_load(&saw_ready) != HANDLERS) {
        fprintf(stderr, "sync.Once broken: want 1 load and %d complete views\n", HANDLERS);
        return 1;
    }
    return 0;
}

int main(void)
{
    int r = tern_run(entry, NULL);
    if (r < 0)
        fprintf(stderr, "tern_run: %s\n", tern_strerror(r));
    return r != 0;
}
