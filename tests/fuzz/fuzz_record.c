/*
 * fuzz_record.c - libFuzzer target: the node and edge record decoder.
 *
 * The first byte picks node or edge, the rest is the record. A compact
 * record the decoder accepts must be canonical - encoding what it decoded
 * gives the same bytes back; a fixed-format one (as earlier files hold them) must
 * encode to a compact record that decodes to the same fields. Every value
 * must pass rec_value_check and make an index key. Anything else is a bug:
 * the target aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "record.h"
#include "sombra.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/* Writes one encoded record as a seed: the selector byte, then the record. */
static void
seed_write(const char *dir, const char *name, bool edge, const struct rec *r)
{
        struct buf rec = BUF_INIT, out = BUF_INIT;
        char path[4096];
        uint8_t sel = edge;

        /* Encoding replaces a buffer's contents: the record goes after the selector. */
        if ((edge ? rec_encode_edge(r, &rec) : rec_encode_node(r, &rec)) != SOMBRA_OK ||
            buf_append(&out, &sel, 1) != SOMBRA_OK ||
            buf_append(&out, rec.data, rec.len) != SOMBRA_OK)
                abort();
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fuzz_write(path, out.data, out.len);
        buf_free(&rec);
        buf_free(&out);
}

/* SOMBRA_FUZZ_SEEDS=DIR: a node with every value type and an edge, then exit. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
        static const uint8_t blob[] = {0, 0xff, 0};
        struct sombra_value v[6] = {
            {.type = SOMBRA_NULL},
            {.type = SOMBRA_BOOL, .u.b = true},
            {.type = SOMBRA_INT, .u.i = -42},
            {.type = SOMBRA_DOUBLE, .u.d = 2.5},
            {.type = SOMBRA_STRING, .u.s = {"hello", 5}},
            {.type = SOMBRA_BYTES, .u.s = {(const char *)blob, sizeof(blob)}},
        };
        const char *dir = getenv("SOMBRA_FUZZ_SEEDS");
        struct rec r = REC_INIT;
        bool added;

        (void)argc;
        (void)argv;
        if (dir == NULL)
                return 0;
        for (uint32_t i = 0; i < 6; i++)
                if (rec_set_prop(&r, 10 + i, &v[i]) != SOMBRA_OK)
                        abort();
        if (rec_add_label(&r, 3, &added) != SOMBRA_OK || rec_add_label(&r, 7, &added) != SOMBRA_OK)
                abort();
        seed_write(dir, "node.seed", false, &r);
        rec_del_label(&r, 3); /* edges have a type, not labels */
        rec_del_label(&r, 7);
        r.src = 1;
        r.dst = 2;
        r.type = 4;
        seed_write(dir, "edge.seed", true, &r);
        rec_free(&r);
        exit(0);
}

/* A fixed-format record's compact encoding reads back as the same fields. */
static void
fixed_check(const struct rec *r, bool edge, const struct buf *compact)
{
        struct rec back = REC_INIT;
        int rc = edge ? rec_decode_edge(&back, compact->data, compact->len)
                      : rec_decode_node(&back, compact->data, compact->len);

        if (rc != SOMBRA_OK || back.src != r->src || back.dst != r->dst || back.type != r->type ||
            back.nlabels != r->nlabels || back.nprops != r->nprops)
                abort();
        for (uint32_t i = 0; i < r->nlabels; i++)
                if (back.labels[i] != r->labels[i])
                        abort();
        for (uint32_t i = 0; i < r->nprops; i++)
                if (back.props[i].key != r->props[i].key ||
                    rec_value_cmp(&back.props[i].value, &r->props[i].value) != 0)
                        abort();
        rec_free(&back);
}

static void
decoded_check(const struct rec *r, bool edge, const uint8_t *p, size_t len)
{
        struct buf out = BUF_INIT;
        int rc = edge ? rec_encode_edge(r, &out) : rec_encode_node(r, &out);

        if (rc != SOMBRA_OK)
                abort();
        if (p[0] == REC_COMPACT && (out.len != len || memcmp(out.data, p, len) != 0))
                abort(); /* accepted, but not what encoding makes of it */
        if (p[0] != REC_COMPACT)
                fixed_check(r, edge, &out);
        for (uint32_t i = 0; i < r->nprops; i++) {
                buf_reset(&out);
                if (rec_value_check(&r->props[i].value) != SOMBRA_OK ||
                    rec_index_key(&out, 1, r->props[i].key, &r->props[i].value, 1) != SOMBRA_OK)
                        abort();
        }
        buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
        struct rec r = REC_INIT;
        bool edge;
        int rc;

        if (len == 0)
                return 0;
        edge = data[0] & 1;
        rc = edge ? rec_decode_edge(&r, data + 1, len - 1) : rec_decode_node(&r, data + 1, len - 1);
        if (rc == SOMBRA_OK)
                decoded_check(&r, edge, data + 1, len - 1);
        rec_free(&r);
        return 0;
}
