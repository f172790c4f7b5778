/*
 * cli_import.c - `sombra import`: nodes and edges from CSV or JSON Lines
 * files (formats in tools/README.md), in batches.
 *
 * Two passes over the files, both streaming (one row in memory at a time):
 *   1. check: every row is parsed and checked as the database would check it
 *      (names, limits, UTF-8, duplicate node ids) and every edge's ends are
 *      resolved, against the nodes file or existing nodes (`@ID`). Bad rows
 *      are reported as FILE:LINE: reason and their line numbers remembered.
 *   2. write, only when pass 1 found nothing bad or the user chose to skip
 *      bad rows: the good rows again, as batches of --batch operations, each
 *      one atomic transaction. Nodes first, so that every edge's ends have
 *      database ids when its batch is built.
 * A file is read through one stream, rewound for pass 2; an input that
 * cannot be rewound (a pipe, a FIFO, `-` for stdin) is first copied into a
 * temporary file, so that pass 2 writes exactly the rows pass 1 checked.
 * So an import that aborts on a bad row has written nothing. What pass 2
 * can still meet is the machine failing (disk full, I/O error): then the
 * batches committed before stay, and the message says how many rows they
 * hold.
 *
 * The one thing held for the whole import is the map from the nodes file's
 * ids to database ids: a key string and two numbers per node.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <csv.h>
#include <xxhash.h>

#include "cli.h"
#include "cli_out.h"
#include "cli_value.h"

/* A batch is cut short when its rows' values pass this many bytes (two are in memory at once). */
#define IMPORT_BATCH_BYTES (128u << 20)

/* ---- the node id map ---- */

struct node_key {
        char *key;     /* NULL: empty slot */
        uint64_t hash; /* key's: a probe that meets another key mostly ends at this compare */
        long line;     /* where the node's row is */
        uint64_t id;   /* its database id, once written */
};

struct node_map {
        struct node_key *v;
        size_t n, cap; /* cap: a power of two, at most half full */
};

static uint64_t
key_hash(const char *key)
{
        return XXH3_64bits(key, strlen(key));
}

static struct node_key *
map_slot(const struct node_map *m, const char *key, uint64_t hash)
{
        size_t i = hash & (m->cap - 1);

        while (m->v[i].key != NULL && (m->v[i].hash != hash || strcmp(m->v[i].key, key) != 0))
                i = (i + 1) & (m->cap - 1);
        return &m->v[i];
}

static struct node_key *
map_find(const struct node_map *m, const char *key)
{
        struct node_key *k = m->cap ? map_slot(m, key, key_hash(key)) : NULL;

        return k != NULL && k->key != NULL ? k : NULL;
}

static int
map_grow(struct node_map *m)
{
        struct node_map bigger = {.cap = m->cap ? 2 * m->cap : 1024, .n = m->n};

        bigger.v = calloc(bigger.cap, sizeof(*bigger.v));
        if (bigger.v == NULL)
                return SOMBRA_ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
                if (m->v[i].key != NULL)
                        *map_slot(&bigger, m->v[i].key, m->v[i].hash) = m->v[i];
        free(m->v);
        *m = bigger;
        return SOMBRA_OK;
}

/* Adds key; *dup gets the entry already there instead, if any. */
static int
map_add(struct node_map *m, const char *key, long line, struct node_key **dup)
{
        uint64_t hash = key_hash(key);
        struct node_key *k;

        *dup = NULL;
        if (2 * (m->n + 1) > m->cap && map_grow(m) != SOMBRA_OK)
                return SOMBRA_ENOMEM;
        k = map_slot(m, key, hash);
        if (k->key != NULL) {
                *dup = k;
                return SOMBRA_OK;
        }
        k->key = strdup(key);
        if (k->key == NULL)
                return SOMBRA_ENOMEM;
        k->hash = hash;
        k->line = line;
        m->n++;
        return SOMBRA_OK;
}

static void
map_free(struct node_map *m)
{
        for (size_t i = 0; i < m->cap; i++)
                free(m->v[i].key);
        free(m->v);
}

/* ---- rows ---- */

/* One node or edge row, whatever the file's format; strings live in the source's arena. */
struct row {
        long line;
        const char *key;     /* nodes: the file's id for it */
        const char *ends[2]; /* edges: src and dst, file ids or @ID */
        const char *type;    /* edges */
        const char **labels;
        size_t nlabels;
        struct sombra_prop *props;
        size_t nprops;
};

/* A CSV property column. */
struct column {
        char *key;
        enum sombra_type type;
};

struct source {
        const char *path;
        bool csv, edges;
        FILE *f;
        long line;     /* lines read so far */
        long rows;     /* rows handed to on_row so far: a row's ordinal, the same in both passes */
        char why[512]; /* the current row's fault */
        struct cv_arena arena;
        struct row row;
        size_t labels_cap, props_cap;
        /* CSV */
        struct csv_parser parser;
        bool header_done;
        struct column *cols;
        size_t ncols;
        struct {
                const char *s; /* NULL for an unquoted empty cell */
                size_t len;    /* s may hold NUL bytes before s[len] */
        } * fields;
        size_t nfields, fields_cap;
        long row_line;
        int failed; /* a file-level failure inside a libcsv callback */
        struct importer *im;
};

enum phase { PHASE_CHECK, PHASE_WRITE };

/*
 * Pass 2's batches take turns: one is written (submitted without waiting)
 * while the other fills, so that reading and building the rows overlaps
 * the writer's work and the log's sync instead of waiting for them.
 */
