/*
 * cli_export.c - `sombra export`: every node, then every edge, in the
 * formats `sombra import` reads (tools/README.md), so that an export
 * imported into an empty database gives the same graph.
 *
 * The whole export runs inside one read transaction, so it is one commit's
 * state however long it takes, and streams: ids come from the database a
 * page at a time and each row is written as it is read. A CSV file needs its
 * header first, and its columns are every (key, type) pair any row uses, so
 * CSV makes one extra pass over the rows to collect them; the node's id
 * column is its database id, which the edge rows name.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <csv.h>

#include "cli.h"
#include "cli_export.h"
#include "cli_value.h"

#define EXPORT_PAGE 1024

/* One CSV property column: a key and the type of its values. */
struct column {
        char *key;
        enum sombra_type type;
};

struct exporter {
        sombra_conn *conn;
        bool csv;
        bool warned_null; /* CSV has no null: said once */
        struct column *cols;
        size_t ncols, cap;
        struct cv_text cell;
};

json_t *
export_entity_json(const struct sombra_entity *e, bool edge)
{
        json_t *o = json_pack("{s:I}", "id", (json_int_t)e->id), *props = json_object(), *list;
        bool ok = o != NULL && props != NULL;

        if (ok && edge) {
                ok = json_object_set_new(o, "src", json_integer((json_int_t)e->src)) == 0 &&
                     json_object_set_new(o, "dst", json_integer((json_int_t)e->dst)) == 0 &&
                     json_object_set_new(o, "type", json_string(e->type)) == 0;
        } else if (ok) {
                list = json_array();
                for (size_t i = 0; list != NULL && i < e->nlabels; i++)
                        if (json_array_append_new(list, json_string(e->labels[i])) != 0)
                                break;
                ok = list != NULL && json_array_size(list) == e->nlabels &&
                     json_object_set_new(o, "labels", list) == 0;
        }
        for (size_t i = 0; ok && i < e->nprops; i++) {
                json_t *v = cv_to_json(&e->props[i].value);
                ok = v != NULL && json_object_set_new(props, e->props[i].key, v) == 0;
        }
        ok = ok && json_object_set(o, "props", props) == 0;
        json_decref(props);
        if (!ok)
                json_decref(o);
        return ok ? o : NULL;
}

/* ---- CSV ---- */

static int
column_find(const struct exporter *x, const char *key, enum sombra_type type)
{
        for (size_t i = 0; i < x->ncols; i++)
                if (x->cols[i].type == type && strcmp(x->cols[i].key, key) == 0)
                        return (int)i;
        return -1;
}

static int
columns_add(struct exporter *x, const struct sombra_entity *e)
{
        for (size_t i = 0; i < e->nprops; i++) {
                const struct sombra_prop *p = &e->props[i];
                if (p->value.type == SOMBRA_NULL || column_find(x, p->key, p->value.type) >= 0)
                        continue;
                if (x->ncols == x->cap) {
                        size_t cap = x->cap ? 2 * x->cap : 16;
                        struct column *v = realloc(x->cols, cap * sizeof(*v));
                        if (v == NULL)
                                return SOMBRA_ENOMEM;
                        x->cols = v;
                        x->cap = cap;
                }
                x->cols[x->ncols].key = strdup(p->key);
                if (x->cols[x->ncols].key == NULL)
                        return SOMBRA_ENOMEM;
                x->cols[x->ncols++].type = p->value.type;
        }
        return SOMBRA_OK;
}

/*
 * One cell after a comma (unless first). Quoted when the text holds a
 * delimiter, a quote or a line break, starts or ends with a blank (which
 * the reader would trim), or is empty: an unquoted empty cell means "no
 * value", a quoted one the empty string.
 */
static void
csv_cell(FILE *f, const char *s, size_t len, bool first)
{
        bool quote = len == 0 || strpbrk(s, ",\"\r\n") != NULL || s[0] == ' ' || s[0] == '\t' ||
                     s[len - 1] == ' ' || s[len - 1] == '\t';

        if (!first)
                fputc(',', f);
        if (quote)
                csv_fwrite(f, s, len);
        else
                fwrite(s, 1, len, f);
}

