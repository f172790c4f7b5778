/*
 * record.c - the byte formats of nodes, edges and property index keys.
 *
 * Record formats (record.h has the layout)
 *   Records are written compact: a 0x80 format byte, then varints (LEB128,
 *   shortest form) for counts, ids and lengths, a zigzag varint for INT,
 *   and a property's key and type in one varint tag (key << 3 | type).
 *   Most fields of a real graph are small numbers, so a one-edge record
 *   with one INT property takes about 15 bytes where the fixed format of
 *   earlier files took 35: fewer pages per tree, fewer bytes to log and to
 *   write back.
 *   Records of that fixed format (big-endian u16 counts, u32 ids and
 *   lengths, u64 node ids and INTs) are still read, so files written before
 *   keep working; they are rewritten compact when they change. The format
 *   byte tells them apart: a fixed node record begins with the high byte of
 *   its label count (0 or 1), a fixed edge record with the high byte of its
 *   source id (0 below 2^56 nodes, which a counter never reaches).
 *
 *   Within its format the encoding is canonical: a compact record decodes
 *   only if it is exactly what rec_encode_* writes for the decoded struct,
 *   so for those decode(b) succeeding implies encode(decode(b)) == b. The
 *   decoders reject in both formats:
 *     - a record longer than SOMBRA_MAX_RECORD;
 *     - more than SOMBRA_MAX_LABELS labels or SOMBRA_MAX_PROPS properties;
 *     - a count whose minimal encoding does not fit in the bytes left (checked
 *       before anything is allocated, so a lying count costs nothing);
 *     - labels or keys that are not strictly ascending (unsorted or repeated);
 *     - a type byte outside enum sombra_type, a BOOL byte other than 0 or 1,
 *       a STRING or BYTES length over SOMBRA_MAX_VALUE or past the end;
 *     - a varint longer than its shortest form or past 64 bits, an id,
 *       key or length past 32 bits where the fixed format had 32;
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
#define VALUE_KEY_MAX (1u + REC_INDEX_PREFIX + 2u)
#define INDEX_KEY_MAX (4u + 4u + VALUE_KEY_MAX + 8u)
#define ARRAY_MIN_CAP 8u
#define TAG_TYPE_BITS 3u /* a compact property's tag: key << 3 | type */

/* Per format, the fewest bytes a label and a property (a NULL one) take. */
#define FIXED_LABEL_MIN   4u
#define FIXED_PROP_MIN    5u /* u32 key | u8 type */
#define COMPACT_LABEL_MIN 1u
#define COMPACT_PROP_MIN  1u /* the tag */

/*
 * A cursor over untrusted bytes. Each read checks the bytes left first.
 * `compact` says which format the record is in: the rd_count, rd_id and
 * rd_int readers read a field in that format's width.
 */
