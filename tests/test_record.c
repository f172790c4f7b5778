/*
 * test_record.c - the record codec, property and label editing, the value
 * order and the order-preserving index key encoding.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "support.h"

static struct sombra_value
v_null(void)
{
        return (struct sombra_value){.type = SOMBRA_NULL};
}

static struct sombra_value
v_bool(bool b)
{
        return (struct sombra_value){.type = SOMBRA_BOOL, .u.b = b};
}

static struct sombra_value
v_int(int64_t i)
{
        return (struct sombra_value){.type = SOMBRA_INT, .u.i = i};
}

static struct sombra_value
v_double(double d)
{
        return (struct sombra_value){.type = SOMBRA_DOUBLE, .u.d = d};
}

static struct sombra_value
v_bin(enum sombra_type type, const void *p, size_t len)
{
        return (struct sombra_value){.type = type, .u.s = {p, len}};
}

static double
double_from_bits(uint64_t bits)
{
        double d;

        memcpy(&d, &bits, sizeof(d));
        return d;
}

static uint64_t
bits_of(double d)
{
        uint64_t bits;

        memcpy(&bits, &d, sizeof(bits));
        return bits;
}

/* Byte-string order, the order of the props tree: memcmp, then shorter first. */
static int
key_cmp(const struct buf *a, const struct buf *b)
{
        size_t n = a->len < b->len ? a->len : b->len;
        int c = n > 0 ? memcmp(a->data, b->data, n) : 0;

        if (c != 0)
                return c < 0 ? -1 : 1;
        return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

/* Values are the same when types match and payloads match bit for bit. */
static void
expect_same_value(const struct sombra_value *a, const struct sombra_value *b)
{
        cr_assert(eq(int, a->type, b->type));
        switch (a->type) {
        case SOMBRA_BOOL:
                cr_assert(eq(int, a->u.b, b->u.b));
                break;
        case SOMBRA_INT:
                cr_assert(eq(i64, a->u.i, b->u.i));
                break;
        case SOMBRA_DOUBLE:
                cr_assert(eq(u64, bits_of(a->u.d), bits_of(b->u.d)));
                break;
        case SOMBRA_STRING:
        case SOMBRA_BYTES:
                cr_assert(eq(sz, a->u.s.len, b->u.s.len));
                if (a->u.s.len > 0)
                        cr_assert(eq(int, memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len), 0));
                break;
        default:
                break;
        }
}

static void
expect_same_rec(const struct rec *a, const struct rec *b)
{
        cr_assert(eq(u64, a->src, b->src));
        cr_assert(eq(u64, a->dst, b->dst));
        cr_assert(eq(u32, a->type, b->type));
        cr_assert(eq(u32, a->nlabels, b->nlabels));
        for (uint32_t i = 0; i < a->nlabels; i++)
                cr_assert(eq(u32, a->labels[i], b->labels[i]));
        cr_assert(eq(u32, a->nprops, b->nprops));
        for (uint32_t i = 0; i < a->nprops; i++) {
                cr_assert(eq(u32, a->props[i].key, b->props[i].key));
                expect_same_value(&a->props[i].value, &b->props[i].value);
        }
}

static const uint8_t with_zeros[] = {'a', 0, 'b', 0, 0, 0xff};

/* A record with one or more properties of every type, keys set out of order. */
static void
fill_every_type(struct rec *r)
{
        struct sombra_value vals[] = {
            v_null(),
            v_bool(false),
            v_bool(true),
            v_int(INT64_MIN),
            v_int(-1),
            v_int(INT64_MAX),
            v_double(-0.0),
            v_double(double_from_bits(0xfff0000000000123ull)), /* a NaN with a payload */
            v_double(-INFINITY),
            v_double(DBL_MIN / 4), /* subnormal */
            v_bin(SOMBRA_STRING, "", 0),
            v_bin(SOMBRA_STRING, NULL, 0),
            v_bin(SOMBRA_STRING, "graph", 5),
            v_bin(SOMBRA_BYTES, with_zeros, sizeof(with_zeros)),
            v_bin(SOMBRA_BYTES, NULL, 0),
        };
        size_t n = sizeof(vals) / sizeof(vals[0]);

        for (size_t i = 0; i < n; i++) {
                uint32_t key = (uint32_t)((i * 7919) % 1000) + (i == 3 ? UINT32_MAX - 1000 : 0);

                cr_assert(eq(int, rec_set_prop(r, key, &vals[i]), SOMBRA_OK));
        }
        cr_assert(eq(u32, r->nprops, n));
}

Test(record, node_round_trips_every_value_type)
{
        struct rec r = REC_INIT, back = REC_INIT;
        struct buf out = BUF_INIT, again = BUF_INIT;
        uint32_t labels[] = {90, 3, UINT32_MAX, 0, 17};

        for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
                cr_assert(eq(int, rec_add_label(&r, labels[i], NULL), SOMBRA_OK));
        fill_every_type(&r);
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_OK));
        cr_assert(eq(int, rec_decode_node(&back, out.data, out.len), SOMBRA_OK));
        expect_same_rec(&r, &back);

        /* Decoded strings point into the record bytes rather than copies. */
        for (uint32_t i = 0; i < back.nprops; i++) {
                const struct sombra_value *v = &back.props[i].value;

                if ((v->type == SOMBRA_STRING || v->type == SOMBRA_BYTES) && v->u.s.len > 0) {
                        cr_assert(ge(ptr, (void *)v->u.s.ptr, (void *)out.data));
                        cr_assert(lt(ptr, (void *)v->u.s.ptr, (void *)(out.data + out.len)));
                }
        }
        cr_assert(eq(int, rec_encode_node(&back, &again), SOMBRA_OK));
        cr_assert(eq(sz, again.len, out.len));
        cr_assert(eq(int, memcmp(again.data, out.data, out.len), 0));
        rec_free(&r);
        rec_free(&back);
        buf_free(&out);
        buf_free(&again);
}

Test(record, edge_round_trips_ends_type_and_props)
{
        struct rec r = REC_INIT, back = REC_INIT;
        struct buf out = BUF_INIT;

        r.src = 0x0102030405060708ull;
        r.dst = UINT64_MAX;
        r.type = 0xabcdef01u;
        fill_every_type(&r);
        cr_assert(eq(int, rec_encode_edge(&r, &out), SOMBRA_OK));
        cr_assert(eq(int, rec_decode_edge(&back, out.data, out.len), SOMBRA_OK));
        expect_same_rec(&r, &back);
        rec_free(&r);
        rec_free(&back);
        buf_free(&out);
}

/* r encodes (as a node, or an edge) to exactly want; r is freed. */
static void
expect_encoding(struct rec *r, bool edge, const uint8_t *want, size_t len)
{
        struct buf out = BUF_INIT;

        cr_assert(eq(int, edge ? rec_encode_edge(r, &out) : rec_encode_node(r, &out), SOMBRA_OK));
        cr_assert(eq(sz, out.len, len));
        cr_assert(eq(int, memcmp(out.data, want, len), 0));
        rec_free(r);
        buf_free(&out);
}

Test(record, node_encoding_matches_the_documented_layout)
{
        struct rec r = REC_INIT;
        struct sombra_value i = v_int(-2), s = v_bin(SOMBRA_STRING, "ab", 2), b = v_bool(true);
        const uint8_t want[] = {
            REC_COMPACT,       /* the format */
            0x02,              /* nlabels */
            0x01,              /* label 1 */
            0x82,        0x02, /* label 258, low seven bits first */
            0x03,              /* nprops */
            0x29,        0x01, /* 5 << 3 | BOOL, true */
            0x3a,        0x03, /* 7 << 3 | INT, zigzag(-2) */
            0x4c,        0x02, /* 9 << 3 | STRING, length 2 */
            'a',         'b',
        };

        cr_assert(eq(int, rec_add_label(&r, 258, NULL), SOMBRA_OK));
        cr_assert(eq(int, rec_add_label(&r, 1, NULL), SOMBRA_OK));
        cr_assert(eq(int, rec_set_prop(&r, 9, &s), SOMBRA_OK));
        cr_assert(eq(int, rec_set_prop(&r, 7, &i), SOMBRA_OK));
        cr_assert(eq(int, rec_set_prop(&r, 5, &b), SOMBRA_OK));
        expect_encoding(&r, false, want, sizeof(want));
}

