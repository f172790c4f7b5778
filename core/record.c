/*
 * record.c - the byte formats of nodes, edges and property index keys.
 *
 * Record formats (record.h has the layout; all integers big-endian)
 *   node:  u16 nlabels | nlabels x u32 label | props
 *   edge:  u64 src | u64 dst | u32 type | props
 *   props: u16 nprops | nprops x ( u32 key | u8 type | payload )
 *
 *   The encoding is canonical: a byte string decodes only if it is exactly
 *   what rec_encode_* writes for the decoded struct, so decode(b) succeeding
 *   implies encode(decode(b)) == b. The decoders therefore reject:
 *     - a record longer than SOMBRA_MAX_RECORD;
 *     - more than SOMBRA_MAX_LABELS labels or SOMBRA_MAX_PROPS properties;
 *     - a count whose minimal encoding does not fit in the bytes left (checked
 *       before anything is allocated, so a lying count costs nothing);
 *     - labels or keys that are not strictly ascending (unsorted or repeated);
 *     - a type byte outside enum sombra_type, a BOOL byte other than 0 or 1,
 *       a STRING or BYTES length over SOMBRA_MAX_VALUE or past the end;
 *     - any byte left over after the last property.
 *   Every read goes through struct reader, which checks the length left
 *   before touching a byte: the decoders are safe on arbitrary input.
 *
 *   The encoders refuse what the decoders would reject (EINVAL for unsorted
 *   labels or keys, labels on an edge, or a bad value; ETOOBIG for a limit),
 *   so a record that was written can always be read back. They size the
 *   record first and reserve it in one step, so `out` is untouched on error.
 *
 * Index keys
 *   u32 label | u32 key | tag | encoded value | u64 node, compared with
 *   memcmp (shorter first on a common prefix). The tag is the value's enum
 *   sombra_type number, which gives the type order NULL < BOOL < INT < DOUBLE
 *   < STRING < BYTES. After the tag:
 *     NULL    nothing
 *     BOOL    u8 0 or 1
 *     INT     u64 of the two's complement bits with the sign bit flipped
 *     DOUBLE  u64: -0.0 becomes 0.0 and every NaN the one quiet NaN
 *             0x7ff8000000000000; then a set sign bit flips all bits and a
 *             clear one flips the sign bit, which makes unsigned order equal
 *             numeric order, with the NaN above +inf
 *     STRING, BYTES  each byte as is, except 00 written as 00 FF; then 00 00.
 *             00 00 sorts below every continuation (00 FF or a non-zero
 *             byte), so a string sorts before its extensions, and no encoded
 *             value is a prefix of another, so `prefix | node` scans work.
 *   The escaped content is cut at REC_INDEX_PREFIX bytes, and only ever at
 *   a whole character: an 00 FF pair that would straddle the limit is left
 *   out. The cut key is thus exactly the full encoding of a prefix p(x) of
 *   the value, with p(x) the longest prefix whose escaped size fits. That
 *   keeps the order: for x < y first differing at i, either both prefixes
 *   reach past i and differ there as x and y do, or one stops at or before i
 *   and is a prefix of the other (equal escaped sizes up to i; y[i] > x[i]
 *   >= 0 means y[i] is never the 2-byte 00, so p(y) cannot stop at i while
 *   p(x) goes on). Hence x <= y implies key(x) <= key(y).
 *
 * Threads
 *   None of its own: a struct rec belongs to one thread at a time.
 */
#include "record.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SIGN_BIT      (UINT64_C(1) << 63)
#define CANONICAL_NAN UINT64_C(0x7ff8000000000000)
#define NODE_HEAD     2u  /* u16 nlabels */
#define EDGE_HEAD     20u /* u64 src | u64 dst | u32 type */
#define PROPS_HEAD    2u  /* u16 nprops */
#define PROP_MIN      5u  /* u32 key | u8 type, the size of a NULL property */
#define VALUE_KEY_MAX (1u + REC_INDEX_PREFIX + 2u)
#define INDEX_KEY_MAX (4u + 4u + VALUE_KEY_MAX + 8u)
#define ARRAY_MIN_CAP 8u

