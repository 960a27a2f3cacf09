/*
 * events_nats_bench.c - the NATS client's throughput, against a
 * nats-server already running (bench/compare.sh data starts one).  The
 * same figures as bench/go/nats with nats.go:
 *
 *   events_nats_bench pub <addr> <n> <size>   one client publishes n messages of
 *                                     size bytes from one coroutine to a subject
 *                                     nobody subscribes, then flushes; msgs/s
 *   events_nats_bench sub <addr> <n> <size>   one client publishes n messages,
 *                                     another receives them in a callback
 *                                     subscription (queue bounds above n:
 *                                     nothing dropped); msgs/s from the first
 *                                     message received to the last
 *
 * One number on stdout; the client's stats on stderr.
 */
#include "bench_common.h"

#include <tern/nats.h>

typedef struct bench {
    const char *cmd, *addr;
    long n, size;
    _Atomic long got;
    _Atomic int64_t t0;
    tern_mutex mu;
    tern_cond done;
} bench;

static tern_nats *connect(const char *addr)
{
    tern_nats_options o = {.servers = addr};
    tern_nats *nc;
    int err = tern_nats_new(&o, &nc, NULL);
    if (err)
        bench_fail("tern_nats_new", err);
    return nc;
}

static void publish(tern_nats *nc, const char *subject, long n, const char *msg, size_t size)
{
    for (long i = 0; i < n; i++) {
        int err = tern_nats_publish(nc, subject, msg, size, NULL);
        if (err)
            bench_fail("tern_nats_publish", err);
    }
    int err = tern_nats_flush(nc, NULL);
    if (err)
        bench_fail("tern_nats_flush", err);
}

static void on_msg(tern_nats_msg *m, void *arg)
{
    (void)m;
    bench *b = arg;
    long g = atomic_fetch_add(&b->got, 1) + 1;
    if (g == 1)
        atomic_store(&b->t0, tern_now());
    if (g == b->n) {
        tern_mutex_lock(&b->mu);
        tern_cond_signal(&b->done);
        tern_mutex_unlock(&b->mu);
    }
}

static void stats(const char *who, tern_nats *nc)
{
    struct tern_nats_stats st;
    tern_nats_stats(nc, &st);
    fprintf(stderr, "%s: out_msgs %llu in %llu writes, in_msgs %llu, drops %llu\n", who,
            (unsigned long long)st.out_msgs, (unsigned long long)st.writes,
            (unsigned long long)st.in_msgs, (unsigned long long)st.slow_consumer_drops);
}

static int bench_main(void *arg)
{
    bench *b = arg;
    char *msg = calloc(1, (size_t)b->size + 1);
    tern_nats *pc = connect(b->addr);
    if (strcmp(b->cmd, "pub") == 0) {
        int64_t t0 = tern_now();
        publish(pc, "bench.pub", b->n, msg, (size_t)b->size);
        int64_t dt = tern_now() - t0;
        printf("%.0f\n", (double)b->n * 1e9 / (double)dt);
        stats("pub", pc);
    } else {
        tern_nats *sc = connect(b->addr);
        tern_nats_sub_options so = {.cb = on_msg, .cb_arg = b, .pending_msgs = (int)b->n + 1,
                                    .pending_bytes = (size_t)1 << 40};
        tern_nats_sub *s;
        int err = tern_nats_subscribe(sc, "bench.sub", &so, &s);
        if (err || (err = tern_nats_flush(sc, NULL)))
            bench_fail("subscribe", err);
        publish(pc, "bench.sub", b->n, msg, (size_t)b->size);
        tern_mutex_lock(&b->mu);
        while (atomic_load(&b->got) < b->n)
            tern_cond_wait(&b->done, &b->mu, NULL);
        tern_mutex_unlock(&b->mu);
        int64_t dt = tern_now() - atomic_load(&b->t0);
        printf("%.0f\n", (double)(b->n - 1) * 1e9 / (double)dt);
        stats("pub", pc);
        stats("sub", sc);
        tern_nats_sub_free(s);
        tern_nats_free(sc);
    }
    tern_nats_free(pc);
    free(msg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: events_nats_bench pub|sub addr n size\n");
        return 2;
    }
    bench b = {.cmd = argv[1], .addr = argv[2], .n = atol(argv[3]), .size = atol(argv[4])};
    return tern_run(bench_main, &b);
}
