/*
 * cli_out.c - tables and JSON on stdout.
 *
 * Commands build their answer as jansson values once; this module renders
 * it either way, so the two formats cannot drift apart. In a table, strings
 * print as they are, numbers as JSON writes them, arrays as their elements
 * joined by ';' and null as nothing.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_out.h"
#include "cli_value.h"

static bool
cell_text(json_t *v, struct cv_text *out)
{
        size_t i;
        json_t *e;
        char *s;
        bool ok;

        out->len = 0;
        if (json_is_string(v))
                return cv_text_add(out, json_string_value(v), json_string_length(v));
        if (json_is_null(v) || v == NULL)
                return cv_text_add(out, "", 0);
        if (json_is_array(v)) {
                ok = cv_text_add(out, "", 0);
                json_array_foreach(v, i, e)
                {
                        struct cv_text one = {0};
                        ok = ok && cell_text(e, &one) && (i == 0 || cv_text_add(out, ";", 1)) &&
                             cv_text_add(out, one.p, one.len);
                        cv_text_free(&one);
                }
                return ok;
        }
        s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        ok = s != NULL && cv_text_add(out, s, strlen(s));
        free(s);
        return ok;
}

static int
print_json(json_t *v)
{
        int rc = json_dumpf(v, stdout, JSON_INDENT(2)) == 0 ? CLI_OK : CLI_FAIL;

        putchar('\n');
        return rc;
}

/*
 * Prints the table whose rows are the arrays of cell strings in cells
 * (ncols each), padding every column but the last to its widest cell.
 */
static void
print_table(struct cv_text *cells, size_t nrows, size_t ncols)
{
        size_t width[16] = {0};

        assert(ncols <= 16);

        for (size_t r = 0; r < nrows; r++)
                for (size_t c = 0; c < ncols; c++)
                        if (cells[r * ncols + c].len > width[c])
                                width[c] = cells[r * ncols + c].len;
        for (size_t r = 0; r < nrows; r++) {
                for (size_t c = 0; c < ncols; c++) {
                        const struct cv_text *t = &cells[r * ncols + c];
                        fputs(t->len ? t->p : "", stdout);
                        if (c + 1 < ncols)
                                printf("%*s", (int)(width[c] - t->len + 2), "");
                }
                putchar('\n');
        }
}

/* NULL (from a failed json_* call) or --format json: dealt with here, *rc says how. */
static bool
handled(json_t *v, bool json, int *rc)
{
        if (v == NULL) {
                *rc = cli_fail("out of memory");
                return true;
        }
        if (!json)
                return false;
        *rc = print_json(v);
        json_decref(v);
        return true;
}

/* Prints the table when every cell was made, then frees the cells (cells may be NULL) and v. */
static int
table_finish(struct cv_text *cells, size_t nrows, size_t ncols, bool ok, json_t *v)
{
        if (ok)
                print_table(cells, nrows, ncols);
        for (size_t i = 0; cells != NULL && i < nrows * ncols; i++)
                cv_text_free(&cells[i]);
        free(cells);
        json_decref(v);
        return ok ? CLI_OK : cli_fail("out of memory");
}

int
out_object(json_t *obj, bool json)
{
        size_t n = json_object_size(obj), r = 0;
        struct cv_text *cells;
        const char *key;
        json_t *v;
        bool ok;
        int rc;

        if (handled(obj, json, &rc))
                return rc;
        cells = calloc(2 * n + 1, sizeof(*cells));
        ok = cells != NULL;
        json_object_foreach(obj, key, v)
        {
                if (!ok)
                        break;
                ok =
                    cv_text_add(&cells[2 * r], key, strlen(key)) && cell_text(v, &cells[2 * r + 1]);
                r++;
        }
        return table_finish(cells, n, 2, ok, obj);
}

int
out_rows(json_t *rows, const char *const *cols, size_t ncols, bool json)
{
        size_t n = json_array_size(rows), i;
        struct cv_text *cells;
        json_t *row;
        bool ok;
        int rc;

        if (handled(rows, json, &rc))
                return rc;
        cells = calloc((n + 1) * ncols, sizeof(*cells));
        ok = cells != NULL;
        for (size_t c = 0; ok && c < ncols; c++)
                ok = cv_text_add(&cells[c], cols[c], strlen(cols[c]));
        json_array_foreach(rows, i, row)
        {
                for (size_t c = 0; ok && c < ncols; c++)
                        ok = cell_text(json_object_get(row, cols[c]), &cells[(i + 1) * ncols + c]);
        }
        return table_finish(cells, n + 1, ncols, ok, rows);
}