/* A cursor over untrusted bytes. Each read checks the bytes left first. */
struct reader {
        const uint8_t *p;
        size_t len;
        size_t pos;
};

static size_t
rd_left(const struct reader *rd)
{
        return rd->len - rd->pos;
}

/* Points *out at the next n bytes and skips them; false when fewer are left. */
static bool
rd_bytes(struct reader *rd, size_t n, const uint8_t **out)
{
        if (n > rd_left(rd))
                return false;
        *out = rd->p + rd->pos;
        rd->pos += n;
        return true;
}

static bool
rd_u8(struct reader *rd, uint8_t *v)
{
        const uint8_t *q;

        if (!rd_bytes(rd, 1, &q))
                return false;
        *v = q[0];
        return true;
}

static bool
rd_u16(struct reader *rd, uint16_t *v)
{
        const uint8_t *q;

        if (!rd_bytes(rd, 2, &q))
                return false;
        *v = get_be16(q);
        return true;
}

static bool
rd_u32(struct reader *rd, uint32_t *v)
{
        const uint8_t *q;

        if (!rd_bytes(rd, 4, &q))
                return false;
        *v = get_be32(q);
        return true;
}

static bool
rd_u64(struct reader *rd, uint64_t *v)
{
        const uint8_t *q;

        if (!rd_bytes(rd, 8, &q))
                return false;
        *v = get_be64(q);
        return true;
}

/* The capacity to grow an array of cap elements to so that it holds need. */
static uint32_t
grown_cap(uint32_t cap, uint32_t need)
{
        uint32_t n = cap < ARRAY_MIN_CAP ? ARRAY_MIN_CAP : cap;

        /* need is bounded by SOMBRA_MAX_PROPS, far below overflow. */
        while (n < need)
                n *= 2;
        return n;
}

static int
grow_labels(struct rec *r, uint32_t need)
{
        uint32_t cap;
        uint32_t *labels;

        if (need <= r->labels_cap)
                return SOMBRA_OK;
        cap = grown_cap(r->labels_cap, need);
        labels = realloc(r->labels, (size_t)cap * sizeof(*labels));
        if (labels == NULL)
                return SOMBRA_ENOMEM;
        r->labels = labels;
        r->labels_cap = cap;
        return SOMBRA_OK;
}

static int
grow_props(struct rec *r, uint32_t need)
{
        uint32_t cap;
        struct rec_prop *props;

        if (need <= r->props_cap)
                return SOMBRA_OK;
        cap = grown_cap(r->props_cap, need);
        props = realloc(r->props, (size_t)cap * sizeof(*props));
        if (props == NULL)
                return SOMBRA_ENOMEM;
        r->props = props;
        r->props_cap = cap;
        return SOMBRA_OK;
}

static int
decode_value(struct reader *rd, uint8_t type, struct sombra_value *v)
{
        const uint8_t *bytes;
        uint64_t u;
        uint32_t len;
        uint8_t b;

        switch (type) {
        case SOMBRA_NULL:
                break;
        case SOMBRA_BOOL:
                if (!rd_u8(rd, &b) || b > 1)
                        return SOMBRA_ECORRUPT;
                v->u.b = b == 1;
                break;
        case SOMBRA_INT:
                if (!rd_u64(rd, &u))
                        return SOMBRA_ECORRUPT;
                v->u.i = (int64_t)u;
                break;
        case SOMBRA_DOUBLE:
                if (!rd_u64(rd, &u))
                        return SOMBRA_ECORRUPT;
                memcpy(&v->u.d, &u, sizeof(u));
                break;
        case SOMBRA_STRING:
        case SOMBRA_BYTES:
                if (!rd_u32(rd, &len) || len > SOMBRA_MAX_VALUE || !rd_bytes(rd, len, &bytes))
                        return SOMBRA_ECORRUPT;
                v->u.s.ptr = bytes;
                v->u.s.len = len;
                break;
        default:
                return SOMBRA_ECORRUPT;
        }
        v->type = (enum sombra_type)type;
        return SOMBRA_OK;
}