Test(record, edge_encoding_matches_the_documented_layout)
{
        struct rec r = REC_INIT;
        struct sombra_value since = v_int(1700000000), w = v_double(0.5);
        const uint8_t want[] = {
            REC_COMPACT,                         /* the format */
            0x80,        0x01,                   /* src 128 */
            0x07,                                /* dst 7 */
            0x03,                                /* type 3 */
            0x02,                                /* nprops */
            0x0a,        0x80, 0xc4, 0x9f, 0xd5, /* 1 << 3 | INT, zigzag(1700000000) */
            0x0c,                                /* */
            0x13,        0x3f, 0xe0, 0,    0,    /* 2 << 3 | DOUBLE, the bits big-endian */
            0,           0,    0,    0,
        };

        r.src = 128;
        r.dst = 7;
        r.type = 3;
        cr_assert(eq(int, rec_set_prop(&r, 2, &w), SOMBRA_OK));
        cr_assert(eq(int, rec_set_prop(&r, 1, &since), SOMBRA_OK));
        expect_encoding(&r, true, want, sizeof(want));
}

/* Records as earlier files hold them, fixed-width: still read, and written back compact. */
Test(record, fixed_format_records_of_earlier_files_still_decode)
{
        static const uint8_t node[] = {
            0x00, 0x02,                                           /* nlabels */
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x02,       /* labels 1, 258 */
            0x00, 0x03,                                           /* nprops */
            0x00, 0x00, 0x00, 0x05, 0x01, 0x01,                   /* 5: BOOL true */
            0x00, 0x00, 0x00, 0x07, 0x02, 0xff, 0xff, 0xff, 0xff, /* 7: INT -2 */
            0xff, 0xff, 0xff, 0xfe,                               /* */
            0x00, 0x00, 0x00, 0x09, 0x04, 0x00, 0x00, 0x00, 0x02, /* 9: STRING len 2 */
            'a',  'b',
        };
        static const uint8_t edge[] = {
            0, 0,    0, 0,    0,    0,    0,    0x80, /* src 128 */
            0, 0,    0, 0,    0,    0,    0,    0x07, /* dst 7 */
            0, 0,    0, 0x03,                         /* type 3 */
            0, 0x01,                                  /* nprops */
            0, 0,    0, 0x01, 0x02,                   /* 1: INT 1700000000 */
            0, 0,    0, 0,    0x65, 0x53, 0xf1, 0x00,
        };
        struct rec r = REC_INIT, back = REC_INIT;
        struct buf out = BUF_INIT;

        cr_assert(eq(int, rec_decode_node(&r, node, sizeof(node)), SOMBRA_OK));
        cr_assert(eq(u32, r.nlabels, 2));
        cr_assert(eq(u32, r.labels[1], 258));
        cr_assert(eq(u32, r.nprops, 3));
        cr_assert(eq(int, r.props[0].value.u.b, true));
        cr_assert(eq(i64, r.props[1].value.u.i, -2));
        cr_assert(eq(sz, r.props[2].value.u.s.len, 2));
        cr_assert(eq(int, memcmp(r.props[2].value.u.s.ptr, "ab", 2), 0));
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_OK));
        cr_assert(eq(u8, out.data[0], REC_COMPACT));
        cr_assert(lt(sz, out.len, sizeof(node)));
        cr_assert(eq(int, rec_decode_node(&back, out.data, out.len), SOMBRA_OK));
        expect_same_rec(&r, &back);

        cr_assert(eq(int, rec_decode_edge(&r, edge, sizeof(edge)), SOMBRA_OK));
        cr_assert(eq(u64, r.src, 128));
        cr_assert(eq(u64, r.dst, 7));
        cr_assert(eq(u32, r.type, 3));
        cr_assert(eq(i64, r.props[0].value.u.i, 1700000000));
        cr_assert(eq(int, rec_encode_edge(&r, &out), SOMBRA_OK));
        cr_assert(eq(sz, out.len, 12), "a third of the fixed record's 35 bytes");
        cr_assert(eq(int, rec_decode_edge(&back, out.data, out.len), SOMBRA_OK));
        expect_same_rec(&r, &back);
        rec_free(&r);
        rec_free(&back);
        buf_free(&out);
}

/* An exact-size heap copy, so that reading one byte past it trips ASan. */
static uint8_t *
exact_copy(const uint8_t *p, size_t len)
{
        uint8_t *copy = malloc(len > 0 ? len : 1);

        cr_assert(not(eq(ptr, copy, NULL)));
        if (len > 0)
                memcpy(copy, p, len);
        return copy;
}

/* Decodes from an exact copy; only for failing decodes, as r points into the copy. */
static int
decode_copy(bool edge, struct rec *r, const uint8_t *p, size_t len)
{
        uint8_t *copy = exact_copy(p, len);
        int rc = edge ? rec_decode_edge(r, copy, len) : rec_decode_node(r, copy, len);

        free(copy);
        return rc;
}

Test(record, decode_rejects_every_truncation)
{
        struct rec r = REC_INIT, back = REC_INIT;
        struct buf node = BUF_INIT, edge = BUF_INIT;

        cr_assert(eq(int, rec_add_label(&r, 4, NULL), SOMBRA_OK));
        cr_assert(eq(int, rec_add_label(&r, 5, NULL), SOMBRA_OK));
        fill_every_type(&r);
        cr_assert(eq(int, rec_encode_node(&r, &node), SOMBRA_OK));
        r.nlabels = 0;
        cr_assert(eq(int, rec_encode_edge(&r, &edge), SOMBRA_OK));

        for (size_t len = 0; len < node.len; len++)
                cr_assert(eq(int, decode_copy(false, &back, node.data, len), SOMBRA_ECORRUPT),
                          "node cut to %zu of %zu bytes", len, node.len);
        for (size_t len = 0; len < edge.len; len++)
                cr_assert(eq(int, decode_copy(true, &back, edge.data, len), SOMBRA_ECORRUPT),
                          "edge cut to %zu of %zu bytes", len, edge.len);
        cr_assert(eq(int, rec_decode_node(&back, NULL, 0), SOMBRA_ECORRUPT));
        cr_assert(eq(int, rec_decode_edge(&back, NULL, 0), SOMBRA_ECORRUPT));
        rec_free(&r);
        rec_free(&back);
        buf_free(&node);
        buf_free(&edge);
}

Test(record, decode_rejects_trailing_bytes)
{
        struct rec r = REC_INIT;
        struct buf out = BUF_INIT;

        fill_every_type(&r);
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_OK));
        cr_assert(eq(int, buf_put_u8(&out, 0), SOMBRA_OK));
        cr_assert(eq(int, decode_copy(false, &r, out.data, out.len), SOMBRA_ECORRUPT));
        rec_free(&r);
        buf_free(&out);
}

/* Each case is a whole node record that must be refused. */
struct bad_record {
        const char *why;
        uint8_t bytes[40];
        size_t len;
};