struct import_batch {
        sombra_batch *batch;
        struct node_key **nodes; /* the node each operation makes; NULL for an edge */
        size_t n;                /* operations */
        bool edges;
        bool out; /* submitted, not yet collected */
        uint64_t ticket;
};

struct importer {
        const struct cli_args *args;
        sombra_conn *conn;
        enum phase phase;
        struct node_map map;
        long *bad; /* ordinals (source.rows) of the bad rows of the file in hand, ascending */
        size_t nbad, bad_cap, bad_at;
        uint64_t bad_total;
        uint64_t good[2]; /* rows that passed the check: nodes, edges */
        uint64_t done[2]; /* rows written */
        struct import_batch turn[2];
        unsigned filling;   /* the turn being filled; the other may be out */
        size_t batch_bytes; /* about what the batch being filled adds to its WAL record */
        int failed;         /* the first batch's failure, SOMBRA_OK until then */
        size_t unsure;      /* rows of a batch whose commit failed: whole or absent */
        bool unsure_edges;
        bool progress; /* stderr is a terminal */
};

static bool row_fault(struct source *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records why the current row is bad; returns false for `return row_fault(...)`. */
static bool
row_fault(struct source *s, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(s->why, sizeof(s->why), fmt, ap);
        va_end(ap);
        return false;
}

static bool
row_label(struct source *s, const char *label)
{
        if (s->row.nlabels == s->labels_cap) {
                size_t cap = s->labels_cap ? 2 * s->labels_cap : 8;
                const char **v = realloc(s->row.labels, cap * sizeof(*v));
                if (v == NULL)
                        return row_fault(s, "out of memory");
                s->row.labels = v;
                s->labels_cap = cap;
        }
        s->row.labels[s->row.nlabels++] = label;
        return true;
}

static bool
row_prop(struct source *s, const char *key, const struct sombra_value *v)
{
        if (s->row.nprops == s->props_cap) {
                size_t cap = s->props_cap ? 2 * s->props_cap : 16;
                struct sombra_prop *p = realloc(s->row.props, cap * sizeof(*p));
                if (p == NULL)
                        return row_fault(s, "out of memory");
                s->row.props = p;
                s->props_cap = cap;
        }
        s->row.props[s->row.nprops].key = key;
        s->row.props[s->row.nprops++].value = *v;
        return true;
}

/* ---- checks shared by both formats ---- */

static bool
check_names(struct source *s)
{
        const struct row *r = &s->row;

        if (r->nlabels > SOMBRA_MAX_LABELS)
                return row_fault(s, "more than %u labels", SOMBRA_MAX_LABELS);
        if (r->nprops > SOMBRA_MAX_PROPS)
                return row_fault(s, "more than %u properties", SOMBRA_MAX_PROPS);
        for (size_t i = 0; i < r->nlabels; i++) {
                if (!cv_name_valid(r->labels[i], strlen(r->labels[i])))
                        return row_fault(s, "label '%s': not a name (1 to 255 bytes of UTF-8)",
                                         r->labels[i]);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(r->labels[i], r->labels[j]) == 0)
                                return row_fault(s, "label '%s' given twice", r->labels[i]);
        }
        for (size_t i = 0; i < r->nprops; i++) {
                if (!cv_name_valid(r->props[i].key, strlen(r->props[i].key)))
                        return row_fault(s,
                                         "property key '%s': not a name (1 to 255 bytes of UTF-8)",
                                         r->props[i].key);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(r->props[i].key, r->props[j].key) == 0)
                                return row_fault(s, "property '%s' given twice", r->props[i].key);
        }
        if (s->edges && (r->type == NULL || !cv_name_valid(r->type, strlen(r->type))))
                return row_fault(s, "edge type: not a name (1 to 255 bytes of UTF-8)");
        if (!s->edges && (r->key == NULL || r->key[0] == '\0'))
                return row_fault(s, "empty node id");
        if (!s->edges && r->key[0] == '@')
                return row_fault(s, "node id '%s': ids starting with '@' name database nodes",
                                 r->key);
        return true;
}

/* The database id an edge's end names: a node of the import, or @ID for one already there. */
static bool
resolve_end(struct importer *im, struct source *s, const char *end, uint64_t *id)
{
        const struct sombra_entity *e;
        struct node_key *k;
        char *stop;

        if (end == NULL || end[0] == '\0')
                return row_fault(s, "empty node id");
        if (end[0] == '@') {
                errno = 0;
                *id = strtoull(end + 1, &stop, 10);
                if (end[1] < '0' || end[1] > '9' || *stop != '\0' || errno != 0 || *id == 0 ||
                    sombra_node_get(im->conn, *id, &e) != SOMBRA_OK)
                        return row_fault(s, "unknown node '%s' (no such node in the database)",
                                         end);
                return true;
        }
        k = map_find(&im->map, end);
        if (k == NULL)
                return row_fault(s, "unknown node '%s' (not in the nodes file)", end);
        *id = k->id;
        return true;
}

/* ---- the two passes, row by row ---- */

static void
progress(struct importer *im, bool edge)
{
        uint64_t total = im->good[edge], done = im->done[edge];
        int width = 30, filled = total ? (int)(done * (uint64_t)width / total) : width;

        if (!im->progress)
                return;
        fprintf(stderr, "\rimport: %s [%.*s%*s] %3d%% %" PRIu64 "/%" PRIu64,
                edge ? "edges" : "nodes", filled, "##############################", width - filled,
                "", total ? (int)(done * 100 / total) : 100, done, total);
        if (done == total)
                fputc('\n', stderr);
}