/* Decodes the props section, which must end exactly at the end of the record. */
static int
decode_props(struct rec *r, struct reader *rd)
{
        uint16_t n;
        int rc;

        if (!rd_u16(rd, &n) || n > SOMBRA_MAX_PROPS || (size_t)n * PROP_MIN > rd_left(rd))
                return SOMBRA_ECORRUPT;
        rc = grow_props(r, n);
        if (rc != SOMBRA_OK)
                return rc;

        for (uint32_t i = 0; i < n; i++) {
                struct rec_prop *prop = &r->props[i];
                uint8_t type;

                if (!rd_u32(rd, &prop->key) || (i > 0 && prop->key <= prop[-1].key) ||
                    !rd_u8(rd, &type))
                        return SOMBRA_ECORRUPT;
                rc = decode_value(rd, type, &prop->value);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        if (rd_left(rd) != 0)
                return SOMBRA_ECORRUPT;
        r->nprops = n;
        return SOMBRA_OK;
}

/*
 * On error r is left as rec_reset leaves it, never half-decoded.
 */
int
rec_decode_node(struct rec *r, const uint8_t *p, size_t len)
{
        struct reader rd = {p, len, 0};
        uint16_t n;
        int rc = SOMBRA_ECORRUPT;

        rec_reset(r);
        if (len > SOMBRA_MAX_RECORD || !rd_u16(&rd, &n) || n > SOMBRA_MAX_LABELS ||
            (size_t)n * 4 > rd_left(&rd))
                goto label_fail;
        rc = grow_labels(r, n);
        if (rc != SOMBRA_OK)
                goto label_fail;

        rc = SOMBRA_ECORRUPT;
        for (uint32_t i = 0; i < n; i++) {
                if (!rd_u32(&rd, &r->labels[i]) || (i > 0 && r->labels[i] <= r->labels[i - 1]))
                        goto label_fail;
        }
        r->nlabels = n;

        rc = decode_props(r, &rd);
        if (rc != SOMBRA_OK)
                goto label_fail;
        return SOMBRA_OK;

label_fail:
        rec_reset(r);
        return rc;
}

/* On error r is left as rec_reset leaves it. */
int
rec_decode_edge(struct rec *r, const uint8_t *p, size_t len)
{
        struct reader rd = {p, len, 0};
        int rc = SOMBRA_ECORRUPT;

        rec_reset(r);
        if (len > SOMBRA_MAX_RECORD || !rd_u64(&rd, &r->src) || !rd_u64(&rd, &r->dst) ||
            !rd_u32(&rd, &r->type))
                goto label_fail;
        rc = decode_props(r, &rd);
        if (rc != SOMBRA_OK)
                goto label_fail;
        return SOMBRA_OK;

label_fail:
        rec_reset(r);
        return rc;
}

/* Bytes a value takes in a record: the type byte and the payload. */
static size_t
value_size(const struct sombra_value *v)
{
        switch (v->type) {
        case SOMBRA_BOOL:
                return 2;
        case SOMBRA_INT:
        case SOMBRA_DOUBLE:
                return 9;
        case SOMBRA_STRING:
        case SOMBRA_BYTES:
                return 5 + v->u.s.len;
        default: /* SOMBRA_NULL, the type byte alone; rec_value_check refused the rest */
                return 1;
        }
}

/*
 * Checks the props of r and adds their encoded size to *size, which must not
 * pass SOMBRA_MAX_RECORD. Checking the running total after each value keeps
 * the sum from overflowing even where size_t is 32 bits.
 */
static int
props_size(const struct rec *r, size_t *size)
{
        size_t total = *size + PROPS_HEAD;
        int rc;

        if (r->nprops > SOMBRA_MAX_PROPS)
                return SOMBRA_ETOOBIG;
        for (uint32_t i = 0; i < r->nprops; i++) {
                const struct rec_prop *prop = &r->props[i];

                if (i > 0 && prop->key <= prop[-1].key)
                        return SOMBRA_EINVAL;
                rc = rec_value_check(&prop->value);
                if (rc != SOMBRA_OK)
                        return rc;
                total += 4 + value_size(&prop->value);
                if (total > SOMBRA_MAX_RECORD)
                        return SOMBRA_ETOOBIG;
        }
        *size = total;
        return SOMBRA_OK;
}

static uint8_t *
write_props(uint8_t *p, const struct rec *r)
{
        put_be16(p, (uint16_t)r->nprops);
        p += 2;
        for (uint32_t i = 0; i < r->nprops; i++) {
                const struct sombra_value *v = &r->props[i].value;
                uint64_t u;

                put_be32(p, r->props[i].key);
                p += 4;
                *p++ = (uint8_t)v->type;
                switch (v->type) {
                case SOMBRA_BOOL:
                        *p++ = v->u.b ? 1 : 0;
                        break;
                case SOMBRA_INT:
                        put_be64(p, (uint64_t)v->u.i);
                        p += 8;
                        break;
                case SOMBRA_DOUBLE:
                        memcpy(&u, &v->u.d, sizeof(u));
                        put_be64(p, u);
                        p += 8;
                        break;
                case SOMBRA_STRING:
                case SOMBRA_BYTES:
                        put_be32(p, (uint32_t)v->u.s.len);
                        p += 4;
                        if (v->u.s.len > 0)
                                memcpy(p, v->u.s.ptr, v->u.s.len);
                        p += v->u.s.len;
                        break;
                case SOMBRA_NULL:
                        break;
                }
        }
        return p;
}

int
rec_encode_node(const struct rec *r, struct buf *out)
{
        size_t size = NODE_HEAD + (size_t)r->nlabels * 4;
        uint8_t *p;
        int rc;

        if (r->nlabels > SOMBRA_MAX_LABELS)
                return SOMBRA_ETOOBIG;
        for (uint32_t i = 1; i < r->nlabels; i++) {
                if (r->labels[i] <= r->labels[i - 1])
                        return SOMBRA_EINVAL;
        }
        rc = props_size(r, &size);
        if (rc != SOMBRA_OK)
                return rc;
        rc = buf_reserve(out, size);
        if (rc != SOMBRA_OK)
                return rc;

        p = out->data;
        put_be16(p, (uint16_t)r->nlabels);
        p += 2;
        for (uint32_t i = 0; i < r->nlabels; i++, p += 4)
                put_be32(p, r->labels[i]);
        p = write_props(p, r);
        assert((size_t)(p - out->data) == size);
        out->len = size;
        return SOMBRA_OK;
}

int
rec_encode_edge(const struct rec *r, struct buf *out)
{
        size_t size = EDGE_HEAD;
        uint8_t *p;
        int rc;

        /* The edge format has no labels; dropping them silently would lose data. */
        if (r->nlabels != 0)
                return SOMBRA_EINVAL;
        rc = props_size(r, &size);
        if (rc != SOMBRA_OK)
                return rc;
        rc = buf_reserve(out, size);
        if (rc != SOMBRA_OK)
                return rc;

        p = out->data;
        put_be64(p, r->src);
        put_be64(p + 8, r->dst);
        put_be32(p + 16, r->type);
        p = write_props(p + EDGE_HEAD, r);
        assert((size_t)(p - out->data) == size);
        out->len = size;
        return SOMBRA_OK;
}

void
rec_reset(struct rec *r)
{
        r->src = 0;
        r->dst = 0;
        r->type = 0;
        r->nlabels = 0;
        r->nprops = 0;
}

void
rec_free(struct rec *r)
{
        free(r->labels);
        free(r->props);
        memset(r, 0, sizeof(*r));
}

/* The index of the first property whose key is >= key. */
static uint32_t
prop_lower_bound(const struct rec *r, uint32_t key)
{
        uint32_t lo = 0, hi = r->nprops;

        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;

                if (r->props[mid].key < key)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* The index of the first label that is >= label. */
static uint32_t
label_lower_bound(const struct rec *r, uint32_t label)
{
        uint32_t lo = 0, hi = r->nlabels;

        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;

                if (r->labels[mid] < label)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* Also SOMBRA_EINVAL or SOMBRA_ETOOBIG from rec_value_check; r unchanged on error. */
int
rec_set_prop(struct rec *r, uint32_t key, const struct sombra_value *v)
{
        uint32_t i;
        int rc;

        rc = rec_value_check(v);
        if (rc != SOMBRA_OK)
                return rc;
        i = prop_lower_bound(r, key);
        if (i < r->nprops && r->props[i].key == key) {
                r->props[i].value = *v;
                return SOMBRA_OK;
        }
        if (r->nprops >= SOMBRA_MAX_PROPS)
                return SOMBRA_ETOOBIG;
        rc = grow_props(r, r->nprops + 1);
        if (rc != SOMBRA_OK)
                return rc;
        memmove(&r->props[i + 1], &r->props[i], (r->nprops - i) * sizeof(*r->props));
        r->props[i].key = key;
        r->props[i].value = *v;
        r->nprops++;
        return SOMBRA_OK;
}

bool
rec_del_prop(struct rec *r, uint32_t key)
{
        uint32_t i = prop_lower_bound(r, key);

        if (i == r->nprops || r->props[i].key != key)
                return false;
        memmove(&r->props[i], &r->props[i + 1], (r->nprops - i - 1) * sizeof(*r->props));
        r->nprops--;
        return true;
}

const struct sombra_value *
rec_get_prop(const struct rec *r, uint32_t key)
{
        uint32_t i = prop_lower_bound(r, key);

        if (i == r->nprops || r->props[i].key != key)
                return NULL;
        return &r->props[i].value;
}

/* *added may be NULL. r unchanged on error. */
int
rec_add_label(struct rec *r, uint32_t label, bool *added)
{
        uint32_t i = label_lower_bound(r, label);
        int rc;

        if (i < r->nlabels && r->labels[i] == label) {
                if (added != NULL)
                        *added = false;
                return SOMBRA_OK;
        }
        if (r->nlabels >= SOMBRA_MAX_LABELS)
                return SOMBRA_ETOOBIG;
        rc = grow_labels(r, r->nlabels + 1);
        if (rc != SOMBRA_OK)
                return rc;
        memmove(&r->labels[i + 1], &r->labels[i], (r->nlabels - i) * sizeof(*r->labels));
        r->labels[i] = label;
        r->nlabels++;
        if (added != NULL)
                *added = true;
        return SOMBRA_OK;
}

bool
rec_del_label(struct rec *r, uint32_t label)
{
        uint32_t i = label_lower_bound(r, label);

        if (i == r->nlabels || r->labels[i] != label)
                return false;
        memmove(&r->labels[i], &r->labels[i + 1], (r->nlabels - i - 1) * sizeof(*r->labels));
        r->nlabels--;
        return true;
}

bool
rec_has_label(const struct rec *r, uint32_t label)
{
        uint32_t i = label_lower_bound(r, label);

        return i < r->nlabels && r->labels[i] == label;
}

int
rec_value_check(const struct sombra_value *v)
{
        if (v == NULL)
                return SOMBRA_EINVAL;
        switch (v->type) {
        case SOMBRA_NULL:
        case SOMBRA_BOOL:
        case SOMBRA_INT:
        case SOMBRA_DOUBLE:
                return SOMBRA_OK;
        case SOMBRA_STRING:
        case SOMBRA_BYTES:
                if (v->u.s.ptr == NULL && v->u.s.len != 0)
                        return SOMBRA_EINVAL;
                return v->u.s.len > SOMBRA_MAX_VALUE ? SOMBRA_ETOOBIG : SOMBRA_OK;
        default:
                return SOMBRA_EINVAL;
        }
}

static int
cmp_double(double a, double b)
{
        bool a_nan = isnan(a), b_nan = isnan(b);

        /* Every NaN equals every other and sorts above +inf; -0.0 == 0.0 falls out of ==. */
        if (a_nan || b_nan)
                return a_nan == b_nan ? 0 : a_nan ? 1 : -1;
        return a < b ? -1 : a > b ? 1 : 0;
}

static int
cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
        size_t n = alen < blen ? alen : blen;
        int c = n > 0 ? memcmp(a, b, n) : 0;

        if (c != 0)
                return c < 0 ? -1 : 1;
        return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int
rec_value_cmp(const struct sombra_value *a, const struct sombra_value *b)
{
        if (a->type != b->type)
                return a->type < b->type ? -1 : 1;
        switch (a->type) {
        case SOMBRA_BOOL:
                return (int)a->u.b - (int)b->u.b;
        case SOMBRA_INT:
                return a->u.i < b->u.i ? -1 : a->u.i > b->u.i ? 1 : 0;
        case SOMBRA_DOUBLE:
                return cmp_double(a->u.d, b->u.d);
        case SOMBRA_STRING:
        case SOMBRA_BYTES:
                return cmp_bytes(a->u.s.ptr, a->u.s.len, b->u.s.ptr, b->u.s.len);
        default:
                return 0;
        }
}

/* The order-preserving u64 image of a double (see the design comment). */
static uint64_t
double_key(double d)
{
        uint64_t bits;

        memcpy(&bits, &d, sizeof(bits));
        if (isnan(d))
                bits = CANONICAL_NAN;
        /* On the bits, not with d == 0.0, so that no float optimisation can drop it. */
        else if ((bits << 1) == 0)
                bits = 0;
        return (bits & SIGN_BIT) ? ~bits : bits | SIGN_BIT;
}

/* Writes the escaped, possibly cut, bytes and the 00 00 terminator. */
static uint8_t *
write_escaped(uint8_t *p, const uint8_t *s, size_t len)
{
        size_t used = 0;

        for (size_t i = 0; i < len; i++) {
                size_t width = s[i] == 0 ? 2 : 1;

                if (used + width > REC_INDEX_PREFIX)
                        break;
                *p++ = s[i];
                if (s[i] == 0)
                        *p++ = 0xff;
                used += width;
        }
        *p++ = 0;
        *p++ = 0;
        return p;
}

static uint8_t *
write_index_value(uint8_t *p, const struct sombra_value *v)
{
        *p++ = (uint8_t)v->type;
        switch (v->type) {
        case SOMBRA_BOOL:
                *p++ = v->u.b ? 1 : 0;
                break;
        case SOMBRA_INT:
                put_be64(p, (uint64_t)v->u.i ^ SIGN_BIT);
                p += 8;
                break;
        case SOMBRA_DOUBLE:
                put_be64(p, double_key(v->u.d));
                p += 8;
                break;
        case SOMBRA_STRING:
        case SOMBRA_BYTES:
                p = write_escaped(p, v->u.s.ptr, v->u.s.len);
                break;
        case SOMBRA_NULL:
                break;
        }
        return p;
}

/*
 * With v NULL, appends label | key alone: the prefix every key of the index
 * starts with, where a scan with no lower bound begins. Also SOMBRA_EINVAL or
 * SOMBRA_ETOOBIG from rec_value_check; out unchanged on error. Reserves room
 * for a whole key, node id included, so that rec_index_key cannot fail once
 * the prefix is in.
 */
int
rec_index_prefix(struct buf *out, uint32_t label, uint32_t key, const struct sombra_value *v)
{
        uint8_t *p;
        int rc;

        if (v != NULL) {
                rc = rec_value_check(v);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        if (out->len > SIZE_MAX - INDEX_KEY_MAX)
                return SOMBRA_ENOMEM;
        rc = buf_reserve(out, out->len + INDEX_KEY_MAX);
        if (rc != SOMBRA_OK)
                return rc;

        p = out->data + out->len;
        put_be32(p, label);
        put_be32(p + 4, key);
        p += 8;
        if (v != NULL)
                p = write_index_value(p, v);
        out->len = (size_t)(p - out->data);
        return SOMBRA_OK;
}

int
rec_index_key(struct buf *out, uint32_t label, uint32_t key, const struct sombra_value *v,
              uint64_t node)
{
        int rc;

        /* A whole key always holds a value; only a lookup prefix may omit it. */
        if (v == NULL)
                return SOMBRA_EINVAL;
        rc = rec_index_prefix(out, label, key, v);
        if (rc != SOMBRA_OK)
                return rc;
        assert(out->cap - out->len >= 8);
        put_be64(out->data + out->len, node);
        out->len += 8;
        return SOMBRA_OK;
}