Test(record, decode_rejects_malformed_fields)
{
        static const struct bad_record cases[] = {
            {"labels out of order", {0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0}, 12},
            {"label repeated", {0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0}, 12},
            {"label count past the end", {0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0}, 12},
            {"keys out of order", {0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0}, 14},
            {"key repeated", {0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, 14},
            {"prop count past the end", {0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0}, 14},
            {"unknown type byte", {0, 0, 0, 1, 0, 0, 0, 1, 6}, 9},
            {"type byte 0xff", {0, 0, 0, 1, 0, 0, 0, 1, 0xff}, 9},
            {"bool byte 2", {0, 0, 0, 1, 0, 0, 0, 1, 1, 2}, 10},
            {"string length past the end", {0, 0, 0, 1, 0, 0, 0, 1, 4, 0, 0, 0, 3, 'a', 'b'}, 15},
            {"bytes length past the end", {0, 0, 0, 1, 0, 0, 0, 1, 5, 0, 0, 0, 1}, 13},
            {"int payload cut short", {0, 0, 0, 1, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0}, 16},
            {"no props section", {0, 0}, 2},
            {"compact: a varint longer than it needs", {REC_COMPACT, 0x80, 0x00, 0x00}, 4},
            {"compact: a longer label id", {REC_COMPACT, 1, 0x81, 0x00, 0x00}, 5},
            {"compact: label id past 32 bits",
             {REC_COMPACT, 1, 0x80, 0x80, 0x80, 0x80, 0x10, 0},
             8},
            {"compact: varint past 64 bits",
             {REC_COMPACT, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0},
             13},
            {"compact: varint with no last byte", {REC_COMPACT, 1, 0x81}, 3},
            {"compact: label count over the limit", {REC_COMPACT, 0x81, 0x02}, 3},
            {"compact: key past 32 bits",
             {REC_COMPACT, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
             9},
            {"compact: type 6 in the tag", {REC_COMPACT, 0, 1, 0x0e}, 4},
            {"compact: type 7 in the tag", {REC_COMPACT, 0, 1, 0x0f}, 4},
            {"compact: keys out of order", {REC_COMPACT, 0, 2, 0x10, 0x08}, 5},
            {"compact: int payload cut short", {REC_COMPACT, 0, 1, 0x0a, 0x80}, 5},
            {"compact: string length past the end", {REC_COMPACT, 0, 1, 0x0c, 3, 'a', 'b'}, 7},
            {"compact: nothing after the format byte", {REC_COMPACT}, 1},
        };
        struct rec r = REC_INIT;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                cr_assert(
                    eq(int, decode_copy(false, &r, cases[i].bytes, cases[i].len), SOMBRA_ECORRUPT),
                    "%s", cases[i].why);
        rec_free(&r);
}

/* A field of a hand-made record: big-endian of that width, or a varint when compact. */
static void
put_field(struct buf *out, bool compact, unsigned width, uint64_t v)
{
        uint8_t b[10];
        size_t n = 0;

        if (compact) {
                for (; v >= 0x80; v >>= 7)
                        b[n++] = (uint8_t)(v | 0x80);
                b[n++] = (uint8_t)v;
        } else {
                for (n = 0; n < width; n++)
                        b[n] = (uint8_t)(v >> (8 * (width - 1 - n)));
        }
        cr_assert(eq(int, buf_append(out, b, n), SOMBRA_OK));
}

/* A property's key and type: u32 | u8, or the compact tag. */
static void
put_prop_head(struct buf *out, bool compact, uint32_t key, enum sombra_type type)
{
        if (compact) {
                put_field(out, true, 0, (uint64_t)key << 3 | type);
                return;
        }
        put_field(out, false, 4, key);
        put_field(out, false, 1, type);
}

/*
 * A node with n labels and m NULL properties, then, when vlen is not 0, one
 * more property holding bytes of that length: well-formed except for limits.
 */
static void
build_node(struct buf *out, bool compact, uint32_t n, uint32_t m, size_t vlen)
{
        buf_reset(out);
        if (compact)
                put_field(out, false, 1, REC_COMPACT);
        put_field(out, compact, 2, n);
        for (uint32_t i = 0; i < n; i++)
                put_field(out, compact, 4, i);
        put_field(out, compact, 2, m + (vlen > 0));
        for (uint32_t i = 0; i < m; i++)
                put_prop_head(out, compact, i, SOMBRA_NULL);
        if (vlen > 0) {
                put_prop_head(out, compact, m, SOMBRA_BYTES);
                put_field(out, compact, 4, vlen);
                cr_assert(eq(int, buf_reserve(out, out->len + vlen), SOMBRA_OK));
                memset(out->data + out->len, 0x5a, vlen);
                out->len += vlen;
        }
}

Test(record, decode_rejects_counts_and_lengths_over_the_limits)
{
        struct rec r = REC_INIT;
        struct buf b = BUF_INIT;

        for (int compact = 0; compact < 2; compact++) {
                build_node(&b, compact, SOMBRA_MAX_LABELS, 0, 0);
                cr_assert(eq(int, rec_decode_node(&r, b.data, b.len), SOMBRA_OK));
                build_node(&b, compact, SOMBRA_MAX_LABELS + 1, 0, 0);
                cr_assert(eq(int, rec_decode_node(&r, b.data, b.len), SOMBRA_ECORRUPT));

                build_node(&b, compact, 0, SOMBRA_MAX_PROPS, 0);
                cr_assert(eq(int, rec_decode_node(&r, b.data, b.len), SOMBRA_OK));
                build_node(&b, compact, 0, SOMBRA_MAX_PROPS + 1, 0);
                cr_assert(eq(int, rec_decode_node(&r, b.data, b.len), SOMBRA_ECORRUPT));

                build_node(&b, compact, 0, 0, SOMBRA_MAX_VALUE);
                cr_assert(eq(int, rec_decode_node(&r, b.data, b.len), SOMBRA_OK));
                build_node(&b, compact, 0, 0, (size_t)SOMBRA_MAX_VALUE + 1);
                cr_assert(eq(int, rec_decode_node(&r, b.data, b.len), SOMBRA_ECORRUPT));
        }
        rec_free(&r);
        buf_free(&b);
}

Test(record, decode_allocates_nothing_for_counts_the_bytes_cannot_hold)
{
        static const uint8_t many_labels[] = {0x01, 0x00, 0, 0, 0, 1, 0, 0};
        static const uint8_t many_props[] = {0, 0, 0x10, 0x00, 0, 0, 0, 1, 0};
        static const uint8_t compact_labels[] = {REC_COMPACT, 0x80, 0x02, 1, 2, 3};
        static const uint8_t compact_props[] = {REC_COMPACT, 0, 0x80, 0x20, 0x08, 0x10};
        struct rec r = REC_INIT;

        cr_assert(
            eq(int, decode_copy(false, &r, many_labels, sizeof(many_labels)), SOMBRA_ECORRUPT));
        cr_assert(eq(int, decode_copy(false, &r, many_props, sizeof(many_props)), SOMBRA_ECORRUPT));
        cr_assert(eq(int, decode_copy(false, &r, compact_labels, sizeof(compact_labels)),
                     SOMBRA_ECORRUPT));
        cr_assert(
            eq(int, decode_copy(false, &r, compact_props, sizeof(compact_props)), SOMBRA_ECORRUPT));
        cr_assert(eq(u32, r.labels_cap, 0));
        cr_assert(eq(u32, r.props_cap, 0));
        rec_free(&r);
}

Test(record, failed_decode_leaves_an_empty_record)
{
        struct rec r = REC_INIT;
        struct buf out = BUF_INIT;

        r.src = 1;
        r.dst = 2;
        r.type = 3;
        fill_every_type(&r);
        cr_assert(eq(int, rec_encode_edge(&r, &out), SOMBRA_OK));
        cr_assert(eq(int, rec_decode_edge(&r, out.data, out.len - 1), SOMBRA_ECORRUPT));
        cr_assert(eq(u32, r.nprops, 0));
        cr_assert(eq(u32, r.nlabels, 0));
        cr_assert(eq(u64, r.src, 0));
        cr_assert(eq(u64, r.dst, 0));
        cr_assert(eq(u32, r.type, 0));
        rec_free(&r);
        buf_free(&out);
}

/*
 * Random damage to valid records: every mutant either fails with ECORRUPT
 * or decodes to a record that encodes back to exactly the same bytes (the
 * encoding is canonical). ASan watches for reads past the copy.
 */
Test(record, decoding_damaged_records_is_safe_and_canonical)
{
        struct rec r = REC_INIT, back = REC_INIT;
        struct buf good[2] = {BUF_INIT, BUF_INIT}, again = BUF_INIT;
        uint8_t m[512];
        uint64_t rng = 99;
        size_t accepted = 0;

        cr_assert(eq(int, rec_add_label(&r, 70000, NULL), SOMBRA_OK));
        fill_every_type(&r);
        cr_assert(eq(int, rec_encode_node(&r, &good[0]), SOMBRA_OK));
        r.nlabels = 0;
        cr_assert(eq(int, rec_encode_edge(&r, &good[1]), SOMBRA_OK));

        for (int iter = 0; iter < 100000; iter++) {
                bool edge = iter & 1;
                const struct buf *src = &good[edge];
                size_t len = src->len;
                int edits = 1 + (int)(support_next_rand(&rng) % 3);
                uint8_t *copy;
                int rc;

                cr_assert(le(sz, len + 3, sizeof(m)));
                memcpy(m, src->data, len);
                for (int e = 0; e < edits; e++) {
                        uint64_t x = support_next_rand(&rng);
                        size_t at = (size_t)(x >> 8) % (len + 1);

                        switch (x % 4) {
                        case 0: /* flip bits */
                                if (at < len)
                                        m[at] ^= (uint8_t)(1u << ((x >> 4) % 8));
                                break;
                        case 1: /* set a byte to a boundary value */
                                if (at < len)
                                        m[at] = (x >> 40) & 1 ? 0 : (x >> 41) & 1 ? 0xff : 1;
                                break;
                        case 2: /* insert a byte */
                                memmove(m + at + 1, m + at, len - at);
                                m[at] = (uint8_t)(x >> 48);
                                len++;
                                break;
                        default: /* delete a byte */
                                if (at < len) {
                                        memmove(m + at, m + at + 1, len - at - 1);
                                        len--;
                                }
                                break;
                        }
                }
                copy = exact_copy(m, len);
                rc = edge ? rec_decode_edge(&back, copy, len) : rec_decode_node(&back, copy, len);
                if (rc == SOMBRA_OK) {
                        accepted++;
                        rc = edge ? rec_encode_edge(&back, &again) : rec_encode_node(&back, &again);
                }
                free(copy);
                if (rc == SOMBRA_ECORRUPT)
                        continue;
                cr_assert(eq(int, rc, SOMBRA_OK), "iteration %d", iter);
                if (m[0] != REC_COMPACT) /* read as a fixed record: written back compact */
                        continue;
                cr_assert(eq(sz, again.len, len), "iteration %d", iter);
                cr_assert(eq(int, memcmp(again.data, m, len), 0), "iteration %d", iter);
        }
        /* Flips inside payloads yield valid records; the test must exercise both outcomes. */
        cr_assert(gt(sz, accepted, 1000));
        rec_free(&r);
        rec_free(&back);
        buf_free(&good[0]);
        buf_free(&good[1]);
        buf_free(&again);
}

Test(record, encode_refuses_what_decode_would_reject)
{
        struct rec r = REC_INIT;
        struct buf out = BUF_INIT;
        uint32_t labels[2] = {5, 5};
        struct rec_prop props[2] = {{9, v_int(1)}, {8, v_int(2)}};

        cr_assert(eq(int, buf_append(&out, "keep", 4), SOMBRA_OK));

        r.labels = labels;
        r.nlabels = 2;
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_EINVAL), "repeated label");
        r.nlabels = 1;
        cr_assert(eq(int, rec_encode_edge(&r, &out), SOMBRA_EINVAL), "edges have no labels");
        r.nlabels = SOMBRA_MAX_LABELS + 1;
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_ETOOBIG));
        r.labels = NULL;
        r.nlabels = 0;

        r.props = props;
        r.nprops = 2;
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_EINVAL), "keys out of order");
        props[1].key = 10;
        props[1].value.type = (enum sombra_type)42;
        cr_assert(eq(int, rec_encode_edge(&r, &out), SOMBRA_EINVAL), "unknown type");
        props[1].value = v_bin(SOMBRA_BYTES, NULL, 3);
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_EINVAL), "NULL bytes");
        r.nprops = SOMBRA_MAX_PROPS + 1;
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_ETOOBIG));

        cr_assert(eq(sz, out.len, 4), "a refused encode leaves the output alone");
        cr_assert(eq(int, memcmp(out.data, "keep", 4), 0));
        buf_free(&out);
}