/*
 * Waits for a submitted batch: its nodes' ids go to the map, its rows count
 * as written. A failure is kept in im->failed and said once all is
 * collected (import_write_end).
 */
static void
batch_collect(struct importer *im, struct import_batch *b)
{
        int rc;

        if (!b->out)
                return;
        rc = sombra_wait(im->conn, b->ticket);
        if (rc == SOMBRA_ECLOSED) { /* not collected: the batch stays the library's */
                im->failed = im->failed == SOMBRA_OK ? rc : im->failed;
                return;
        }
        b->out = false;
        /* A failed commit may stand all the same: its group may be in the log (README). */
        if (rc != SOMBRA_OK && im->failed == SOMBRA_OK) {
                im->unsure = b->n;
                im->unsure_edges = b->edges;
        }
        for (size_t i = 0; rc == SOMBRA_OK && i < b->n; i++)
                if (b->nodes[i] != NULL)
                        rc = sombra_batch_id(b->batch, SOMBRA_BATCH_REF(i), &b->nodes[i]->id);
        if (rc == SOMBRA_OK) {
                im->done[b->edges] += b->n;
                progress(im, b->edges);
                rc = sombra_batch_reset(b->batch);
        }
        b->n = 0;
        if (rc != SOMBRA_OK && im->failed == SOMBRA_OK)
                im->failed = rc;
}

/*
 * Submits the batch being filled once the other one is written, and makes
 * that one ready to fill. The rows written are always the first ones: no
 * batch goes after one that failed.
 */
static int
batch_send(struct importer *im)
{
        struct import_batch *b = &im->turn[im->filling];
        int rc;

        if (b->n == 0)
                return im->failed;
        batch_collect(im, &im->turn[im->filling ^ 1]);
        if (im->failed != SOMBRA_OK)
                return im->failed;
        rc = sombra_batch_submit_async(im->conn, b->batch, false, &b->ticket);
        if (rc != SOMBRA_OK) {
                im->failed = rc;
                return rc;
        }
        b->out = true;
        im->filling ^= 1;
        im->batch_bytes = 0;
        return SOMBRA_OK;
}

/*
 * The end of a file's writing (send: the batch being filled goes too) or
 * of a failure: both batches collected, so that every node has its id
 * before the edges file is read and no batch is out when they are freed.
 */
static int
import_write_end(struct importer *im, bool send)
{
        int rc = send && im->failed == SOMBRA_OK ? batch_send(im) : im->failed;

        batch_collect(im, &im->turn[0]);
        batch_collect(im, &im->turn[1]);
        if (rc == SOMBRA_OK)
                rc = im->failed;
        if (im->failed != SOMBRA_OK && im->unsure > 0)
                cli_fail("import: a batch failed: %s; %" PRIu64 " nodes and %" PRIu64
                         " edges were written before it, and its %zu %s may be there too (a "
                         "failed commit is whole or absent)",
                         sombra_strerror(im->failed), im->done[0], im->done[1], im->unsure,
                         im->unsure_edges ? "edges" : "nodes");
        else if (im->failed != SOMBRA_OK)
                cli_fail("import: a batch failed: %s; %" PRIu64 " nodes and %" PRIu64
                         " edges were written before it",
                         sombra_strerror(im->failed), im->done[0], im->done[1]);
        return rc;
}

/* Roughly the bytes a row adds to its transaction's WAL record. */
static size_t
row_bytes(const struct row *r)
{
        size_t n = 64;

        for (size_t i = 0; i < r->nprops; i++) {
                const struct sombra_value *v = &r->props[i].value;
                n += 16 + strlen(r->props[i].key);
                if (v->type == SOMBRA_STRING || v->type == SOMBRA_BYTES)
                        n += v->u.s.len;
        }
        return n + 16 * r->nlabels;
}

static int
write_row(struct importer *im, struct source *s)
{
        const struct row *r = &s->row;
        struct import_batch *b = &im->turn[im->filling];
        size_t bytes = row_bytes(r);
        uint64_t ends[2];
        int rc;

        /* A transaction's WAL record has a limit (1 GiB): large values make batches shorter. */
        if (im->batch_bytes + bytes > IMPORT_BATCH_BYTES) {
                rc = batch_send(im);
                if (rc != SOMBRA_OK)
                        return rc;
                b = &im->turn[im->filling];
        }
        im->batch_bytes += bytes;
        b->edges = s->edges;
        if (s->edges) {
                if (!resolve_end(im, s, r->ends[0], &ends[0]) ||
                    !resolve_end(im, s, r->ends[1], &ends[1]))
                        return cli_fail_as(SOMBRA_EINVAL, "%s:%ld: %s", s->path, r->line, s->why);
                rc = sombra_batch_edge_create(b->batch, ends[0], ends[1], r->type, r->props,
                                              r->nprops, NULL);
                b->nodes[b->n] = NULL;
        } else {
                rc = sombra_batch_node_create(b->batch, r->labels, r->nlabels, r->props, r->nprops,
                                              NULL);
                b->nodes[b->n] = map_find(&im->map, r->key);
        }
        if (rc != SOMBRA_OK)
                return cli_fail_as(rc, "%s:%ld: %s", s->path, r->line, sombra_strerror(rc));
        if (++b->n == im->args->batch)
                rc = batch_send(im);
        return rc;
}

