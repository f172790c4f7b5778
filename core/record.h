/*
 * record.h - the byte formats of nodes, edges and property index keys.
 *
 * Node record (the value of the `nodes` tree, keyed by the node id):
 *   0x80 | varint nlabels | nlabels x varint label id (ascending) | props
 * Edge record (the value of the `edges` tree, keyed by the edge id):
 *   0x80 | varint src | varint dst | varint type id | props
 * props:
 *   varint nprops | nprops x ( varint key id << 3 | type, payload ),
 *   ascending key id; payload by type: NULL none; BOOL u8 (0 or 1); INT the
 *   zigzag varint ((i << 1) ^ (i >> 63)); DOUBLE 8 bytes IEEE-754 bits,
 *   big-endian; STRING and BYTES varint length | bytes.
 * A varint is unsigned LEB128 in its shortest form. Ids of labels, types and
 * keys come from the dict.
 * Records of the fixed format of earlier files are still decoded (never
 * written): node u16 nlabels | u32 labels | props, edge u64 src | u64 dst |
 * u32 type | props, props u16 nprops | (u32 key | u8 type | payload), INT
 * 8 bytes and lengths u32, all big-endian. Their first byte is never 0x80
 * (an edge's would need a source id of 2^63 or more).
 * Keys of the `nodes`, `edges`, `labels` and `adj` trees, and the `adj`
 * tree's value. In a compact file (the `compact` argument below, from meta
 * format 5) each number in them is ordered: a byte n (0..8) then the n
 * bytes of the number, big-endian, with no leading zero byte; 0 is the byte
 * 0 alone. A smaller number never has more bytes, so memcmp orders the
 * keys as the numbers, and n makes every field prefix-free. In files made
 * before, the numbers are fixed-width, big-endian:
 *   nodes, edges: the id (u64)
 *   labels:       label (u32) | node (u64), empty value
 *   adj, one entry per edge end: node (u64) | u8 dir (0 out, 1 in) |
 *                 type (u32) | edge (u64) -> the other node (u64)
 * Index key (the `props` tree; empty value):
 *   u32 label | u32 key | encoded value | u64 node
 * The encoded value sorts like the values: a type tag (NULL < BOOL < INT <
 * DOUBLE < STRING < BYTES) then, for INT the sign-flipped big-endian bits,
 * for DOUBLE the usual order-preserving bit transform (-0.0 stored as 0.0,
 * every NaN as one NaN that sorts last), for STRING and BYTES the bytes with
 * 0x00 escaped as 00 FF and a 00 00 terminator. Strings and bytes longer than
 * REC_INDEX_PREFIX are cut there, so an index lookup yields candidates whose
 * real value the caller must check; cutting never breaks the ordering
 * (x <= y implies cut(x) <= cut(y)).
 */
#ifndef SOMBRA_RECORD_H
#define SOMBRA_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sombra.h"
#include "buf.h"

#define REC_INDEX_PREFIX 128u
#define REC_COMPACT      0x80u /* the first byte of a record in the compact format */

struct rec_prop {
        uint32_t key;
        struct sombra_value value;
};

/*
 * A decoded node or edge. String and bytes values point into the bytes the
 * record was decoded from (or wherever the caller's set_prop pointed them):
 * those bytes must outlive the struct's use. Arrays grow as needed and are
 * reused across decodes.
 */
struct rec {
        uint64_t src, dst; /* edges only */
        uint32_t type;     /* edges only */
        uint32_t nlabels, labels_cap;
        uint32_t *labels; /* ascending */
        uint32_t nprops, props_cap;
        struct rec_prop *props; /* ascending key */
};

#define REC_INIT                                                                                   \
        {                                                                                          \
                0                                                                                  \
        }