Test(record, encode_refuses_records_over_the_size_limit)
{
        struct rec r = REC_INIT;
        struct buf out = BUF_INIT;
        uint8_t *big = calloc(1, SOMBRA_MAX_VALUE);
        struct sombra_value v = v_bin(SOMBRA_BYTES, big, SOMBRA_MAX_VALUE);

        cr_assert(not(eq(ptr, big, NULL)));
        cr_assert(eq(int, rec_set_prop(&r, 1, &v), SOMBRA_OK));
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_OK), "one maximal value fits");
        cr_assert(eq(int, rec_set_prop(&r, 2, &v), SOMBRA_OK));
        cr_assert(eq(int, rec_encode_node(&r, &out), SOMBRA_ETOOBIG), "two do not");
        rec_free(&r);
        buf_free(&out);
        free(big);
}

Test(record, set_prop_keeps_keys_sorted_and_replaces_in_place)
{
        struct rec r = REC_INIT;
        struct sombra_value model[64];
        bool present[64] = {false};
        uint64_t rng = 5;

        for (int op = 0; op < 20000; op++) {
                uint64_t x = support_next_rand(&rng);
                uint32_t key = (uint32_t)(x % 64);
                struct sombra_value v = v_int((int64_t)(x >> 8));

                if ((x >> 7) % 3 != 0) {
                        cr_assert(eq(int, rec_set_prop(&r, key, &v), SOMBRA_OK));
                        model[key] = v;
                        present[key] = true;
                } else {
                        cr_assert(eq(int, rec_del_prop(&r, key), present[key]));
                        present[key] = false;
                }
        }
        for (uint32_t key = 0, n = 0; key < 64; key++) {
                const struct sombra_value *got = rec_get_prop(&r, key);

                if (!present[key]) {
                        cr_assert(eq(ptr, (void *)got, NULL));
                        continue;
                }
                cr_assert(not(eq(ptr, (void *)got, NULL)));
                expect_same_value(got, &model[key]);
                cr_assert(eq(u32, r.props[n].key, key), "props stay sorted by key");
                n++;
        }
        rec_free(&r);
}

Test(record, set_prop_refuses_bad_values_and_leaves_the_record_alone)
{
        struct rec r = REC_INIT;
        struct sombra_value one = v_int(1), bad = v_bin(SOMBRA_STRING, NULL, 1);
        struct sombra_value big = v_bin(SOMBRA_BYTES, "", (size_t)SOMBRA_MAX_VALUE + 1);
        struct sombra_value odd = {.type = (enum sombra_type)6};

        cr_assert(eq(int, rec_set_prop(&r, 1, &one), SOMBRA_OK));
        cr_assert(eq(int, rec_set_prop(&r, 1, &bad), SOMBRA_EINVAL));
        cr_assert(eq(int, rec_set_prop(&r, 2, &big), SOMBRA_ETOOBIG));
        cr_assert(eq(int, rec_set_prop(&r, 3, &odd), SOMBRA_EINVAL));
        cr_assert(eq(u32, r.nprops, 1));
        expect_same_value(rec_get_prop(&r, 1), &one);
        rec_free(&r);
}