static int
check_row(struct importer *im, struct source *s, bool parsed)
{
        struct node_key *dup;
        uint64_t id;
        int rc;

        if (parsed && check_names(s)) {
                if (s->edges) {
                        parsed = resolve_end(im, s, s->row.ends[0], &id) &&
                                 resolve_end(im, s, s->row.ends[1], &id);
                } else {
                        rc = map_add(&im->map, s->row.key, s->row.line, &dup);
                        if (rc != SOMBRA_OK)
                                return rc;
                        if (dup != NULL)
                                parsed =
                                    row_fault(s, "node id '%s' given twice (first on line %ld)",
                                              s->row.key, dup->line);
                }
        } else {
                parsed = false;
        }
        if (parsed) {
                im->good[s->edges]++;
                return SOMBRA_OK;
        }
        fprintf(stderr, "%s:%ld: %s\n", s->path, s->row.line, s->why);
        im->bad_total++;
        if (im->nbad == im->bad_cap) {
                size_t cap = im->bad_cap ? 2 * im->bad_cap : 64;
                long *v = realloc(im->bad, cap * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                im->bad = v;
                im->bad_cap = cap;
        }
        /* Not the line: one line can hold several rows (a CSV record may end at a bare CR). */
        im->bad[im->nbad++] = s->rows;
        return SOMBRA_OK;
}

/* One row read (parsed false: s->why says what is wrong with it). */
static int
on_row(struct source *s, bool parsed)
{
        struct importer *im = s->im;

        s->rows++;
        if (im->phase == PHASE_CHECK)
                return check_row(im, s, parsed);
        /* Pass 2 meets the rows of pass 1 in the same order. */
        if (im->bad_at < im->nbad && im->bad[im->bad_at] == s->rows) {
                im->bad_at++;
                return SOMBRA_OK;
        }
        return write_row(im, s);
}

/* ---- JSON Lines ---- */

/* A node id in JSON: a string, or an integer taken as its decimal text. */
static const char *
json_key(struct source *s, json_t *j)
{
        char buf[32];

        if (json_is_string(j))
                return json_string_value(j);
        if (!json_is_integer(j))
                return NULL;
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return cv_arena_strndup(&s->arena, buf, strlen(buf));
}

static bool
json_row(struct source *s, json_t *o)
{
        static const char *const node_members[] = {"id", "labels", "props", NULL};
        static const char *const edge_members[] = {"id", "src", "dst", "type", "props", NULL};
        const char *const *members = s->edges ? edge_members : node_members;
        const char *key, *why;
        json_t *v, *labels, *props;
        size_t i;

        if (!json_is_object(o))
                return row_fault(s, "not a JSON object");
        json_object_foreach(o, key, v)
        {
                for (i = 0; members[i] != NULL && strcmp(members[i], key) != 0; i++)
                        ;
                if (members[i] == NULL)
                        return row_fault(s, "unknown member '%s'", key);
        }
        if (s->edges) {
                /* An edge's "id" (export writes it) is not kept: the database numbers edges. */
                s->row.ends[0] = json_key(s, json_object_get(o, "src"));
                s->row.ends[1] = json_key(s, json_object_get(o, "dst"));
                if (s->row.ends[0] == NULL || s->row.ends[1] == NULL)
                        return row_fault(s, "missing src or dst (a string or an integer)");
                s->row.type = json_string_value(json_object_get(o, "type"));
                if (s->row.type == NULL)
                        return row_fault(s, "missing type (a string)");
        } else {
                s->row.key = json_key(s, json_object_get(o, "id"));
                if (s->row.key == NULL)
                        return row_fault(s, "missing id (a string or an integer)");
                labels = json_object_get(o, "labels");
                if (labels != NULL && !json_is_array(labels))
                        return row_fault(s, "labels: not an array");
                json_array_foreach(labels, i, v)
                {
                        if (!json_is_string(v))
                                return row_fault(s, "labels: not all strings");
                        if (!row_label(s, json_string_value(v)))
                                return false;
                }
        }
        props = json_object_get(o, "props");
        if (props != NULL && !json_is_object(props))
                return row_fault(s, "props: not an object");
        json_object_foreach(props, key, v)
        {
                struct sombra_value val;
                why = cv_from_json(v, &s->arena, &val);
                if (why != NULL)
                        return row_fault(s, "%s: %s", key, why);
                if (!row_prop(s, key, &val))
                        return false;
        }
        return true;
}

static int
read_jsonl(struct source *s)
{
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int rc = SOMBRA_OK;

        while (rc == SOMBRA_OK && (len = getline(&line, &cap, s->f)) >= 0) {
                json_error_t err;
                json_t *o = NULL;
                bool ok;
                s->line++;
                if (strspn(line, " \t\r\n") == (size_t)len)
                        continue; /* blank lines carry no row */
                s->row =
                    (struct row){.line = s->line, .labels = s->row.labels, .props = s->row.props};
                if (!cv_utf8_valid(line, (size_t)len)) {
                        ok = row_fault(s, "invalid UTF-8");
                } else {
                        o = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &err);
                        ok = o != NULL ? json_row(s, o) : row_fault(s, "not JSON: %s", err.text);
                }
                rc = on_row(s, ok);
                json_decref(o);
                cv_arena_reset(&s->arena);
        }
        free(line);
        if (rc == SOMBRA_OK && ferror(s->f))
                rc = cli_fail_as(SOMBRA_EIO, "%s: %s", s->path, strerror(errno));
        return rc;
}

/* ---- CSV ---- */

