/*
 * ring.h - a bounded single-producer single-consumer ring of pointers, one
 * per connection, carrying requests to the writer thread: Concurrency Kit's
 * ck_ring used through its _spsc functions, behind a small wrapper that owns
 * the slot array and tells ThreadSanitizer what the ring synchronises (ring.c).
 * Lock-free and wait-free on both sides.
 */
#ifndef SOMBRA_RING_H
#define SOMBRA_RING_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_ring.h>

struct ring {
        /* c_head written by the consumer, p_tail by the producer; each on its own line */
        ck_ring_t ring;
        ck_ring_buffer_t *slots; /* twice the capacity: ck_ring holds one less than its size */
};

/* capacity: a power of two >= 2, at most 2^30. SOMBRA_EINVAL, SOMBRA_ENOMEM. */
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