Test(record, props_stop_at_the_limit_but_can_still_be_replaced)
{
        struct rec r = REC_INIT;
        struct sombra_value v = v_null(), w = v_bool(true);

        for (uint32_t k = 0; k < SOMBRA_MAX_PROPS; k++)
                cr_assert(eq(int, rec_set_prop(&r, k * 2, &v), SOMBRA_OK));
        cr_assert(eq(int, rec_set_prop(&r, 1, &v), SOMBRA_ETOOBIG));
        cr_assert(eq(int, rec_set_prop(&r, 10, &w), SOMBRA_OK));
        cr_assert(eq(u32, r.nprops, SOMBRA_MAX_PROPS));
        expect_same_value(rec_get_prop(&r, 10), &w);
        rec_free(&r);
}

Test(record, labels_stay_sorted_unique_and_bounded)
{
        struct rec r = REC_INIT;
        bool added;

        cr_assert(eq(int, rec_add_label(&r, 9, &added), SOMBRA_OK));
        cr_assert(added);
        cr_assert(eq(int, rec_add_label(&r, 9, &added), SOMBRA_OK));
        cr_assert(not(added));
        cr_assert(eq(int, rec_add_label(&r, 2, &added), SOMBRA_OK));
        cr_assert(eq(u32, r.nlabels, 2));
        cr_assert(eq(u32, r.labels[0], 2));
        cr_assert(eq(u32, r.labels[1], 9));
        cr_assert(rec_has_label(&r, 9));
        cr_assert(not(rec_has_label(&r, 5)));
        cr_assert(rec_del_label(&r, 2));
        cr_assert(not(rec_del_label(&r, 2)));
        cr_assert(not(rec_has_label(&r, 2)));

        rec_reset(&r);
        for (uint32_t l = SOMBRA_MAX_LABELS; l > 0; l--)
                cr_assert(eq(int, rec_add_label(&r, l * 3, NULL), SOMBRA_OK));
        cr_assert(eq(int, rec_add_label(&r, 1, &added), SOMBRA_ETOOBIG));
        cr_assert(eq(int, rec_add_label(&r, 3, &added), SOMBRA_OK), "present label at limit");
        cr_assert(not(added));
        for (uint32_t i = 1; i < r.nlabels; i++)
                cr_assert(lt(u32, r.labels[i - 1], r.labels[i]));
        rec_free(&r);
}

Test(record, value_check_sorts_out_bad_values)
{
        struct sombra_value v;

        v = v_bin(SOMBRA_STRING, NULL, 0);
        cr_assert(eq(int, rec_value_check(&v), SOMBRA_OK));
        v = v_bin(SOMBRA_BYTES, NULL, 1);
        cr_assert(eq(int, rec_value_check(&v), SOMBRA_EINVAL));
        v = v_bin(SOMBRA_STRING, "", SOMBRA_MAX_VALUE);
        cr_assert(eq(int, rec_value_check(&v), SOMBRA_OK));
        v = v_bin(SOMBRA_STRING, "", (size_t)SOMBRA_MAX_VALUE + 1);
        cr_assert(eq(int, rec_value_check(&v), SOMBRA_ETOOBIG));
        v.type = (enum sombra_type) - 1;
        cr_assert(eq(int, rec_value_check(&v), SOMBRA_EINVAL));
        v = v_double(NAN);
        cr_assert(eq(int, rec_value_check(&v), SOMBRA_OK));
        cr_assert(eq(int, rec_value_check(NULL), SOMBRA_EINVAL));
}

Test(record, value_order_is_type_first_then_value)
{
        struct sombra_value order[] = {
            v_null(),
            v_bool(false),
            v_bool(true),
            v_int(INT64_MIN),
            v_int(-1),
            v_int(0),
            v_int(INT64_MAX),
            v_double(-INFINITY),
            v_double(-1e300),
            v_double(-DBL_MIN / 2),
            v_double(0.0),
            v_double(DBL_MIN / 2),
            v_double(1.5),
            v_double(INFINITY),
            v_double(NAN),
            v_bin(SOMBRA_STRING, "", 0),
            v_bin(SOMBRA_STRING, "\0", 1),
            v_bin(SOMBRA_STRING, "\0\0", 2),
            v_bin(SOMBRA_STRING, "\0a", 2),
            v_bin(SOMBRA_STRING, "a", 1),
            v_bin(SOMBRA_STRING, "\xff", 1),
            v_bin(SOMBRA_BYTES, NULL, 0),
            v_bin(SOMBRA_BYTES, "\0", 1),
        };
        size_t n = sizeof(order) / sizeof(order[0]);

        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < n; j++) {
                        int want = i < j ? -1 : i > j ? 1 : 0;

                        cr_assert(eq(int, rec_value_cmp(&order[i], &order[j]), want),
                                  "order[%zu] vs order[%zu]", i, j);
                }
        }
}

Test(record, value_order_treats_zeros_alike_and_nans_alike)
{
        struct sombra_value pz = v_double(0.0), nz = v_double(-0.0);
        struct sombra_value nan1 = v_double(NAN), nan2 = v_double(-NAN);
        struct sombra_value nan3 = v_double(double_from_bits(0x7ff0000000000001ull));
        struct sombra_value inf = v_double(INFINITY);

        cr_assert(eq(int, rec_value_cmp(&pz, &nz), 0));
        cr_assert(eq(int, rec_value_cmp(&nan1, &nan2), 0));
        cr_assert(eq(int, rec_value_cmp(&nan2, &nan3), 0));
        cr_assert(eq(int, rec_value_cmp(&nan2, &inf), 1));
        cr_assert(eq(int, rec_value_cmp(&inf, &nan3), -1));
}

/* A pool of random values that collide often: few lengths, a tiny alphabet, shared prefixes. */
enum { NVALUES = 1500, POOL_BYTES = NVALUES * 320 };
static struct sombra_value values[NVALUES];
static uint8_t pool[POOL_BYTES];

static struct sombra_value
random_double(uint64_t *rng)
{
        static const double specials[] = {
            -INFINITY,   -DBL_MAX, -1.0, -DBL_MIN, -DBL_MIN / 2, -0.0, 0.0,
            DBL_MIN / 2, DBL_MIN,  1.0,  DBL_MAX,  INFINITY,     NAN,  -NAN,
        };
        uint64_t x = support_next_rand(rng);

        switch (x % 4) {
        case 0:
                return v_double(specials[(x >> 8) % (sizeof(specials) / sizeof(specials[0]))]);
        case 1:
                return v_double((double)((int64_t)(x >> 8) % 7 - 3) / 2);
        default:
                return v_double(double_from_bits(support_next_rand(rng))); /* includes odd NaNs */
        }
}

static struct sombra_value
random_int(uint64_t *rng)
{
        static const int64_t specials[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX};
        uint64_t x = support_next_rand(rng);

        switch (x % 3) {
        case 0:
                return v_int(specials[(x >> 8) % (sizeof(specials) / sizeof(specials[0]))]);
        case 1:
                return v_int((int64_t)((x >> 8) % 9) - 4);
        default:
                return v_int((int64_t)support_next_rand(rng));
        }
}

