/*
 * batch.c - batches: write operations collected without touching the
 * database, then applied by the writer as one transaction.
 *
 * A batch copies everything it is given (names, property arrays, values and
 * their bytes) into an arena of chunks, so the caller's memory may change
 * right after each builder call, and an asynchronous submission owns no
 * caller memory. Chunks never move, so pointers into them stay valid as the
 * batch grows. Reset keeps every chunk and fills them again in order: a
 * batch of the size it had before then touches only memory it touched
 * already (a new chunk is fresh memory, a page fault per page).
 *
 * While an asynchronous submission is out, the writer reads the ops and
 * writes their results: a call that would change or free the batch then
 * answers SOMBRA_EBUSY instead of racing with it. Submitting it again is
 * fine (the writer applies one submission after the other).
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "record.h"

#define CHUNK_MIN  4096u
#define NAMES_KEPT 8u /* recent names a batch stores once (copy_name) */

struct chunk {
        struct chunk *next;
        size_t used, cap;
        _Alignas(16) uint8_t data[];
};

struct sombra_batch {
        struct write_op *ops;
        uint64_t *results; /* cap of them, beside ops: see struct write_op */
        size_t n, cap;
        struct chunk *chunks;          /* in the order made */
        struct chunk *cur;             /* the one being filled; NULL: none yet */
        struct batch_status status;    /* what its submissions reported (engine.h) */
        const char *names[NAMES_KEPT]; /* copies in the chunks; cleared by reset */
        size_t name_len[NAMES_KEPT];
        unsigned names_next; /* the slot the next new name takes */
};

/* Whether b may be changed: it exists and no asynchronous submission of it is out. */
static int
batch_writable(const sombra_batch *b)
{
        if (b == NULL)
                return SOMBRA_EINVAL;
        if (__atomic_load_n(&b->status.in_flight, __ATOMIC_ACQUIRE) != 0)
                return SOMBRA_EBUSY;
        return SOMBRA_OK;
}

static void
applied_set(sombra_batch *b, bool applied)
{
        __atomic_store_n(&b->status.applied, applied, __ATOMIC_RELAXED);
}

int
sombra_batch_new(sombra_batch **out)
{
        if (out == NULL)
                return SOMBRA_EINVAL;
        *out = calloc(1, sizeof(**out));
        return *out == NULL ? SOMBRA_ENOMEM : SOMBRA_OK;
}

static void
chunks_free(struct chunk *c)
{
        while (c != NULL) {
                struct chunk *next = c->next;
                free(c);
                c = next;
        }
}

int
sombra_batch_free(sombra_batch *b)
{
        int rc = batch_writable(b);

        if (rc != SOMBRA_OK)
                return rc;
        chunks_free(b->chunks);
        free(b->ops);
        free(b->results);
        free(b);
        return SOMBRA_OK;
}

int
sombra_batch_reset(sombra_batch *b)
{
        int rc = batch_writable(b);

        if (rc != SOMBRA_OK)
                return rc;
        for (struct chunk *c = b->chunks; c != NULL; c = c->next)
                c->used = 0;
        b->cur = b->chunks;
        b->n = 0;
        memset(b->names, 0, sizeof(b->names)); /* their bytes are overwritten from now on */
        b->names_next = 0;
        applied_set(b, false);
        return SOMBRA_OK;
}

/* Appends a chunk with room for len bytes after the last one. */
static struct chunk *
chunk_add(sombra_batch *b, struct chunk *last, size_t len)
{
        size_t cap = len > CHUNK_MIN ? len : CHUNK_MIN;
        struct chunk *c;

        if (last != NULL && last->cap * 2 > cap)
                cap = last->cap * 2;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
                return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = NULL;
        if (last != NULL)
                last->next = c;
        else
                b->chunks = c;
        return c;
}

static void *
arena_alloc(sombra_batch *b, size_t len)
{
        struct chunk *c = b->cur;

        len = (len + 15) & ~(size_t)15;
        /* The next kept chunk with room; one too small for a large value stays unused. */
        while (c != NULL && c->cap - c->used < len && c->next != NULL)
                c = c->next;
        if (c == NULL || c->cap - c->used < len) {
                c = chunk_add(b, c, len);
                if (c == NULL)
                        return NULL;
        }
        b->cur = c;
        c->used += len;
        return c->data + c->used - len;
}