struct reader {
        const uint8_t *p;
        size_t len;
        size_t pos;
        bool compact;
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

/*
 * A varint of at most 64 bits (buf.h), in its shortest form only, so that a
 * decoded record encodes back to the same bytes.
 */
static bool
rd_varint(struct reader *rd, uint64_t *v)
{
        size_t n = varint_get(rd->p + rd->pos, rd_left(rd), 10, v);

        rd->pos += n;
        return n > 0;
}

/* A varint of at most max. */
static bool
rd_varint32(struct reader *rd, uint32_t max, uint32_t *v)
{
        uint64_t u;

        if (!rd_varint(rd, &u) || u > max)
                return false;
        *v = (uint32_t)u;
        return true;
}

/* A label or property count: u16 or a varint; false past max. */
static bool
rd_count(struct reader *rd, uint32_t max, uint32_t *n)
{
        uint16_t u;

        if (rd->compact)
                return rd_varint32(rd, max, n);
        if (!rd_u16(rd, &u) || u > max)
                return false;
        *n = u;
        return true;
}

/* A 32-bit id or length: u32 or a varint. */
static bool
rd_id32(struct reader *rd, uint32_t *id)
{
        return rd->compact ? rd_varint32(rd, UINT32_MAX, id) : rd_u32(rd, id);
}

/* A node id: u64 or a varint. */
static bool
rd_id64(struct reader *rd, uint64_t *id)
{
        return rd->compact ? rd_varint(rd, id) : rd_u64(rd, id);
}

/* An INT payload: eight bytes of two's complement, or a zigzag varint. */
static bool
rd_int(struct reader *rd, int64_t *i)
{
        uint64_t u;

        if (!rd->compact) {
                if (!rd_u64(rd, &u))
                        return false;
                *i = (int64_t)u;
                return true;
        }
        if (!rd_varint(rd, &u))
                return false;
        *i = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
        return true;
}

/* A property's key and type: u32 key | u8 type, or the varint key << 3 | type. */
static bool
rd_prop_head(struct reader *rd, uint32_t *key, uint8_t *type)
{
        uint64_t tag;

        if (!rd->compact)
                return rd_u32(rd, key) && rd_u8(rd, type);
        if (!rd_varint(rd, &tag) || (tag >> TAG_TYPE_BITS) > UINT32_MAX)
                return false;
        *key = (uint32_t)(tag >> TAG_TYPE_BITS);
        *type = (uint8_t)(tag & ((1u << TAG_TYPE_BITS) - 1));
        return true;
}

/* Small magnitudes of either sign become small unsigned numbers: 0, -1, 1, -2... */
static uint64_t
zigzag(int64_t i)
{
        return ((uint64_t)i << 1) ^ (uint64_t)(i >> 63);
}

static uint64_t
prop_tag(uint32_t key, enum sombra_type type)
{
        return (uint64_t)key << TAG_TYPE_BITS | (uint64_t)type;
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
                if (!rd_int(rd, &v->u.i))
                        return SOMBRA_ECORRUPT;
                break;
        case SOMBRA_DOUBLE:
                if (!rd_u64(rd, &u))
                        return SOMBRA_ECORRUPT;
                memcpy(&v->u.d, &u, sizeof(u));
                break;
        case SOMBRA_STRING:
        case SOMBRA_BYTES:
                if (!rd_id32(rd, &len) || len > SOMBRA_MAX_VALUE || !rd_bytes(rd, len, &bytes))
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
        size_t prop_min = rd->compact ? COMPACT_PROP_MIN : FIXED_PROP_MIN;
        uint32_t n;
        int rc;

        if (!rd_count(rd, SOMBRA_MAX_PROPS, &n) || (size_t)n * prop_min > rd_left(rd))
                return SOMBRA_ECORRUPT;
        rc = grow_props(r, n);
        if (rc != SOMBRA_OK)
                return rc;

        for (uint32_t i = 0; i < n; i++) {
                struct rec_prop *prop = &r->props[i];
                uint8_t type;

                if (!rd_prop_head(rd, &prop->key, &type) || (i > 0 && prop->key <= prop[-1].key))
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

/* A reader over a record, in the format its first byte names. */
static struct reader
record_reader(const uint8_t *p, size_t len)
{
        struct reader rd = {p, len, 0, len > 0 && p[0] == REC_COMPACT};

        rd.pos = rd.compact ? 1 : 0;
        return rd;
}

/*
 * On error r is left as rec_reset leaves it, never half-decoded.
 */
int
rec_decode_node(struct rec *r, const uint8_t *p, size_t len)
{
        struct reader rd = record_reader(p, len);
        size_t label_min = rd.compact ? COMPACT_LABEL_MIN : FIXED_LABEL_MIN;
        uint32_t n;
        int rc = SOMBRA_ECORRUPT;

        rec_reset(r);
        if (len > SOMBRA_MAX_RECORD || !rd_count(&rd, SOMBRA_MAX_LABELS, &n) ||
            (size_t)n * label_min > rd_left(&rd))
                goto label_fail;
        rc = grow_labels(r, n);
        if (rc != SOMBRA_OK)
                goto label_fail;

        rc = SOMBRA_ECORRUPT;
        for (uint32_t i = 0; i < n; i++) {
                if (!rd_id32(&rd, &r->labels[i]) || (i > 0 && r->labels[i] <= r->labels[i - 1]))
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
        struct reader rd = record_reader(p, len);
        int rc = SOMBRA_ECORRUPT;

        rec_reset(r);
        if (len > SOMBRA_MAX_RECORD || !rd_id64(&rd, &r->src) || !rd_id64(&rd, &r->dst) ||
            !rd_id32(&rd, &r->type))
                goto label_fail;
        rc = decode_props(r, &rd);
        if (rc != SOMBRA_OK)
                goto label_fail;
        return SOMBRA_OK;

label_fail:
        rec_reset(r);
        return rc;
}

/* Bytes a value's payload takes in a compact record (the tag aside). */
static size_t
payload_size(const struct sombra_value *v)
{
        switch (v->type) {
        case SOMBRA_BOOL:
                return 1;
        case SOMBRA_INT:
                return varint_size(zigzag(v->u.i));
        case SOMBRA_DOUBLE:
                return 8;
        case SOMBRA_STRING:
        case SOMBRA_BYTES:
                return varint_size(v->u.s.len) + v->u.s.len;
        default: /* SOMBRA_NULL, the tag alone; rec_value_check refused the rest */
                return 0;
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
        size_t total = *size + varint_size(r->nprops);
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
                total +=
                    varint_size(prop_tag(prop->key, prop->value.type)) + payload_size(&prop->value);
                if (total > SOMBRA_MAX_RECORD)
                        return SOMBRA_ETOOBIG;
        }
        *size = total;
        return SOMBRA_OK;
}

static uint8_t *
write_props(uint8_t *p, const struct rec *r)
{
        p = put_varint(p, r->nprops);
        for (uint32_t i = 0; i < r->nprops; i++) {
                const struct sombra_value *v = &r->props[i].value;
                uint64_t u;

                p = put_varint(p, prop_tag(r->props[i].key, v->type));
                switch (v->type) {
                case SOMBRA_BOOL:
                        *p++ = v->u.b ? 1 : 0;
                        break;
                case SOMBRA_INT:
                        p = put_varint(p, zigzag(v->u.i));
                        break;
                case SOMBRA_DOUBLE:
                        memcpy(&u, &v->u.d, sizeof(u));
                        put_be64(p, u);
                        p += 8;
                        break;
                case SOMBRA_STRING:
                case SOMBRA_BYTES:
                        p = put_varint(p, v->u.s.len);
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

/* Reserves size bytes in out and writes the format byte; the rest is the caller's. */
static int
record_start(struct buf *out, size_t size, uint8_t **p)
{
        int rc = buf_reserve(out, size);

        if (rc != SOMBRA_OK)
                return rc;
        out->data[0] = REC_COMPACT;
        *p = out->data + 1;
        return SOMBRA_OK;
}

int
rec_encode_node(const struct rec *r, struct buf *out)
{
        size_t size = 1 + varint_size(r->nlabels);
        uint8_t *p;
        int rc;

        if (r->nlabels > SOMBRA_MAX_LABELS)
                return SOMBRA_ETOOBIG;
        for (uint32_t i = 0; i < r->nlabels; i++) {
                if (i > 0 && r->labels[i] <= r->labels[i - 1])
                        return SOMBRA_EINVAL;
                size += varint_size(r->labels[i]);
        }
        rc = props_size(r, &size);
        if (rc == SOMBRA_OK)
                rc = record_start(out, size, &p);
        if (rc != SOMBRA_OK)
                return rc;
        p = put_varint(p, r->nlabels);
        for (uint32_t i = 0; i < r->nlabels; i++)
                p = put_varint(p, r->labels[i]);
        p = write_props(p, r);
        assert((size_t)(p - out->data) == size);
        out->len = size;
        return SOMBRA_OK;
}

int
rec_encode_edge(const struct rec *r, struct buf *out)
{
        size_t size = 1 + varint_size(r->src) + varint_size(r->dst) + varint_size(r->type);
        uint8_t *p;
        int rc;

        /* The edge format has no labels; dropping them silently would lose data. */
        if (r->nlabels != 0)
                return SOMBRA_EINVAL;
        rc = props_size(r, &size);
        if (rc == SOMBRA_OK)
                rc = record_start(out, size, &p);
        if (rc != SOMBRA_OK)
                return rc;
        p = put_varint(p, r->src);
        p = put_varint(p, r->dst);
        p = put_varint(p, r->type);
        p = write_props(p, r);
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

/* ---- keys of the nodes, edges, labels and adj trees ---- */

/* A number in the ordered form: its byte count, then those bytes big-endian. */
static uint8_t *
put_ordered(uint8_t *p, uint64_t v)
{
        uint8_t n = 0;

        for (uint64_t x = v; x != 0; x >>= 8)
                n++;
        *p++ = n;
        for (uint8_t i = n; i > 0; i--)
                *p++ = (uint8_t)(v >> (8 * (i - 1)));
        return p;
}

/* Reads an ordered number of at most max bytes, in its one valid form. */
static bool
rd_ordered(struct reader *rd, unsigned max, uint64_t *v)
{
        const uint8_t *q;
        uint8_t n;

        if (!rd_u8(rd, &n) || n > max || !rd_bytes(rd, n, &q) || (n > 0 && q[0] == 0))
                return false;
        *v = 0;
        for (uint8_t i = 0; i < n; i++)
                *v = *v << 8 | q[i];
        return true;
}

/* A number of a key: ordered (compact) or big-endian in `width` bytes, 4 or 8. */
static uint8_t *
put_key_num(uint8_t *p, bool compact, unsigned width, uint64_t v)
{
        if (compact)
                return put_ordered(p, v);
        if (width == 4)
                put_be32(p, (uint32_t)v);
        else
                put_be64(p, v);
        return p + width;
}

static bool
rd_key_num(struct reader *rd, unsigned width, uint64_t *v)
{
        uint32_t u;

        if (rd->compact)
                return rd_ordered(rd, width, v);
        if (width == 8)
                return rd_u64(rd, v);
        if (!rd_u32(rd, &u))
                return false;
        *v = u;
        return true;
}

size_t
rec_id(uint8_t k[REC_ID_MAX], bool compact, uint64_t id)
{
        return (size_t)(put_key_num(k, compact, 8, id) - k);
}

int
rec_id_decode(const uint8_t *k, size_t klen, bool compact, uint64_t *id)
{
        struct reader rd = {k, klen, 0, compact};

        return rd_key_num(&rd, 8, id) && rd_left(&rd) == 0 ? SOMBRA_OK : SOMBRA_ECORRUPT;
}

size_t
rec_label_key(uint8_t k[REC_LABEL_KEY_MAX], bool compact, uint32_t label, const uint64_t *node)
{
        uint8_t *p = put_key_num(k, compact, 4, label);

        if (node != NULL)
                p = put_key_num(p, compact, 8, *node);
        return (size_t)(p - k);
}

int
rec_label_key_decode(const uint8_t *k, size_t klen, bool compact, uint32_t *label, uint64_t *node)
{
        struct reader rd = {k, klen, 0, compact};
        uint64_t l;

        if (!rd_key_num(&rd, 4, &l) || !rd_key_num(&rd, 8, node) || rd_left(&rd) != 0)
                return SOMBRA_ECORRUPT;
        *label = (uint32_t)l;
        return SOMBRA_OK;
}

size_t
rec_adj_prefix(uint8_t k[REC_ADJ_KEY_MAX], bool compact, uint64_t node, uint8_t dir,
               const uint32_t *type)
{
        uint8_t *p = put_key_num(k, compact, 8, node);

        *p++ = dir;
        if (type != NULL)
                p = put_key_num(p, compact, 4, *type);
        return (size_t)(p - k);
}

size_t
rec_adj_key(uint8_t k[REC_ADJ_KEY_MAX], bool compact, const struct rec_adj *a)
{
        uint8_t *p = k + rec_adj_prefix(k, compact, a->node, a->dir, &a->type);

        return (size_t)(put_key_num(p, compact, 8, a->edge) - k);
}

int
rec_adj_key_decode(const uint8_t *k, size_t klen, bool compact, struct rec_adj *a)
{
        struct reader rd = {k, klen, 0, compact};
        uint64_t type;

        if (!rd_key_num(&rd, 8, &a->node) || !rd_u8(&rd, &a->dir) || a->dir > 1 ||
            !rd_key_num(&rd, 4, &type) || !rd_key_num(&rd, 8, &a->edge) || rd_left(&rd) != 0)
                return SOMBRA_ECORRUPT;
        a->type = (uint32_t)type;
        return SOMBRA_OK;
}