static void
make_values(void)
{
        static const uint8_t alphabet[] = {0x00, 0x01, 'a', 0xff};
        static const size_t lengths[] = {0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 200, 300};
        uint64_t rng = 2024;
        size_t used = 0;

        for (size_t i = 0; i < NVALUES; i++) {
                uint64_t x = support_next_rand(&rng);
                size_t type = (size_t)(x % 8);

                if (type == 0) {
                        values[i] = v_null();
                } else if (type == 1) {
                        values[i] = v_bool((x >> 8) & 1);
                } else if (type == 2) {
                        values[i] = random_int(&rng);
                } else if (type <= 4) {
                        values[i] = random_double(&rng);
                } else {
                        size_t len = lengths[(x >> 8) % (sizeof(lengths) / sizeof(lengths[0]))];
                        uint8_t *p = pool + used;
                        /* Mostly zeros or mostly 'a': both sides of the escape limit. */
                        uint8_t common = (x >> 16) & 1 ? 0x00 : 'a';

                        for (size_t k = 0; k < len; k++) {
                                uint64_t y = support_next_rand(&rng);

                                p[k] = y % 8 != 0 ? common : alphabet[(y >> 8) % 4];
                        }
                        used += len;
                        values[i] = v_bin(type == 7 ? SOMBRA_BYTES : SOMBRA_STRING, p, len);
                }
        }
}

/* Whether the index key of v holds less than the whole value. */
static bool
is_cut(const struct sombra_value *v)
{
        size_t escaped = 0;

        if (v->type != SOMBRA_STRING && v->type != SOMBRA_BYTES)
                return false;
        for (size_t k = 0; k < v->u.s.len; k++)
                escaped += ((const uint8_t *)v->u.s.ptr)[k] == 0 ? 2 : 1;
        return escaped > REC_INDEX_PREFIX;
}

Test(record, index_key_order_matches_value_order)
{
        static struct buf keys[NVALUES];
        static bool cut[NVALUES];
        size_t ncut = 0;

        make_values();
        for (size_t i = 0; i < NVALUES; i++) {
                keys[i] = (struct buf)BUF_INIT;
                cr_assert(eq(int, rec_index_prefix(&keys[i], 7, 8, &values[i]), SOMBRA_OK));
                cut[i] = is_cut(&values[i]);
                ncut += cut[i];
        }
        cr_assert(gt(sz, ncut, 50), "the pool must include values past the prefix limit");

        for (size_t i = 0; i < NVALUES; i++) {
                for (size_t j = 0; j < NVALUES; j++) {
                        int want = rec_value_cmp(&values[i], &values[j]);
                        int got = key_cmp(&keys[i], &keys[j]);

                        if (cut[i] || cut[j]) {
                                /* Cutting may make values tie, never reverse them. */
                                if (want != 0)
                                        cr_assert(ne(int, got, -want), "values %zu, %zu", i, j);
                        } else {
                                cr_assert(eq(int, got, want), "values %zu, %zu", i, j);
                        }
                }
        }
        for (size_t i = 0; i < NVALUES; i++)
                buf_free(&keys[i]);
}

Test(record, index_values_are_prefix_free)
{
        static struct buf keys[NVALUES];

        make_values();
        for (size_t i = 0; i < NVALUES; i++) {
                keys[i] = (struct buf)BUF_INIT;
                cr_assert(eq(int, rec_index_prefix(&keys[i], 1, 2, &values[i]), SOMBRA_OK));
        }
        /* Otherwise a scan for `prefix | *` would return keys of other values. */
        for (size_t i = 0; i < NVALUES; i++) {
                for (size_t j = 0; j < NVALUES; j++) {
                        if (keys[i].len >= keys[j].len)
                                continue;
                        cr_assert(ne(int, memcmp(keys[i].data, keys[j].data, keys[i].len), 0),
                                  "key of value %zu is a prefix of value %zu's", i, j);
                }
        }
        for (size_t i = 0; i < NVALUES; i++)
                buf_free(&keys[i]);
}

Test(record, index_key_is_the_prefix_then_the_node)
{
        struct buf prefix = BUF_INIT, key = BUF_INIT;
        struct sombra_value v = v_bin(SOMBRA_STRING, "x\0y", 3);
        const uint8_t want[] = {0,    0,    1,    2,    0,    0,    3,    4, /* label, key */
                                4,    'x',  0,    0xff, 'y',  0,    0,       /* "x\0y" */
                                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};

        cr_assert(eq(int, rec_index_prefix(&prefix, 0x102, 0x304, &v), SOMBRA_OK));
        cr_assert(eq(int, rec_index_key(&key, 0x102, 0x304, &v, 0x1122334455667788ull), SOMBRA_OK));
        cr_assert(eq(sz, key.len, sizeof(want)));
        cr_assert(eq(int, memcmp(key.data, want, sizeof(want)), 0));
        cr_assert(eq(sz, prefix.len, key.len - 8));
        cr_assert(eq(int, memcmp(prefix.data, key.data, prefix.len), 0));
        buf_free(&prefix);
        buf_free(&key);
}

Test(record, index_prefix_without_a_value_is_label_and_key_alone)
{
        struct buf all = BUF_INIT, one = BUF_INIT;
        struct sombra_value v = v_null();
        const uint8_t want[] = {0, 0, 0, 3, 0, 0, 0, 4};

        cr_assert(eq(int, rec_index_prefix(&all, 3, 4, NULL), SOMBRA_OK));
        cr_assert(eq(sz, all.len, sizeof(want)));
        cr_assert(eq(int, memcmp(all.data, want, sizeof(want)), 0));
        cr_assert(eq(int, rec_index_key(&one, 3, 4, &v, 1), SOMBRA_OK));
        cr_assert(eq(int, memcmp(one.data, all.data, all.len), 0), "every key starts with it");
        cr_assert(eq(int, rec_index_key(&one, 3, 4, NULL, 1), SOMBRA_EINVAL));
        buf_free(&all);
        buf_free(&one);
}

Test(record, index_encodes_fixed_width_values_as_documented)
{
        struct buf k = BUF_INIT;
        struct sombra_value v;

        v = v_int(-1);
        cr_assert(eq(int, rec_index_prefix(&k, 0, 0, &v), SOMBRA_OK));
        cr_assert(eq(sz, k.len, 8 + 9));
        cr_assert(eq(u8, k.data[8], SOMBRA_INT));
        cr_assert(eq(u64, get_be64(k.data + 9), 0x7fffffffffffffffull));

        buf_reset(&k);
        v = v_double(1.0);
        cr_assert(eq(int, rec_index_prefix(&k, 0, 0, &v), SOMBRA_OK));
        cr_assert(eq(u8, k.data[8], SOMBRA_DOUBLE));
        cr_assert(eq(u64, get_be64(k.data + 9), bits_of(1.0) | (1ull << 63)));

        buf_reset(&k);
        v = v_bool(true);
        cr_assert(eq(int, rec_index_prefix(&k, 0, 0, &v), SOMBRA_OK));
        cr_assert(eq(sz, k.len, 8 + 2));
        cr_assert(eq(u8, k.data[9], 1));

        buf_reset(&k);
        v = v_null();
        cr_assert(eq(int, rec_index_prefix(&k, 0, 0, &v), SOMBRA_OK));
        cr_assert(eq(sz, k.len, 8 + 1));
        cr_assert(eq(u8, k.data[8], SOMBRA_NULL));
        buf_free(&k);
}

Test(record, index_gives_equal_doubles_one_key)
{
        struct buf a = BUF_INIT, b = BUF_INIT;
        struct sombra_value pz = v_double(0.0), nz = v_double(-0.0);
        struct sombra_value nan1 = v_double(NAN), nan2 = v_double(-NAN);
        struct sombra_value nan3 = v_double(double_from_bits(0xfff0000000000001ull));

        cr_assert(eq(int, rec_index_prefix(&a, 1, 1, &pz), SOMBRA_OK));
        cr_assert(eq(int, rec_index_prefix(&b, 1, 1, &nz), SOMBRA_OK));
        cr_assert(eq(int, key_cmp(&a, &b), 0));

        buf_reset(&a);
        buf_reset(&b);
        cr_assert(eq(int, rec_index_prefix(&a, 1, 1, &nan1), SOMBRA_OK));
        cr_assert(eq(int, rec_index_prefix(&b, 1, 1, &nan2), SOMBRA_OK));
        cr_assert(eq(int, key_cmp(&a, &b), 0));
        buf_reset(&b);
        cr_assert(eq(int, rec_index_prefix(&b, 1, 1, &nan3), SOMBRA_OK));
        cr_assert(eq(int, key_cmp(&a, &b), 0));
        buf_free(&a);
        buf_free(&b);
}