/*
 * A batch repeats a few names over and over: every node's label and keys,
 * every edge's type. The last NAMES_KEPT of them are stored once and shared,
 * which saves a quarter of a node's bytes in the batch (80 of about 330 for
 * a label and four properties), and the writer then reads the same few
 * cache lines for them instead of new ones for every operation.
 */
static const char *
copy_name(sombra_batch *b, const char *s)
{
        size_t len;
        char *copy;

        if (s == NULL)
                return NULL; /* the writer reports SOMBRA_EINVAL for it */
        len = strnlen(s, SOMBRA_MAX_NAME + 1);
        for (unsigned i = 0; i < NAMES_KEPT; i++)
                if (b->names[i] != NULL && b->name_len[i] == len &&
                    memcmp(b->names[i], s, len) == 0)
                        return b->names[i];
        copy = arena_alloc(b, len + 1);
        if (copy == NULL)
                return NULL;
        memcpy(copy, s, len);
        copy[len] = '\0';
        b->names[b->names_next] = copy;
        b->name_len[b->names_next] = len;
        b->names_next = (b->names_next + 1) % NAMES_KEPT;
        return copy;
}

static int
copy_value(sombra_batch *b, const struct sombra_value *v, struct sombra_value *out)
{
        int rc = rec_value_check(v);

        if (rc != SOMBRA_OK)
                return rc;
        *out = *v;
        if ((v->type == SOMBRA_STRING || v->type == SOMBRA_BYTES) && v->u.s.len > 0) {
                void *bytes = arena_alloc(b, v->u.s.len);
                if (bytes == NULL)
                        return SOMBRA_ENOMEM;
                memcpy(bytes, v->u.s.ptr, v->u.s.len);
                out->u.s.ptr = bytes;
        }
        return SOMBRA_OK;
}

static int
copy_props(sombra_batch *b, const struct sombra_prop *props, size_t n,
           const struct sombra_prop **out)
{
        struct sombra_prop *copy;

        *out = NULL;
        if (n == 0)
                return SOMBRA_OK;
        if (props == NULL)
                return SOMBRA_EINVAL;
        if (n > SOMBRA_MAX_PROPS)
                return SOMBRA_ETOOBIG;
        copy = arena_alloc(b, n * sizeof(*copy));
        if (copy == NULL)
                return SOMBRA_ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int rc = props[i].key == NULL ? SOMBRA_EINVAL : SOMBRA_OK;
                copy[i].key = copy_name(b, props[i].key);
                if (rc == SOMBRA_OK && copy[i].key == NULL)
                        rc = SOMBRA_ENOMEM;
                if (rc == SOMBRA_OK)
                        rc = copy_value(b, &props[i].value, &copy[i].value);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        *out = copy;
        return SOMBRA_OK;
}

static int
copy_labels(sombra_batch *b, const char *const *labels, size_t n, const char *const **out)
{
        const char **copy;

        *out = NULL;
        if (n == 0)
                return SOMBRA_OK;
        if (labels == NULL)
                return SOMBRA_EINVAL;
        if (n > SOMBRA_MAX_LABELS)
                return SOMBRA_ETOOBIG;
        copy = arena_alloc(b, n * sizeof(*copy));
        if (copy == NULL)
                return SOMBRA_ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (labels[i] == NULL)
                        return SOMBRA_EINVAL;
                copy[i] = copy_name(b, labels[i]);
                if (copy[i] == NULL)
                        return SOMBRA_ENOMEM;
        }
        *out = copy;
        return SOMBRA_OK;
}

/* Appends op (whose pointers already point into the arena); *ref gets its reference. */
static int
op_add(sombra_batch *b, const struct write_op *op, uint64_t *ref)
{
        if (b->n == b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 16;
                struct write_op *v = realloc(b->ops, cap * sizeof(*v));
                uint64_t *r;
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                b->ops = v;
                r = realloc(b->results, cap * sizeof(*r));
                if (r == NULL)
                        return SOMBRA_ENOMEM;
                b->results = r;
                b->cap = cap;
        }
        b->ops[b->n] = *op;
        if (ref != NULL)
                *ref = SOMBRA_BATCH_REF(b->n);
        b->n++;
        applied_set(b, false);
        return SOMBRA_OK;
}