/* SOMBRA_ECORRUPT when the bytes are not a well-formed record; SOMBRA_ENOMEM. */
int rec_decode_node(struct rec *r, const uint8_t *p, size_t len);
int rec_decode_edge(struct rec *r, const uint8_t *p, size_t len);
/* Replace out's contents with the encoding. SOMBRA_ETOOBIG past SOMBRA_MAX_RECORD. */
int rec_encode_node(const struct rec *r, struct buf *out);
int rec_encode_edge(const struct rec *r, struct buf *out);
void rec_reset(struct rec *r); /* no labels, no props, ids zero */
void rec_free(struct rec *r);

/* Sets or replaces a property (value is copied shallowly). ETOOBIG past SOMBRA_MAX_PROPS. */
int rec_set_prop(struct rec *r, uint32_t key, const struct sombra_value *v);
/* Removes a property; false when absent. */
bool rec_del_prop(struct rec *r, uint32_t key);
/* The value of a property, or NULL. */
const struct sombra_value *rec_get_prop(const struct rec *r, uint32_t key);
/* Adds a label; *added false when it was there. ETOOBIG past SOMBRA_MAX_LABELS. */
int rec_add_label(struct rec *r, uint32_t label, bool *added);
bool rec_del_label(struct rec *r, uint32_t label);
bool rec_has_label(const struct rec *r, uint32_t label);

/*
 * Checks a caller's value: SOMBRA_EINVAL for an unknown type or a NULL pointer
 * with a non-zero length, SOMBRA_ETOOBIG past SOMBRA_MAX_VALUE.
 */
int rec_value_check(const struct sombra_value *v);
/* Total order of values, the one the index uses (type first); -1, 0 or 1. */
int rec_value_cmp(const struct sombra_value *a, const struct sombra_value *b);

/* Appends u32 label | u32 key | encoded value (a lookup prefix); v NULL: label | key alone. */
int rec_index_prefix(struct buf *out, uint32_t label, uint32_t key, const struct sombra_value *v);
/* Appends the whole index key: prefix | u64 node. */
int rec_index_key(struct buf *out, uint32_t label, uint32_t key, const struct sombra_value *v,
                  uint64_t node);

/* One adjacency entry: an edge seen from one of its ends. */
struct rec_adj {
        uint64_t node; /* the end the entry belongs to */
        uint8_t dir;   /* 0: the edge leaves node, 1: it arrives */
        uint32_t type;
        uint64_t edge;
};

#define REC_ID_MAX        9u  /* a node or edge id, compact; fixed it is 8 */
#define REC_LABEL_KEY_MAX 14u /* 5 + 9, compact; a fixed key is 12 */
#define REC_ADJ_KEY_MAX   24u /* 9 + 1 + 5 + 9, compact; a fixed key is 21 */

/*
 * The writers fill the buffer and return the length. The readers return
 * SOMBRA_ECORRUPT unless the bytes are exactly what the writers make.
 */

/* A node or edge id: the key of the nodes and edges trees, the adj value. */
size_t rec_id(uint8_t k[REC_ID_MAX], bool compact, uint64_t id);
int rec_id_decode(const uint8_t *k, size_t klen, bool compact, uint64_t *id);

/* A labels key; node NULL: the prefix of every key of the label. */
size_t rec_label_key(uint8_t k[REC_LABEL_KEY_MAX], bool compact, uint32_t label,
                     const uint64_t *node);
int rec_label_key_decode(const uint8_t *k, size_t klen, bool compact, uint32_t *label,
                         uint64_t *node);

size_t rec_adj_key(uint8_t k[REC_ADJ_KEY_MAX], bool compact, const struct rec_adj *a);
/* The prefix of every key of node and dir (type NULL) or node, dir and *type. */
size_t rec_adj_prefix(uint8_t k[REC_ADJ_KEY_MAX], bool compact, uint64_t node, uint8_t dir,
                      const uint32_t *type);
int rec_adj_key_decode(const uint8_t *k, size_t klen, bool compact, struct rec_adj *a);

#endif