/* Names and ids are C strings: a NUL byte inside one would cut it short without a word. */
static bool
field_has_nul(const struct source *s, size_t i)
{
        return s->fields[i].s != NULL && memchr(s->fields[i].s, '\0', s->fields[i].len) != NULL;
}

/*
 * Each property column once: a node map used as a set of "TYPE:KEY" (a type
 * name has no ':'), its line field holding the column's index.
 */
static int
header_unique(struct source *s, size_t nfixed)
{
        struct node_map seen = {0};
        struct cv_text name = {0};
        struct node_key *dup = NULL;
        int rc = SOMBRA_OK;
        size_t i;

        for (i = nfixed; rc == SOMBRA_OK && i < s->ncols; i++) {
                const char *t = cv_type_name(s->cols[i].type);
                name.len = 0;
                if (!cv_text_add(&name, t, strlen(t)) || !cv_text_add(&name, ":", 1) ||
                    !cv_text_add(&name, s->cols[i].key, strlen(s->cols[i].key)))
                        rc = SOMBRA_ENOMEM;
                else
                        rc = map_add(&seen, name.p, (long)i, &dup);
                if (dup != NULL)
                        break;
        }
        /* Header names are valid property names by now: fields[i].s is not NULL. */
        if (dup != NULL)
                rc = cli_fail_as(SOMBRA_EINVAL, "%s:%ld: column %zu '%s' given twice (first: %ld)",
                                 s->path, s->row_line, i + 1, s->fields[i].s, dup->line + 1);
        cv_text_free(&name);
        map_free(&seen);
        return rc;
}

/* The header: id,labels (or src,dst,type), then KEY or KEY:TYPE per property column. */
static int
csv_header(struct source *s)
{
        static const char *const node_fixed[] = {"id", "labels"};
        static const char *const edge_fixed[] = {"src", "dst", "type"};
        const char *const *fixed = s->edges ? edge_fixed : node_fixed;
        size_t nfixed = s->edges ? 3 : 2;
        int rc;

        for (size_t i = 0; i < s->nfields; i++)
                if (field_has_nul(s, i))
                        return cli_fail_as(SOMBRA_EINVAL, "%s:%ld: column %zu: a NUL byte", s->path,
                                           s->row_line, i + 1);
        if (s->nfields < nfixed)
                goto label_bad;
        for (size_t i = 0; i < nfixed; i++)
                if (s->fields[i].s == NULL || strcmp(s->fields[i].s, fixed[i]) != 0)
                        goto label_bad;
        s->cols = calloc(s->nfields, sizeof(*s->cols));
        if (s->cols == NULL)
                return SOMBRA_ENOMEM;
        s->ncols = s->nfields;
        for (size_t i = nfixed; i < s->nfields; i++) {
                const char *name = s->fields[i].s ? s->fields[i].s : "";
                const char *colon = strrchr(name, ':');
                struct column *c = &s->cols[i];
                c->type = SOMBRA_STRING;
                /* The suffix after the last ':' is the type, when it names one. */
                if (colon != NULL && cv_type_parse(colon + 1, &c->type) && c->type != SOMBRA_NULL)
                        c->key = strndup(name, (size_t)(colon - name));
                else
                        c->key = strdup(name);
                if (c->key == NULL)
                        return SOMBRA_ENOMEM;
                if (!cv_name_valid(c->key, strlen(c->key))) {
                        cli_fail("%s:%ld: column %zu: '%s' is not a property name", s->path,
                                 s->row_line, i + 1, name);
                        return SOMBRA_EINVAL;
                }
        }
        rc = header_unique(s, nfixed);
        s->header_done = rc == SOMBRA_OK;
        return rc;

label_bad:
        cli_fail("%s:%ld: the header must start with %s", s->path, s->row_line,
                 s->edges ? "src,dst,type" : "id,labels");
        return SOMBRA_EINVAL;
}

static bool
csv_row(struct source *s)
{
        size_t nfixed = s->edges ? 3 : 2;

        if (s->nfields < s->ncols)
                return row_fault(s, "missing column: %zu fields, the header has %zu", s->nfields,
                                 s->ncols);
        if (s->nfields > s->ncols)
                return row_fault(s, "extra column: %zu fields, the header has %zu", s->nfields,
                                 s->ncols);
        /* Property values are counted bytes and may hold NUL; ids, labels and types may not. */
        for (size_t i = 0; i < nfixed; i++)
                if (field_has_nul(s, i))
                        return row_fault(s, "column %zu: a NUL byte in an id, label or type",
                                         i + 1);
        if (s->edges) {
                s->row.ends[0] = s->fields[0].s;
                s->row.ends[1] = s->fields[1].s;
                s->row.type = s->fields[2].s;
        } else {
                char *labels = (char *)s->fields[1].s, *save = NULL;
                s->row.key = s->fields[0].s;
                if (s->row.key != NULL && !cv_utf8_valid(s->row.key, s->fields[0].len))
                        return row_fault(s, "id: invalid UTF-8");
                for (char *l = labels ? strtok_r(labels, ";", &save) : NULL; l != NULL;
                     l = strtok_r(NULL, ";", &save))
                        if (!row_label(s, l))
                                return false;
        }
        for (size_t i = nfixed; i < s->ncols; i++) {
                struct sombra_value v;
                const char *why;
                if (s->fields[i].s == NULL)
                        continue; /* an unquoted empty cell: no such property */
                why =
                    cv_from_text(s->cols[i].type, s->fields[i].s, s->fields[i].len, &s->arena, &v);
                if (why != NULL)
                        return row_fault(s, "%s:%s: %s: '%.40s'", s->cols[i].key,
                                         cv_type_name(s->cols[i].type), why, s->fields[i].s);
                if (!row_prop(s, s->cols[i].key, &v))
                        return false;
        }
        return true;
}