/* The escaped content of a string index value: the bytes between the tag and 00 00. */
static void
index_content(const uint8_t *s, size_t len, struct buf *k, size_t *content)
{
        struct sombra_value v = v_bin(SOMBRA_BYTES, s, len);

        buf_reset(k);
        cr_assert(eq(int, rec_index_prefix(k, 0, 0, &v), SOMBRA_OK));
        cr_assert(ge(sz, k->len, 8 + 1 + 2));
        cr_assert(eq(u8, k->data[k->len - 1], 0));
        cr_assert(eq(u8, k->data[k->len - 2], 0));
        *content = k->len - 8 - 1 - 2;
}

Test(record, index_cut_keeps_whole_escapes_within_the_limit)
{
        struct buf k = BUF_INIT;
        uint8_t s[300];
        size_t content;

        memset(s, 'a', sizeof(s));
        index_content(s, sizeof(s), &k, &content);
        cr_assert(eq(sz, content, REC_INDEX_PREFIX));

        /* 127 plain bytes then a zero: its 00 FF would straddle the limit, so it is left out. */
        s[127] = 0;
        index_content(s, sizeof(s), &k, &content);
        cr_assert(eq(sz, content, 127));
        cr_assert(eq(u8, k.data[8 + 1 + 126], 'a'));

        memset(s, 0, sizeof(s));
        index_content(s, REC_INDEX_PREFIX / 2, &k, &content);
        cr_assert(eq(sz, content, REC_INDEX_PREFIX), "zeros that fit exactly are all kept");
        index_content(s, REC_INDEX_PREFIX / 2 + 1, &k, &content);
        cr_assert(eq(sz, content, REC_INDEX_PREFIX));
        for (size_t i = 0; i < content; i += 2) {
                cr_assert(eq(u8, k.data[9 + i], 0));
                cr_assert(eq(u8, k.data[9 + i + 1], 0xff));
        }
        buf_free(&k);
}

Test(record, index_prefix_appends_and_leaves_output_alone_on_error)
{
        struct buf k = BUF_INIT;
        struct sombra_value ok = v_int(5), bad = v_bin(SOMBRA_STRING, NULL, 2);

        cr_assert(eq(int, buf_append(&k, "head", 4), SOMBRA_OK));
        cr_assert(eq(int, rec_index_prefix(&k, 1, 2, &bad), SOMBRA_EINVAL));
        cr_assert(eq(int, rec_index_key(&k, 1, 2, &bad, 9), SOMBRA_EINVAL));
        cr_assert(eq(sz, k.len, 4));
        cr_assert(eq(int, rec_index_prefix(&k, 1, 2, &ok), SOMBRA_OK));
        cr_assert(eq(sz, k.len, 4 + 8 + 9));
        cr_assert(eq(int, memcmp(k.data, "head", 4), 0));
        buf_free(&k);
}

/* ---- adjacency entries ---- */

static int
adj_cmp(const struct rec_adj *a, const struct rec_adj *b)
{
        if (a->node != b->node)
                return a->node < b->node ? -1 : 1;
        if (a->dir != b->dir)
                return a->dir < b->dir ? -1 : 1;
        if (a->type != b->type)
                return a->type < b->type ? -1 : 1;
        return a->edge < b->edge ? -1 : a->edge > b->edge;
}

/* A number of 0 to 8 significant bytes, with the edges of each length likely. */
static uint64_t
adj_number(uint64_t *rng, unsigned max_bytes)
{
        uint64_t x = support_next_rand(rng);
        unsigned bytes = (unsigned)(x % (max_bytes + 1));
        uint64_t top = bytes == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * bytes)) - 1;

        switch ((x >> 8) % 3) {
        case 0:
                return top;
        case 1:
                return top >> 8 ? (top >> 8) + 1 : top; /* the smallest of that length */
        default:
                return support_next_rand(rng) & top;
        }
}

Test(record, adjacency_keys_sort_as_their_fields_in_both_formats)
{
        uint64_t rng = 7;

        for (int compact = 0; compact < 2; compact++) {
                for (int i = 0; i < 20000; i++) {
                        struct rec_adj a = {adj_number(&rng, 8), (uint8_t)(rng & 1),
                                            (uint32_t)adj_number(&rng, 4), adj_number(&rng, 8)};
                        struct rec_adj b = a, back;
                        uint8_t ka[REC_ADJ_KEY_MAX], kb[REC_ADJ_KEY_MAX], v[REC_ID_MAX];
                        size_t la, lb, n;
                        uint64_t other;
                        int want, got;

                        switch (i % 4) { /* b differs from a in one field, or in all */
                        case 0:
                                b.edge = adj_number(&rng, 8);
                                break;
                        case 1:
                                b.type = (uint32_t)adj_number(&rng, 4);
                                break;
                        case 2:
                                b.dir = !a.dir;
                                break;
                        default:
                                b = (struct rec_adj){adj_number(&rng, 8), 0,
                                                     (uint32_t)adj_number(&rng, 4),
                                                     adj_number(&rng, 8)};
                        }
                        la = rec_adj_key(ka, compact, &a);
                        lb = rec_adj_key(kb, compact, &b);
                        cr_assert(le(sz, la, REC_ADJ_KEY_MAX));
                        n = la < lb ? la : lb;
                        got = memcmp(ka, kb, n);
                        got = got != 0 ? got : la < lb ? -1 : la > lb;
                        want = adj_cmp(&a, &b);
                        cr_assert(eq(int, got<0 ? -1 : got> 0, want), "compact %d, case %d",
                                  compact, i);
                        cr_assert(eq(int, rec_adj_key_decode(ka, la, compact, &back), SOMBRA_OK));
                        cr_assert(eq(int, adj_cmp(&a, &back), 0));
                        n = rec_id(v, compact, a.edge);
                        cr_assert(eq(int, rec_id_decode(v, n, compact, &other), SOMBRA_OK));
                        cr_assert(eq(u64, other, a.edge));
                }
        }
}

Test(record, adjacency_key_matches_the_documented_layout)
{
        static const uint8_t want[] = {
            0x02, 0x01, 0x00, /* node 256 */
            0x01,             /* in */
            0x01, 0x07,       /* type 7 */
            0x00,             /* edge 0 */
        };
        uint8_t k[REC_ADJ_KEY_MAX], p[REC_ADJ_KEY_MAX];
        uint32_t type = 7;

        cr_assert(eq(sz, rec_adj_key(k, true, &(struct rec_adj){256, 1, 7, 0}), sizeof(want)));
        cr_assert(eq(int, memcmp(k, want, sizeof(want)), 0));
        cr_assert(eq(sz, rec_adj_prefix(p, true, 256, 1, &type), 6));
        cr_assert(eq(sz, rec_adj_prefix(p, true, 256, 1, NULL), 4));
        cr_assert(eq(int, memcmp(p, want, 4), 0));
        cr_assert(eq(sz, rec_adj_key(k, false, &(struct rec_adj){256, 1, 7, 0}), 21));
        cr_assert(eq(u64, get_be64(k), 256));
        cr_assert(eq(u32, get_be32(k + 9), 7));
}