/* The cell text holds a NUL-terminated copy, so csv_cell's strpbrk stays inside it. */
static int
csv_header(struct exporter *x, FILE *f, bool edge)
{
        fputs(edge ? "src,dst,type" : "id,labels", f);
        for (size_t i = 0; i < x->ncols; i++) {
                const char *t = cv_type_name(x->cols[i].type);
                x->cell.len = 0;
                if (!cv_text_add(&x->cell, x->cols[i].key, strlen(x->cols[i].key)) ||
                    !cv_text_add(&x->cell, ":", 1) || !cv_text_add(&x->cell, t, strlen(t)))
                        return SOMBRA_ENOMEM;
                csv_cell(f, x->cell.p, x->cell.len, false);
        }
        fputc('\n', f);
        return SOMBRA_OK;
}

static int
csv_row(struct exporter *x, FILE *f, const struct sombra_entity *e, bool edge)
{
        if (edge) {
                fprintf(f, "%" PRIu64 ",%" PRIu64, e->src, e->dst);
                csv_cell(f, e->type, strlen(e->type), false);
        } else {
                x->cell.len = 0;
                for (size_t i = 0; i < e->nlabels; i++) {
                        if (strchr(e->labels[i], ';') != NULL) {
                                cli_fail("node %" PRIu64 ": label '%s' holds ';', which CSV "
                                         "uses between labels; export as jsonl",
                                         e->id, e->labels[i]);
                                return SOMBRA_EINVAL;
                        }
                        if ((i > 0 && !cv_text_add(&x->cell, ";", 1)) ||
                            !cv_text_add(&x->cell, e->labels[i], strlen(e->labels[i])))
                                return SOMBRA_ENOMEM;
                }
                fprintf(f, "%" PRIu64 ",", e->id);
                if (x->cell.len > 0)
                        csv_cell(f, x->cell.p, x->cell.len, true);
        }
        for (size_t i = 0; i < e->nprops; i++) {
                if (e->props[i].value.type == SOMBRA_NULL && !x->warned_null) {
                        fprintf(stderr,
                                "sombra: CSV cannot hold null values: %s of %" PRIu64
                                " and any other are left out (jsonl keeps them)\n",
                                e->props[i].key, e->id);
                        x->warned_null = true;
                }
        }
        for (size_t c = 0; c < x->ncols; c++) {
                const struct sombra_prop *p = NULL;
                for (size_t i = 0; i < e->nprops && p == NULL; i++)
                        if (e->props[i].value.type == x->cols[c].type &&
                            strcmp(e->props[i].key, x->cols[c].key) == 0)
                                p = &e->props[i];
                if (p == NULL) {
                        fputc(',', f);
                        continue;
                }
                x->cell.len = 0;
                if (!cv_to_text(&p->value, &x->cell))
                        return SOMBRA_ENOMEM;
                csv_cell(f, x->cell.p, x->cell.len, false);
        }
        fputc('\n', f);
        return SOMBRA_OK;
}

/* ---- the walk ---- */

/* What to do with each node or edge: collect CSV columns, or write a row. */
enum pass { PASS_COLUMNS, PASS_ROWS };

static int
entity_out(struct exporter *x, FILE *f, const struct sombra_entity *e, bool edge, enum pass pass)
{
        json_t *j;
        int rc;

        if (pass == PASS_COLUMNS)
                return columns_add(x, e);
        if (x->csv)
                return csv_row(x, f, e, edge);
        j = export_entity_json(e, edge);
        if (j == NULL) {
                cli_fail("%s %" PRIu64 ": a value JSON cannot hold (NaN, infinity, or a string "
                         "that is not UTF-8)",
                         edge ? "edge" : "node", e->id);
                return SOMBRA_EINVAL;
        }
        rc = json_dumpf(j, f, JSON_COMPACT) == 0 ? SOMBRA_OK : SOMBRA_EIO;
        fputc('\n', f);
        json_decref(j);
        return rc;
}

