/*
 * ring.h - a bounded single-producer single-consumer ring of pointers, one
 * per connection, carrying requests to the writer thread.
 *
 * The design asks for ck_ring_*_spsc; this is the same algorithm (a power of
 * two of slots, a head the consumer owns and a tail the producer owns, each
 * published with release and read with acquire) written with the compiler's
 * __atomic builtins, because ck_ring's accesses go through ck_pr's volatile
 * loads and stores, which ThreadSanitizer cannot see as synchronisation, and
 * every request handed through the ring would then show up as a data race.
 * Lock-free and wait-free on both sides.
 */
#ifndef SOMBRA_RING_H
#define SOMBRA_RING_H

#include <stdbool.h>
#include <stdint.h>

struct ring {
        uint32_t mask; /* capacity - 1 */
        uint32_t head; /* next slot to take; written by the consumer */
        char pad1[56];
        uint32_t tail; /* next slot to fill; written by the producer */
        char pad2[60];
        void **slots;
};

/* capacity: a power of two >= 2. SOMBRA_EINVAL, SOMBRA_ENOMEM. */
int ring_init(struct ring *r, uint32_t capacity);
void ring_free(struct ring *r);

/* Producer: false when full. */
bool ring_push(struct ring *r, void *item);
/* Consumer: NULL when empty. */
void *ring_pop(struct ring *r);
/* Either side: whether it looks empty right now. */
bool ring_empty(const struct ring *r);
/* Any thread: how many items it holds right now (a moment later, maybe not). */
uint32_t ring_depth(const struct ring *r);

#endif