Test(record, adjacency_decode_refuses_what_the_writers_never_make)
{
        static const struct bad_record cases[] = {
            {"a leading zero byte", {0x02, 0x00, 0x05, 0, 0x01, 1, 0x01, 1}, 8},
            {"a number of nine bytes", {0x09, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0x01, 1, 0x01, 1}, 14},
            {"a type of five bytes", {0x01, 1, 0, 0x05, 1, 1, 1, 1, 1, 0x01, 1}, 11},
            {"a direction of 2", {0x01, 1, 2, 0x01, 1, 0x01, 1}, 7},
            {"a byte after the edge", {0x01, 1, 0, 0x01, 1, 0x01, 1, 0}, 8},
            {"no edge", {0x01, 1, 0, 0x01, 1}, 5},
            {"the edge cut short", {0x01, 1, 0, 0x01, 1, 0x02, 1}, 7},
        };
        struct rec_adj a;
        uint64_t other;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint8_t *copy = exact_copy(cases[i].bytes, cases[i].len);
                cr_assert(
                    eq(int, rec_adj_key_decode(copy, cases[i].len, true, &a), SOMBRA_ECORRUPT),
                    "%s", cases[i].why);
                free(copy);
        }
        cr_assert(eq(int, rec_adj_key_decode(cases[0].bytes, 20, false, &a), SOMBRA_ECORRUPT));
        cr_assert(
            eq(int, rec_id_decode((const uint8_t *)"\x01\x00", 2, true, &other), SOMBRA_ECORRUPT));
        cr_assert(eq(int, rec_id_decode((const uint8_t *)"\x01\x05\x00", 3, true, &other),
                     SOMBRA_ECORRUPT));
        cr_assert(eq(int, rec_id_decode((const uint8_t *)"\x00", 1, true, &other), SOMBRA_OK));
        cr_assert(eq(u64, other, 0));
        cr_assert(
            eq(int, rec_id_decode((const uint8_t *)"1234567", 7, false, &other), SOMBRA_ECORRUPT));
}

Test(record, id_and_label_keys_sort_as_their_fields_in_both_formats)
{
        uint64_t rng = 11;

        for (int compact = 0; compact < 2; compact++) {
                for (int i = 0; i < 20000; i++) {
                        uint64_t a = adj_number(&rng, 8), b = i % 2 ? adj_number(&rng, 8) : a + 1;
                        uint32_t la = (uint32_t)adj_number(&rng, 4);
                        uint32_t lb = i % 3 ? la : (uint32_t)adj_number(&rng, 4), l;
                        uint8_t ka[REC_LABEL_KEY_MAX], kb[REC_LABEL_KEY_MAX];
                        size_t na = rec_id(ka, compact, a), nb = rec_id(kb, compact, b);
                        int c = memcmp(ka, kb, na < nb ? na : nb);
                        uint64_t back;

                        c = c != 0 ? c : na < nb ? -1 : na > nb;
                        cr_assert(eq(int, c<0 ? -1 : c> 0, a<b ? -1 : a> b), "ids, %d", i);
                        cr_assert(eq(int, rec_id_decode(ka, na, compact, &back), SOMBRA_OK));
                        cr_assert(eq(u64, back, a));

                        na = rec_label_key(ka, compact, la, &a);
                        nb = rec_label_key(kb, compact, lb, &b);
                        c = memcmp(ka, kb, na < nb ? na : nb);
                        c = c != 0 ? c : na < nb ? -1 : na > nb;
                        cr_assert(eq(int, c<0 ? -1 : c> 0,
                                     la != lb ? (la < lb ? -1 : 1)
                                     : a < b  ? -1
                                              : a > b),
                                  "labels, %d", i);
                        cr_assert(
                            eq(int, rec_label_key_decode(ka, na, compact, &l, &back), SOMBRA_OK));
                        cr_assert(eq(u32, l, la));
                        cr_assert(eq(u64, back, a));
                        /* The label's prefix is the start of every key of the label. */
                        nb = rec_label_key(kb, compact, la, NULL);
                        cr_assert(lt(sz, nb, na));
                        cr_assert(eq(int, memcmp(ka, kb, nb), 0));
                }
        }
}

Test(record, id_and_label_decode_refuse_what_the_writers_never_make)
{
        uint32_t l;
        uint64_t id;

        cr_assert(
            eq(int, rec_id_decode((const uint8_t *)"\x01\x00", 2, true, &id), SOMBRA_ECORRUPT));
        cr_assert(
            eq(int, rec_id_decode((const uint8_t *)"\x02\x01", 2, true, &id), SOMBRA_ECORRUPT));
        cr_assert(
            eq(int, rec_id_decode((const uint8_t *)"\x01\x05\x00", 3, true, &id), SOMBRA_ECORRUPT));
        cr_assert(eq(int, rec_id_decode((const uint8_t *)"", 0, true, &id), SOMBRA_ECORRUPT));
        cr_assert(eq(int, rec_id_decode((const uint8_t *)"\x00", 1, true, &id), SOMBRA_OK));
        cr_assert(eq(u64, id, 0));
        cr_assert(
            eq(int, rec_id_decode((const uint8_t *)"1234567", 7, false, &id), SOMBRA_ECORRUPT));
        cr_assert(eq(int,
                     rec_label_key_decode((const uint8_t *)"\x05\x01\x01\x01\x01\x01\x00", 7, true,
                                          &l, &id),
                     SOMBRA_ECORRUPT),
                  "a label of five bytes");
        cr_assert(eq(int, rec_label_key_decode((const uint8_t *)"\x01\x07", 2, true, &l, &id),
                     SOMBRA_ECORRUPT),
                  "no node");
        cr_assert(eq(int,
                     rec_label_key_decode((const uint8_t *)"\x01\x07\x01\x09", 4, true, &l, &id),
                     SOMBRA_OK));
        cr_assert(eq(u32, l, 7));
        cr_assert(eq(u64, id, 9));
        cr_assert(eq(int, rec_label_key_decode((const uint8_t *)"12345678901", 11, false, &l, &id),
                     SOMBRA_ECORRUPT));
}

/*
 * Random short byte strings, digits of the ordered form likely: whatever a
 * key decoder accepts is exactly what its writer makes of the result, in
 * both formats. ASan watches the reads of the exact-size copies.
 */
Test(record, key_decoders_accept_only_what_the_writers_make)
{
        uint64_t rng = 5;
        size_t accepted = 0;

        for (int i = 0; i < 300000; i++) {
                uint8_t b[16], out[REC_ADJ_KEY_MAX], *copy;
                size_t n = (size_t)(support_next_rand(&rng) % sizeof(b));
                struct rec_adj a;
                uint64_t id;
                uint32_t l;

                for (size_t j = 0; j < n; j++) {
                        uint64_t x = support_next_rand(&rng);
                        b[j] = (uint8_t)(x & 1 ? (x >> 8) % 10 : x >> 8);
                }
                copy = exact_copy(b, n);
                for (int compact = 0; compact < 2; compact++) {
                        if (rec_id_decode(copy, n, compact, &id) == SOMBRA_OK) {
                                cr_assert(eq(sz, rec_id(out, compact, id), n));
                                cr_assert(eq(int, memcmp(out, copy, n), 0));
                                accepted++;
                        }
                        if (rec_label_key_decode(copy, n, compact, &l, &id) == SOMBRA_OK) {
                                cr_assert(eq(sz, rec_label_key(out, compact, l, &id), n));
                                cr_assert(eq(int, memcmp(out, copy, n), 0));
                                accepted++;
                        }
                        if (rec_adj_key_decode(copy, n, compact, &a) == SOMBRA_OK) {
                                cr_assert(eq(sz, rec_adj_key(out, compact, &a), n));
                                cr_assert(eq(int, memcmp(out, copy, n), 0));
                                accepted++;
                        }
                }
                free(copy);
        }
        cr_assert(gt(sz, accepted, 1000), "both outcomes exercised");
}