static void
csv_field(void *text, size_t len, void *arg)
{
        struct source *s = arg;
        char *copy = text != NULL ? cv_arena_strndup(&s->arena, text, len) : NULL;

        if (s->failed != SOMBRA_OK)
                return;
        if (s->nfields == 0)
                s->row_line = s->line;
        if (s->nfields == s->fields_cap) {
                size_t cap = s->fields_cap ? 2 * s->fields_cap : 16;
                void *v = realloc(s->fields, cap * sizeof(*s->fields));
                if (v == NULL) {
                        s->failed = SOMBRA_ENOMEM;
                        return;
                }
                s->fields = v;
                s->fields_cap = cap;
        }
        if (text != NULL && copy == NULL)
                s->failed = SOMBRA_ENOMEM;
        s->fields[s->nfields].s = copy;
        s->fields[s->nfields++].len = len;
}

static void
csv_end(int c, void *arg)
{
        struct source *s = arg;
        bool ok;

        (void)c;
        if (s->failed == SOMBRA_OK && !s->header_done) {
                s->failed = csv_header(s);
        } else if (s->failed == SOMBRA_OK) {
                s->row = (struct row){
                    .line = s->row_line, .labels = s->row.labels, .props = s->row.props};
                ok = csv_row(s);
                s->failed = on_row(s, ok);
        }
        s->nfields = 0;
        cv_arena_reset(&s->arena);
}

static int
read_csv(struct source *s)
{
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int rc;

        if (csv_init(&s->parser,
                     CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL) != 0)
                return SOMBRA_ENOMEM;
        while (s->failed == SOMBRA_OK && (len = getline(&line, &cap, s->f)) >= 0) {
                s->line++;
                if (csv_parse(&s->parser, line, (size_t)len, csv_field, csv_end, s) !=
                    (size_t)len) {
                        cli_fail("%s:%ld: malformed CSV: %s", s->path, s->line,
                                 csv_strerror(csv_error(&s->parser)));
                        s->failed = SOMBRA_EINVAL;
                }
        }
        if (s->failed == SOMBRA_OK && csv_fini(&s->parser, csv_field, csv_end, s) != 0) {
                cli_fail("%s:%ld: malformed CSV: %s", s->path, s->line,
                         csv_strerror(csv_error(&s->parser)));
                s->failed = SOMBRA_EINVAL;
        }
        rc = s->failed;
        if (rc == SOMBRA_OK && ferror(s->f))
                rc = cli_fail_as(SOMBRA_EIO, "%s: %s", s->path, strerror(errno));
        csv_free(&s->parser);
        free(line);
        return rc;
}

/* ---- driving ---- */

static bool
format_of(const char *path, const char *forced, bool *csv)
{
        const char *dot = strrchr(path, '.');
        const char *name = forced != NULL ? forced : dot != NULL ? dot + 1 : "";

        if (strcmp(name, "csv") == 0 || strcmp(name, "jsonl") == 0 || strcmp(name, "ndjson") == 0) {
                *csv = name[0] == 'c';
                return true;
        }
        if (forced != NULL)
                cli_fail("--format-in: csv or jsonl, not '%s'", forced);
        else
                cli_fail("%s: cannot tell the format from the name; use --format-in csv|jsonl",
                         path);
        return false;
}

/* An input file, open for both passes. */
struct input {
        const char *path; /* as given; "-" is stdin */
        FILE *f;          /* NULL: none given */
        bool csv;
};

/* Copies what is left of from into a new temporary file, rewound; NULL (said why) on failure. */
static FILE *
spool(const char *path, FILE *from)
{
        FILE *to = tmpfile();
        char buf[65536];
        size_t n;

        if (to == NULL) {
                cli_fail("%s: a temporary file to hold it: %s", path, strerror(errno));
                return NULL;
        }
        while ((n = fread(buf, 1, sizeof(buf), from)) > 0)
                if (fwrite(buf, 1, n, to) != n)
                        break;
        if (ferror(from) || ferror(to) || fflush(to) != 0 || fseeko(to, 0, SEEK_SET) != 0) {
                cli_fail("%s: copying it to a temporary file: %s", path, strerror(errno));
                fclose(to);
                return NULL;
        }
        return to;
}

/*
 * Opens path (or stdin for "-") for both passes. A regular file is read in
 * place; anything else (a pipe, a FIFO, a terminal) can be read only once,
 * so it is spooled to a temporary file first.
 */
static int
input_open(struct input *in, const char *forced_format)
{
        bool is_stdin = strcmp(in->path, "-") == 0;
        FILE *f;
        struct stat st;

        if (!format_of(in->path, forced_format, &in->csv))
                return SOMBRA_EINVAL;
        f = is_stdin ? stdin : fopen(in->path, "r");
        if (f == NULL)
                return cli_fail_as(SOMBRA_ENOTFOUND, "%s: %s", in->path, strerror(errno));
        if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
                in->f = f;
                return SOMBRA_OK;
        }
        in->f = spool(in->path, f);
        if (!is_stdin)
                fclose(f);
        return in->f != NULL ? SOMBRA_OK : SOMBRA_EIO;
}

