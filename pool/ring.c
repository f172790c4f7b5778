/*
 * ring.c - the SPSC ring (see ring.h). Indexes run freely and wrap at 2^32;
 * tail - head is the number of items, since capacity is at most 2^31.
 */
#include <stdlib.h>

#include "sombra.h"
#include "ring.h"

int
ring_init(struct ring *r, uint32_t capacity)
{
        if (capacity < 2 || capacity > (1u << 30) || (capacity & (capacity - 1)) != 0)
                return SOMBRA_EINVAL;
        r->slots = calloc(capacity, sizeof(*r->slots));
        if (r->slots == NULL)
                return SOMBRA_ENOMEM;
        r->mask = capacity - 1;
        r->head = r->tail = 0;
        return SOMBRA_OK;
}

void
ring_free(struct ring *r)
{
        free(r->slots);
        r->slots = NULL;
}

bool
ring_push(struct ring *r, void *item)
{
        uint32_t tail = r->tail; /* ours */
        uint32_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);

        if (tail - head > r->mask)
                return false;
        r->slots[tail & r->mask] = item;
        __atomic_store_n(&r->tail, tail + 1, __ATOMIC_RELEASE); /* the item, then the index */
        return true;
}

void *
ring_pop(struct ring *r)
{
        uint32_t head = r->head; /* ours */
        void *item;

        if (head == __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE))
                return NULL;
        item = r->slots[head & r->mask];
        __atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE); /* the slot is free again */
        return item;
}

bool
ring_empty(const struct ring *r)
{
        return __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) ==
               __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

uint32_t
ring_depth(const struct ring *r)
{
        uint32_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);

        return __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) - head;
}
