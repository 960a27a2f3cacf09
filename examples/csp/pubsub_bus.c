/*
 * pubsub_bus.c - Go's in-process event bus: each subscriber owns a buffered
 * channel, Publish sends every event to each, and shutdown closes them so
 * each `for ev := range ch` loop ends.  Events carry a kind tag and a union
 * payload (Go: an interface + type switch).  A slow subscriber makes Publish
 * wait when its buffer is full (backpressure, not loss), so every
 * subscriber must see every event.
 */
#include <stdio.h>

#include <tern/tern.h>

#define SUBS 3
#define EVENTS 30

typedef enum { USER_CREATED, ORDER_PLACED, EVENT_KINDS } event_kind;

typedef struct event {
    event_kind kind;
    union {
        struct { int id; char name[16]; } user;
        struct { int id; long cents; } order;
    };
} event;

typedef struct subscriber {
    const char *name;
    int64_t delay_us;                   /* simulated handling cost */
    tern_chan *inbox;
    int count[EVENT_KINDS];
    long cents;
} subscriber;

static tern_waitgroup wg = TERN_WAITGROUP_INIT;

static int subscribe_loop(void *arg)
{
    subscriber *s = arg;
    event ev;
    bool ok;
    while (tern_chan_recv(s->inbox, &ev, &ok, NULL) == 0 && ok) {
        s->count[ev.kind]++;
        if (ev.kind == ORDER_PLACED)
            s->cents += ev.order.cents;
        tern_sleep(s->delay_us * TERN_US);
    }
    printf("  %-8s saw %d UserCreated, %d OrderPlaced (%ld cents)\n", s->name, s->count[USER_CREATED],
           s->count[ORDER_PLACED], s->cents);
    tern_waitgroup_done(&wg);
    return 0;
}

static int publish(subscriber *subs, const event *ev)
{
    int e = 0;
    for (int i = 0; i < SUBS && e == 0; i++)
        e = tern_chan_send(subs[i].inbox, ev, NULL);
    return e;
}

static int entry(void *arg)
{
    (void)arg;
    subscriber subs[SUBS] = {{.name = "mailer"}, {.name = "billing", .delay_us = 200},
                             {.name = "audit", .delay_us = 1000}};
    for (int i = 0; i < SUBS; i++) {
        int e = tern_chan_new(sizeof(event), 8, &subs[i].inbox);
        if (e < 0) {
            fprintf(stderr, "tern_chan_new: %s\n", tern_strerror(e));
            return 1;
        }
        tern_waitgroup_add(&wg, 1);
        tern_go(subscribe_loop, &subs[i]);
    }
    int want[EVENT_KINDS] = {0};
    long want_cents = 0;
    for (int i = 0; i < EVENTS; i++) {
        event ev = {.kind = i % 3 == 0 ? USER_CREATED : ORDER_PLACED};
        if (ev.kind == USER_CREATED) {
            ev.user.id = 1000 + i;
            snprintf(ev.user.name, sizeof ev.user.name, "user%d", i);
        } else {
            ev.order.id = 5000 + i;
            ev.order.cents = 100L * i + 99;
            want_cents += ev.order.cents;
        }
        want[ev.kind]++;
        int e = publish(subs, &ev);
        if (e < 0) {
            fprintf(stderr, "publish: %s\n", tern_strerror(e));
            return 1;
        }
    }
    printf("published %d UserCreated and %d OrderPlaced to %d subscribers; shutting down\n",
           want[USER_CREATED], want[ORDER_PLACED], SUBS);
    for (int i = 0; i < SUBS; i++)
        tern_chan_close(subs[i].inbox);  /* buffered events are still delivered */
    tern_waitgroup_wait(&wg, NULL);

    int bad = 0;
    for (subscriber *s = subs; s < subs + SUBS; s++) {
        if (s->count[USER_CREATED] != want[USER_CREATED] || s->count[ORDER_PLACED] != want[ORDER_PLACED] ||
            s->cents != want_cents) {
            fprintf(stderr, "%s missed events\n", s->name);
            bad = 1;
        }
        tern_chan_free(s->inbox);
    }
    if (!bad)
        printf("every subscriber saw all %d events\n", EVENTS);
    return bad;
}

int main(void)
{
    int r = tern_run(entry, NULL);
    if (r < 0)
        fprintf(stderr, "tern_run: %s\n", tern_strerror(r));
    return r != 0;
}
