/*
 * ring.c - the SPSC ring (see ring.h): ck_ring_enqueue_spsc and
 * ck_ring_dequeue_spsc over an array of ck_ring_buffer_t, a power of two of
 * slots. ck_ring keeps one slot empty to tell full from empty, so the array
 * has twice the requested capacity: the ring holds at least `capacity`.
 *
 * Memory ordering, as ck_ring does it. The producer (a caller holding the
 * connection) writes the slot, then a store fence, then p_tail; the consumer
 * (the writer thread) loads p_tail, then a load fence, then reads the slot.
 * So a request handed over is seen whole: everything the producer stored
 * before ring_push is visible to the writer after the ring_pop that returns
 * it. In the other direction the consumer stores c_head after reading the
 * slot, and the producer loads c_head before reusing a slot; nothing but the
 * slot itself travels that way (a request comes back through its `done`
 * word, engine.c). On x86-64, a TSO machine, both fences are compiler
 * barriers. ring_empty and ring_depth load both indexes with no fence of
 * their own: the wake-up protocol (engine.c) orders them with the
 * sequentially consistent atomics around them.
 *
 * ThreadSanitizer. ck_pr loads and stores indexes through volatile accesses
 * and orders them with fences, even with CK_USE_CC_BUILTINS (which switches
 * only its read-modify-write operations and strict fences to __sync
 * builtins). TSan models neither, so it reports every index update
 * and slot as a race, and every request field the writer reads as a race
 * with the caller who wrote it. Under TSan the wrapper therefore hides
 * ck_ring's own accesses (they are correct by ck_ring's design and touched
 * by nothing else) and states the edge they provide: a release on the ring
 * before each push, an acquire after each pop that returns an item. That is
 * sound, it reports no race the hardware would not allow: the release comes
 * before the p_tail store in the producer's program order and the acquire
 * after the consumer's p_tail load that saw it. It is coarser than the
 * ring: a pop also acquires what the producer wrote before a later push that
 * the pop did not see, which can hide a race but never invent one.
 */
#include <stdlib.h>

#include "sombra.h"
#include "ring.h"

#if defined(__SANITIZE_THREAD__)
#define RING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RING_TSAN 1
#endif
#endif

#ifdef RING_TSAN
#include <sanitizer/tsan_interface.h>

/* The TSan runtime's dynamic annotations; each pair makes the calling thread's accesses invisible.
 */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);

static void
tsan_hide_begin(void)
{
        AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
        AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
}

static void
tsan_hide_end(void)
{
        AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
        AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
}

static void
tsan_publish(struct ring *r)
{
        __tsan_release(r);
}

static void
tsan_receive(struct ring *r)
{
        __tsan_acquire(r);
}
#else
static void
tsan_hide_begin(void)
{
}

static void
tsan_hide_end(void)
{
}

static void
tsan_publish(struct ring *r)
{
        (void)r;
}

static void
tsan_receive(struct ring *r)
{
        (void)r;
}
#endif

int
ring_init(struct ring *r, uint32_t capacity)
{
        if (capacity < 2 || capacity > (1u << 30) || (capacity & (capacity - 1)) != 0)
                return SOMBRA_EINVAL;
        r->slots = calloc(2 * (size_t)capacity, sizeof(*r->slots));
        if (r->slots == NULL)
                return SOMBRA_ENOMEM;
        ck_ring_init(&r->ring, 2 * capacity);
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
        bool pushed;

        tsan_publish(r); /* before p_tail is stored, so any pop that sees it acquires this */
        tsan_hide_begin();
        pushed = ck_ring_enqueue_spsc(&r->ring, r->slots, item);
        tsan_hide_end();
        return pushed;
}

void *
ring_pop(struct ring *r)
{
        void *item;
        bool popped;

        tsan_hide_begin();
        popped = ck_ring_dequeue_spsc(&r->ring, r->slots, &item);
        tsan_hide_end();
        if (!popped)
                return NULL;
        tsan_receive(r);
        return item;
}

bool
ring_empty(const struct ring *r)
{
        return ring_depth(r) == 0;
}

uint32_t
ring_depth(const struct ring *r)
{
        uint32_t depth;

        tsan_hide_begin();
        depth = ck_ring_size(&r->ring);
        tsan_hide_end();
        return depth;
}