static void
input_close(struct input *in)
{
        if (in->f != NULL && in->f != stdin)
                fclose(in->f);
        in->f = NULL;
}

/* One pass over one file, from its start. */
static int
read_file(struct importer *im, const struct input *in, bool edges)
{
        struct source s = {.path = in->path, .csv = in->csv, .f = in->f, .edges = edges, .im = im};
        int rc;

        if (fseeko(s.f, 0, SEEK_SET) != 0)
                return cli_fail_as(SOMBRA_EIO, "%s: %s", s.path, strerror(errno));
        im->bad_at = 0;
        if (im->phase == PHASE_CHECK)
                im->nbad = 0;
        rc = s.csv ? read_csv(&s) : read_jsonl(&s);
        if (im->phase == PHASE_WRITE) {
                int ended = import_write_end(im, rc == SOMBRA_OK);
                if (rc == SOMBRA_OK)
                        rc = ended;
        }
        for (size_t i = 0; i < s.ncols; i++)
                free(s.cols[i].key);
        free(s.cols);
        free(s.fields);
        free(s.row.labels);
        free(s.row.props);
        cv_arena_free(&s.arena);
        return rc;
}

static double
now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Both passes over both files. The bad lines of a file are only needed
 * between its check and its write, but the nodes file's check must come
 * before the edges file's (edges name nodes), so each file keeps its own
 * list: the nodes file's is kept aside while the edges file is checked.
 */
static int
import_run(struct importer *im, const struct input *files)
{
        long *bad[2] = {NULL, NULL};
        size_t nbad[2] = {0, 0};
        int rc = SOMBRA_OK;

        im->phase = PHASE_CHECK;
        for (int k = 0; k < 2 && rc == SOMBRA_OK; k++) {
                if (files[k].f == NULL)
                        continue;
                rc = read_file(im, &files[k], k == 1);
                bad[k] = im->bad;
                nbad[k] = im->nbad;
                im->bad = NULL;
                im->nbad = im->bad_cap = 0;
        }
        if (rc == SOMBRA_OK && im->bad_total > 0 && !im->args->skip_bad) {
                cli_fail("import aborted: %" PRIu64 " bad row%s, nothing written "
                         "(--on-error skip writes the others)",
                         im->bad_total, im->bad_total == 1 ? "" : "s");
                rc = SOMBRA_EINVAL;
        }
        im->phase = PHASE_WRITE;
        for (int k = 0; k < 2 && rc == SOMBRA_OK; k++) {
                if (files[k].f == NULL)
                        continue;
                im->bad = bad[k];
                im->nbad = nbad[k];
                rc = read_file(im, &files[k], k == 1);
                im->bad = NULL;
        }
        free(bad[0]);
        free(bad[1]);
        return rc;
}

/* path's log, named as the library names it; false when the name does not fit in cap. */
static bool
wal_name(char *out, size_t cap, const char *path)
{
        return (size_t)snprintf(out, cap, "%s-wal", path) < cap;
}

/* An import that made the database and then wrote nothing takes it away again. */
static void
remove_new_db(const char *path)
{
        char wal[PATH_MAX + 8];

        unlink(path);
        if (wal_name(wal, sizeof(wal), path)) /* a cut name would be another file's */
                unlink(wal);
}

/*
 * A database the import made is compacted once it is loaded. Each batch
 * copies the pages it changes, and a page that a checkpoint wrote is reused
 * only after two more: 100,000 nodes and 500,000 random edges left 85 MiB,
 * 59% of it free pages, against 30 MiB compacted (bench/README.md,
 * "`sombra import` against `sqlite3 .import`"). The compacted copy goes to a
 * new name beside the database (path is the database's real path, as the
 * library resolves it to find the log), made while it is still open; *tmp
 * gets that name. False, with the reason said, when no copy was made.
 */
static bool
compact_copy(sombra_db *db, const char *path, char *tmp, size_t cap)
{
        int fd, rc;

        if ((size_t)snprintf(tmp, cap, "%s.compact-XXXXXX", path) >= cap) {
                fprintf(stderr, "sombra: import: no compacted copy: the path is too long\n");
                return false;
        }
        fd = mkstemp(tmp); /* a name nobody has; sombra_backup_compact wants it free */
        if (fd < 0) {
                fprintf(stderr, "sombra: import: no compacted copy: %s: %s\n", tmp,
                        strerror(errno));
                return false;
        }
        close(fd);
        unlink(tmp);
        rc = sombra_backup_compact(db, tmp);
        if (rc != SOMBRA_OK)
                fprintf(stderr, "sombra: import: no compacted copy: %s\n", sombra_strerror(rc));
        return rc == SOMBRA_OK;
}

/* Makes the entries of path's directory durable: 0, or an errno value. */
static int
sync_dir_of(const char *path)
{
        char *copy = strdup(path);
        int fd = copy == NULL ? -1 : open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int err = fd < 0 || fsync(fd) != 0 ? errno : 0;

        if (fd >= 0)
                close(fd);
        free(copy);
        return err;
}

/* A database file and its log as they stand: which files, their sizes, their last changes. */
struct db_stamp {
        struct stat db, wal;
        bool db_found, wal_found;
};

static void
stamp_take(const char *path, const char *wal, struct db_stamp *st)
{
        memset(st, 0, sizeof(*st));
        st->db_found = stat(path, &st->db) == 0;
        st->wal_found = stat(wal, &st->wal) == 0;
}