/* Every node (or edge) in id order, through entity_out. */
static int
walk(struct exporter *x, FILE *f, bool edge, enum pass pass)
{
        uint64_t page[EXPORT_PAGE], after = 0;
        const struct sombra_entity *e;
        const uint64_t *ids;
        size_t n;
        int rc;

        do {
                rc = edge ? sombra_edge_ids(x->conn, after, EXPORT_PAGE, &ids, &n)
                          : sombra_node_ids(x->conn, after, EXPORT_PAGE, &ids, &n);
                if (rc != SOMBRA_OK)
                        break;
                /* The ids live in the connection only until its next read (NULL when none). */
                if (n > 0)
                        memcpy(page, ids, n * sizeof(*ids));
                for (size_t i = 0; i < n && rc == SOMBRA_OK; i++) {
                        rc = edge ? sombra_edge_get(x->conn, page[i], &e)
                                  : sombra_node_get(x->conn, page[i], &e);
                        if (rc == SOMBRA_OK)
                                rc = entity_out(x, f, e, edge, pass);
                }
                if (n > 0)
                        after = page[n - 1];
        } while (rc == SOMBRA_OK && n == EXPORT_PAGE);
        return rc;
}

static int
export_one(struct exporter *x, FILE *f, bool edge)
{
        int rc = SOMBRA_OK;

        for (size_t i = 0; i < x->ncols; i++)
                free(x->cols[i].key);
        x->ncols = 0;
        if (x->csv) {
                rc = walk(x, f, edge, PASS_COLUMNS);
                if (rc == SOMBRA_OK)
                        rc = csv_header(x, f, edge);
        }
        if (rc == SOMBRA_OK)
                rc = walk(x, f, edge, PASS_ROWS);
        return rc;
}

/* DIR/NAME.EXT for writing, DIR made when missing; NULL (said why) on failure. */
static FILE *
open_out(const char *dir, const char *name, const char *ext)
{
        char path[4096];
        FILE *f;

        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
                cli_fail("%s: %s", dir, strerror(errno));
                return NULL;
        }
        snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
        f = fopen(path, "w");
        if (f == NULL)
                cli_fail("%s: %s", path, strerror(errno));
        return f;
}

static int
close_out(FILE *f, int rc)
{
        if (f == stdout)
                return fflush(f) == 0 ? rc : SOMBRA_EIO;
        if (fclose(f) != 0 && rc == SOMBRA_OK)
                return SOMBRA_EIO;
        return rc;
}

int
cli_export(const struct cli_args *a)
{
        struct exporter x = {0};
        const char *ext = a->format_out != NULL ? a->format_out : "jsonl";
        bool nodes = a->only == NULL || strcmp(a->only, "nodes") == 0;
        bool edges = a->only == NULL || strcmp(a->only, "edges") == 0;
        sombra_db *db;
        FILE *f;
        int rc;

        if (strcmp(ext, "csv") != 0 && strcmp(ext, "jsonl") != 0)
                return cli_fail_as(CLI_USAGE, "--format-out: csv or jsonl, not '%s'", ext);
        if (!nodes && !edges)
                return cli_fail_as(CLI_USAGE, "--only: nodes or edges, not '%s'", a->only);
        x.csv = strcmp(ext, "csv") == 0;
        if (cli_open(a->pos[0], CLI_OPEN_READ, &db, &x.conn) != CLI_OK)
                return CLI_FAIL;
        rc = sombra_read_begin(x.conn);
        for (int pass = 0; pass < 2 && rc == SOMBRA_OK; pass++) {
                bool edge = pass == 1;
                if (!(edge ? edges : nodes))
                        continue;
                f = a->out_dir ? open_out(a->out_dir, edge ? "edges" : "nodes", ext) : stdout;
                if (f == NULL) {
                        rc = SOMBRA_EIO;
                        break;
                }
                /* Two CSV tables on one stream: an empty line between them. */
                if (f == stdout && edge && nodes && x.csv)
                        fputc('\n', f);
                rc = close_out(f, export_one(&x, f, edge));
        }
        if (rc != SOMBRA_OK)
                cli_fail("export: %s", sombra_strerror(rc));
        (void)sombra_read_end(x.conn);
        for (size_t i = 0; i < x.ncols; i++)
                free(x.cols[i].key);
        free(x.cols);
        cv_text_free(&x.cell);
        return cli_close(db, x.conn) == CLI_OK && rc == SOMBRA_OK ? CLI_OK : CLI_FAIL;
}