int
sombra_batch_node_create(sombra_batch *b, const char *const *labels, size_t nlabels,
                         const struct sombra_prop *props, size_t nprops, uint64_t *ref)
{
        struct write_op op = {.kind = OP_NODE_CREATE, .nlabels = nlabels, .nprops = nprops};
        int rc = batch_writable(b);

        if (rc == SOMBRA_OK)
                rc = copy_labels(b, labels, nlabels, &op.labels);
        if (rc == SOMBRA_OK)
                rc = copy_props(b, props, nprops, &op.props);
        return rc == SOMBRA_OK ? op_add(b, &op, ref) : rc;
}

int
sombra_batch_edge_create(sombra_batch *b, uint64_t src, uint64_t dst, const char *type,
                         const struct sombra_prop *props, size_t nprops, uint64_t *ref)
{
        struct write_op op = {.kind = OP_EDGE_CREATE, .id = src, .dst = dst, .nprops = nprops};
        int rc = batch_writable(b);

        if (rc == SOMBRA_OK && type == NULL)
                rc = SOMBRA_EINVAL;
        if (rc == SOMBRA_OK) {
                op.name = copy_name(b, type);
                rc = op.name == NULL ? SOMBRA_ENOMEM : copy_props(b, props, nprops, &op.props);
        }
        return rc == SOMBRA_OK ? op_add(b, &op, ref) : rc;
}

int
sombra_batch_node_set(sombra_batch *b, uint64_t id, const char *key,
                      const struct sombra_value *value)
{
        struct write_op op = {.kind = OP_NODE_SET, .id = id};
        struct sombra_value *v;
        int rc = batch_writable(b);

        if (rc == SOMBRA_OK && (key == NULL || value == NULL))
                rc = SOMBRA_EINVAL;
        if (rc == SOMBRA_OK) {
                op.name = copy_name(b, key);
                v = arena_alloc(b, sizeof(*v));
                rc = op.name == NULL || v == NULL ? SOMBRA_ENOMEM : copy_value(b, value, v);
                op.value = v;
        }
        return rc == SOMBRA_OK ? op_add(b, &op, NULL) : rc;
}

int
sombra_batch_node_delete(sombra_batch *b, uint64_t id)
{
        struct write_op op = {.kind = OP_NODE_DELETE, .id = id};
        int rc = batch_writable(b);

        return rc == SOMBRA_OK ? op_add(b, &op, NULL) : rc;
}

int
sombra_batch_edge_delete(sombra_batch *b, uint64_t id)
{
        struct write_op op = {.kind = OP_EDGE_DELETE, .id = id};
        int rc = batch_writable(b);

        return rc == SOMBRA_OK ? op_add(b, &op, NULL) : rc;
}

int
sombra_batch_submit(sombra_conn *conn, sombra_batch *b)
{
        int rc;

        if (b == NULL)
                return SOMBRA_EINVAL;
        if (b->n == 0)
                return SOMBRA_OK;
        applied_set(b, false);
        rc = engine_write(conn, b->ops, b->results, b->n);
        applied_set(b, rc == SOMBRA_OK);
        return rc;
}

int
sombra_batch_submit_async(sombra_conn *conn, sombra_batch *b, bool nonblocking, uint64_t *ticket)
{
        if (b == NULL || ticket == NULL || b->n == 0)
                return SOMBRA_EINVAL;
        applied_set(b, false); /* until the ticket is collected: no results */
        return engine_submit_async(conn, b->ops, b->results, b->n, nonblocking, &b->status, ticket);
}

int
sombra_batch_id(const sombra_batch *b, uint64_t ref, uint64_t *id)
{
        uint64_t i = ref & ~(1ull << 63);

        if (b == NULL || id == NULL || !(ref & (1ull << 63)) || i >= b->n ||
            __atomic_load_n(&b->status.in_flight, __ATOMIC_ACQUIRE) != 0 ||
            !__atomic_load_n(&b->status.applied, __ATOMIC_RELAXED) ||
            (b->ops[i].kind != OP_NODE_CREATE && b->ops[i].kind != OP_EDGE_CREATE))
                return SOMBRA_EINVAL;
        *id = b->results[i];
        return SOMBRA_OK;
}