static bool
stat_same(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static bool
stamp_same(const struct db_stamp *a, const struct db_stamp *b)
{
        return a->db_found == b->db_found && a->wal_found == b->wal_found &&
               (!a->db_found || stat_same(&a->db, &b->db)) &&
               (!a->wal_found || stat_same(&a->wal, &b->wal));
}

/*
 * After the database was closed (every commit then lies in its file), the
 * copy takes its place, under the database's owner lock (flock, as the
 * library takes it), so that no other process can open it as its owner
 * meanwhile and lose its commits with the log. One that opened it between
 * the close and the lock, and wrote, changed the file or its log since
 * `closed` was taken, right after the close: then the copy is not used.
 * The log goes first, and that is made durable before the rename: a crash
 * in between leaves the database as loaded, without the log it no longer
 * needs, where a log left beside the copy would name another database and
 * stop every open. False when the database stays as loaded (the copy is
 * removed).
 */
static bool
compact_swap(const char *path, const char *tmp, const struct db_stamp *closed)
{
        char wal[PATH_MAX + 8];
        struct db_stamp now;
        int fd = -1, err = 0;
        bool renamed = false;

        if (!wal_name(wal, sizeof(wal), path))
                err = ENAMETOOLONG;
        if (err == 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                err = errno;
        if (err == 0 && flock(fd, LOCK_EX | LOCK_NB) != 0)
                err = errno == EWOULDBLOCK ? EBUSY : errno; /* another process opened it */
        if (err == 0) {
                stamp_take(path, wal, &now);
                if (!stamp_same(closed, &now))
                        err = EBUSY; /* another process opened it and wrote, meanwhile */
        }
        if (err == 0 && unlink(wal) != 0 && errno != ENOENT)
                err = errno;
        if (err == 0)
                err = sync_dir_of(path);
        if (err == 0 && rename(tmp, path) != 0)
                err = errno;
        else if (err == 0)
                renamed = true;
        if (renamed && (err = sync_dir_of(path)) != 0)
                fprintf(stderr, "sombra: import: syncing the directory of %s: %s\n", path,
                        strerror(err));
        if (fd >= 0)
                close(fd); /* the lock goes with it, from the file the copy replaced */
        if (renamed)
                return true;
        fprintf(stderr, "sombra: import: the compacted copy was not used: %s\n", strerror(err));
        unlink(tmp);
        return false;
}

int
cli_import(const struct cli_args *a)
{
        struct importer im = {.args = a, .progress = isatty(STDERR_FILENO)};
        struct input files[2] = {{.path = a->nodes}, {.path = a->edges}};
        double start = now();
        struct stat st;
        bool existed = stat(a->pos[0], &st) == 0, copied = false, compacted = false;
        char tmp[PATH_MAX + 32], wal[PATH_MAX + 8], *real = NULL;
        struct db_stamp closed = {0};
        sombra_db *db;
        int rc = CLI_FAIL;

        if (a->nodes == NULL && a->edges == NULL)
                return cli_fail_as(CLI_USAGE, "import: give --nodes FILE, --edges FILE or both");
        if (a->nodes != NULL && a->edges != NULL && strcmp(a->nodes, "-") == 0 &&
            strcmp(a->edges, "-") == 0)
                return cli_fail_as(CLI_USAGE,
                                   "import: stdin (-) can hold nodes or edges, not both");
        for (int k = 0; k < 2; k++)
                if (files[k].path != NULL && input_open(&files[k], a->format_in) != SOMBRA_OK)
                        goto label_done;
        for (int t = 0; t < 2; t++) {
                im.turn[t].nodes = calloc(a->batch, sizeof(*im.turn[t].nodes));
                if (im.turn[t].nodes == NULL || sombra_batch_new(&im.turn[t].batch) != SOMBRA_OK) {
                        cli_fail("out of memory");
                        goto label_done;
                }
        }
        rc = cli_open(a->pos[0], CLI_OPEN_CREATE, &db, &im.conn);
        if (rc == CLI_OK) {
                rc = import_run(&im, files) == SOMBRA_OK ? CLI_OK : CLI_FAIL;
                if (rc == CLI_OK && !existed && !a->no_compact) {
                        real = realpath(a->pos[0], NULL);
                        if (real == NULL)
                                fprintf(stderr, "sombra: import: no compacted copy: %s\n",
                                        strerror(errno));
                        copied = real != NULL && compact_copy(db, real, tmp, sizeof(tmp));
                }
                if (cli_close(db, im.conn) != CLI_OK)
                        rc = CLI_FAIL;
                if (copied && wal_name(wal, sizeof(wal), real))
                        stamp_take(real, wal, &closed);
                if (rc != CLI_OK && !existed && im.done[0] + im.done[1] == 0)
                        remove_new_db(a->pos[0]);
                if (copied && rc != CLI_OK)
                        unlink(tmp);
                compacted = copied && rc == CLI_OK && compact_swap(real, tmp, &closed);
                free(real);
        }
        if (rc == CLI_OK)
                rc = out_object(json_pack("{s:I,s:I,s:I,s:b,s:f}", "nodes", (json_int_t)im.done[0],
                                          "edges", (json_int_t)im.done[1], "skipped",
                                          (json_int_t)im.bad_total, "compacted", compacted,
                                          "seconds", now() - start),
                                a->json);
label_done:
        input_close(&files[0]);
        input_close(&files[1]);
        for (int t = 0; t < 2; t++) {
                sombra_batch_free(im.turn[t].batch);
                free(im.turn[t].nodes);
        }
        map_free(&im.map);
        return rc;
}
