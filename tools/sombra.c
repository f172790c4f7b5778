/*
 * sombra.c - the `sombra` command-line tool: main, the command table and
 * the small commands (stats, verify, checkpoint, backup, get, neighbors,
 * path, bench). Import and export have modules of their own.
 *
 * Each command names its options in its own getopt_long table (export's
 * `--out DIR` and neighbors' `--out` differ), and they all land in one
 * struct cli_args. Every command opens the database with the production
 * preset, takes one connection, and closes it before exiting, so that what
 * it wrote is checkpointed. Commands that only read (stats, verify, backup,
 * get, neighbors, path, export) open it read-only: they work while another
 * process has it open for writing, and change no file.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "cli_export.h"
#include "cli_out.h"
#include "cli_value.h"

struct command {
        const char *name;
        const char *usage; /* synopsis, then one line per option */
        int min_pos, max_pos;
        const struct option *longs;
        int (*run)(const struct cli_args *a);
};

#define OPT_HELP                                                                                   \
        {                                                                                          \
                "help", no_argument, NULL, 'h'                                                     \
        }
#define OPT_FORMAT                                                                                 \
        {                                                                                          \
                "format", required_argument, NULL, 'f'                                             \
        }
#define OPT_DIRS                                                                                   \
        {"type", required_argument, NULL, 't'}, {"in", no_argument, NULL, 'i'},                    \
            {"out", no_argument, NULL, 'o'},                                                       \
        {                                                                                          \
                "both", no_argument, NULL, 'b'                                                     \
        }

static const struct option plain_opts[] = {OPT_HELP, {NULL, 0, NULL, 0}};
static const struct option table_opts[] = {OPT_HELP, OPT_FORMAT, {NULL, 0, NULL, 0}};
static const struct option backup_opts[] = {
    OPT_HELP, {"compact", no_argument, NULL, 'C'}, {NULL, 0, NULL, 0}};
static const struct option get_opts[] = {
    OPT_HELP, OPT_FORMAT, {"edge", no_argument, NULL, 'E'}, {NULL, 0, NULL, 0}};
static const struct option walk_opts[] = {OPT_HELP, OPT_FORMAT, OPT_DIRS, {NULL, 0, NULL, 0}};
static const struct option import_opts[] = {OPT_HELP,
                                            OPT_FORMAT,
                                            {"nodes", required_argument, NULL, 'n'},
                                            {"edges", required_argument, NULL, 'e'},
                                            {"format-in", required_argument, NULL, 'I'},
                                            {"on-error", required_argument, NULL, 'x'},
                                            {"batch", required_argument, NULL, 'B'},
                                            {"no-compact", no_argument, NULL, 'N'},
                                            {NULL, 0, NULL, 0}};
static const struct option export_opts[] = {OPT_HELP,
                                            {"out", required_argument, NULL, 'D'},
                                            {"format-out", required_argument, NULL, 'O'},
                                            {"only", required_argument, NULL, 'W'},
                                            {NULL, 0, NULL, 0}};

/* ---- the small commands ---- */

static int
run_stats(const struct cli_args *a)
{
        struct sombra_stats st;
        sombra_db *db;
        sombra_conn *c;
        json_t *o;
        int rc = cli_open(a->pos[0], CLI_OPEN_READ, &db, &c);

        if (rc != CLI_OK)
                return rc;
        rc = sombra_stats(db, &st);
        if (rc != SOMBRA_OK) {
                cli_fail("stats: %s", sombra_strerror(rc));
                cli_close(db, c);
                return CLI_FAIL;
        }
        o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I}",
                      "nodes", (json_int_t)st.nodes, "edges", (json_int_t)st.edges, "file_bytes",
                      (json_int_t)st.file_bytes, "wal_bytes", (json_int_t)st.wal_size, "page_size",
                      (json_int_t)st.page_size, "pages", (json_int_t)st.pages, "pages_used",
                      (json_int_t)(st.pages - st.free_pages - st.retired_pages), "pages_free",
                      (json_int_t)st.free_pages, "pages_retired", (json_int_t)st.retired_pages,
                      "checkpoints", (json_int_t)st.checkpoints, "cache_hits",
                      (json_int_t)st.cache_hits, "cache_misses", (json_int_t)st.cache_misses,
                      "cache_evictions", (json_int_t)st.cache_evictions, "cache_pages",
                      (json_int_t)st.cached_pages, "cache_hit_rate",
                      st.cache_hits + st.cache_misses
                          ? (double)st.cache_hits / (double)(st.cache_hits + st.cache_misses)
                          : 0.0,
                      "commits", (json_int_t)st.commits, "dirty_pages", (json_int_t)st.dirty_pages);
        rc = out_object(o, a->json);
        return cli_close(db, c) == CLI_OK ? rc : CLI_FAIL;
}

static int
run_verify(const struct cli_args *a)
{
        char problem[512];
        sombra_db *db;
        sombra_conn *c;
        json_t *problems = json_array();
        int rc = cli_open(a->pos[0], CLI_OPEN_READ, &db, &c), vrc;

        if (rc != CLI_OK) {
                json_decref(problems);
                return rc;
        }
        vrc = sombra_verify(db, problem, sizeof(problem));
        if (vrc != SOMBRA_OK) {
                if (problem[0] == '\0')
                        snprintf(problem, sizeof(problem), "%s", sombra_strerror(vrc));
                fprintf(stderr, "%s: %s\n", a->pos[0], problem);
                json_array_append_new(problems, json_string(problem));
        }
        rc = out_object(json_pack("{s:b,s:o}", "healthy", vrc == SOMBRA_OK, "problems", problems),
                        a->json);
        if (cli_close(db, c) != CLI_OK || rc != CLI_OK)
                return CLI_FAIL;
        return vrc == SOMBRA_OK ? CLI_OK : CLI_FAIL;
}

static int
run_checkpoint(const struct cli_args *a)
{
        sombra_db *db;
        sombra_conn *c;
        int rc = cli_open(a->pos[0], CLI_OPEN_WRITE, &db, &c);

        if (rc != CLI_OK)
                return rc;
        rc = sombra_checkpoint(db);
        if (rc != SOMBRA_OK)
                cli_fail("checkpoint: %s", sombra_strerror(rc));
        return cli_close(db, c) == CLI_OK && rc == SOMBRA_OK ? CLI_OK : CLI_FAIL;
}

static int
run_backup(const struct cli_args *a)
{
        sombra_db *db;
        sombra_conn *c;
        int rc = cli_open(a->pos[0], CLI_OPEN_READ, &db, &c);

        if (rc != CLI_OK)
                return rc;
        rc = a->compact ? sombra_backup_compact(db, a->pos[1]) : sombra_backup(db, a->pos[1]);
        if (rc != SOMBRA_OK)
                cli_fail("backup to %s: %s", a->pos[1], sombra_strerror(rc));
        return cli_close(db, c) == CLI_OK && rc == SOMBRA_OK ? CLI_OK : CLI_FAIL;
}

/* get as a table: one row per field, properties as "key:type" like a CSV header. */
static json_t *
entity_rows(const struct sombra_entity *e, bool edge)
{
        json_t *o = json_pack("{s:I}", "id", (json_int_t)e->id), *labels = json_array();
        struct cv_text name = {0}, value = {0};
        bool ok = o != NULL && labels != NULL;

        if (ok && edge)
                ok = json_object_set_new(o, "src", json_integer((json_int_t)e->src)) == 0 &&
                     json_object_set_new(o, "dst", json_integer((json_int_t)e->dst)) == 0 &&
                     json_object_set_new(o, "type", json_string(e->type)) == 0;
        for (size_t i = 0; ok && i < e->nlabels; i++)
                ok = json_array_append_new(labels, json_string(e->labels[i])) == 0;
        if (ok && !edge)
                ok = json_object_set(o, "labels", labels) == 0;
        for (size_t i = 0; ok && i < e->nprops; i++) {
                const struct sombra_prop *p = &e->props[i];
                const char *t = cv_type_name(p->value.type);
                name.len = value.len = 0;
                ok = cv_text_add(&name, p->key, strlen(p->key)) && cv_text_add(&name, ":", 1) &&
                     cv_text_add(&name, t, strlen(t)) && cv_to_text(&p->value, &value) &&
                     json_object_set_new(o, name.p, json_stringn(value.p, value.len)) == 0;
        }
        cv_text_free(&name);
        cv_text_free(&value);
        json_decref(labels);
        if (!ok)
                json_decref(o);
        return ok ? o : NULL;
}

static int
run_get(const struct cli_args *a)
{
        const struct sombra_entity *e;
        sombra_db *db;
        sombra_conn *c;
        uint64_t id;
        json_t *o;
        int rc;

        if (!cli_parse_id(a->pos[1], &id))
                return CLI_USAGE;
        rc = cli_open(a->pos[0], CLI_OPEN_READ, &db, &c);
        if (rc != CLI_OK)
                return rc;
        rc = a->edge ? sombra_edge_get(c, id, &e) : sombra_node_get(c, id, &e);
        o = rc != SOMBRA_OK ? NULL
            : a->json       ? export_entity_json(e, a->edge)
                            : entity_rows(e, a->edge);
        if (rc != SOMBRA_OK)
                rc = cli_fail("%s %" PRIu64 ": %s", a->edge ? "edge" : "node", id,
                              sombra_strerror(rc));
        else if (o == NULL) /* the library stores strings as given: they may not be UTF-8 */
                rc = cli_fail("%s %" PRIu64 ": a value JSON cannot hold (NaN, infinity, or a "
                              "string that is not UTF-8); sombra export --format-out csv shows it",
                              a->edge ? "edge" : "node", id);
        else
                rc = out_object(o, a->json);
        return cli_close(db, c) == CLI_OK ? rc : CLI_FAIL;
}

/* Appends row (a new reference) to *rows; on failure drops both and leaves *rows NULL. */
static void
rows_add(json_t **rows, json_t *row)
{
        if (*rows != NULL && json_array_append_new(*rows, row) == 0)
                return;
        json_decref(*rows);
        *rows = NULL;
}

static const char *
dir_name(enum sombra_dir d)
{
        return d == SOMBRA_OUT ? "out" : d == SOMBRA_IN ? "in" : "both";
}

static int
run_neighbors(const struct cli_args *a)
{
        static const char *const cols[] = {"edge", "node", "type", "dir"};
        const struct sombra_neighbor *nb;
        sombra_db *db;
        sombra_conn *c;
        uint64_t id;
        size_t n;
        json_t *rows;
        int rc;

        if (!cli_parse_id(a->pos[1], &id))
                return CLI_USAGE;
        rc = cli_open(a->pos[0], CLI_OPEN_READ, &db, &c);
        if (rc != CLI_OK)
                return rc;
        rc = sombra_neighbors(c, id, a->dir, &a->type, a->type != NULL, &nb, &n);
        if (rc != SOMBRA_OK) {
                rc = cli_fail("node %" PRIu64 ": %s", id, sombra_strerror(rc));
        } else {
                rows = json_array();
                for (size_t i = 0; rows != NULL && i < n; i++)
                        rows_add(&rows,
                                 json_pack("{s:I,s:I,s:s,s:s}", "edge", (json_int_t)nb[i].edge,
                                           "node", (json_int_t)nb[i].node, "type", nb[i].type,
                                           "dir", dir_name(nb[i].dir)));
                rc = out_rows(rows, cols, 4, a->json);
        }
        return cli_close(db, c) == CLI_OK ? rc : CLI_FAIL;
}

static int
run_path(const struct cli_args *a)
{
        static const char *const cols[] = {"step", "node"};
        const struct sombra_entity *e;
        const uint64_t *ids;
        uint64_t from, to;
        sombra_db *db;
        sombra_conn *c;
        size_t n;
        json_t *rows;
        int rc;

        if (!cli_parse_id(a->pos[1], &from) || !cli_parse_id(a->pos[2], &to))
                return CLI_USAGE;
        rc = cli_open(a->pos[0], CLI_OPEN_READ, &db, &c);
        if (rc != CLI_OK)
                return rc;
        /* The path's ENOTFOUND means "no path"; an unknown end deserves its own message. */
        if (sombra_node_get(c, from, &e) != SOMBRA_OK || sombra_node_get(c, to, &e) != SOMBRA_OK) {
                rc = cli_fail("node %" PRIu64 " or %" PRIu64 ": %s", from, to,
                              sombra_strerror(SOMBRA_ENOTFOUND));
        } else if ((rc = sombra_shortest_path(c, from, to, a->dir, &a->type, a->type != NULL, &ids,
                                              &n)) != SOMBRA_OK) {
                rc = rc == SOMBRA_ENOTFOUND
                         ? cli_fail("no path from %" PRIu64 " to %" PRIu64 " (%s)", from, to,
                                    dir_name(a->dir))
                         : cli_fail("path: %s", sombra_strerror(rc));
        } else {
                rows = json_array();
                for (size_t i = 0; rows != NULL && i < n; i++)
                        rows_add(&rows, json_pack("{s:I,s:I}", "step", (json_int_t)i, "node",
                                                  (json_int_t)ids[i]));
                rc = out_rows(rows, cols, 2, a->json);
        }
        return cli_close(db, c) == CLI_OK ? rc : CLI_FAIL;
}

/* ---- the command table ---- */

static const struct command commands[] = {
    {"stats",
     "sombra stats DB [--format table|json]\n"
     "  Counts, file and WAL size, page usage and page cache figures (of this open).\n",
     1, 1, table_opts, run_stats},
    {"verify",
     "sombra verify DB [--format table|json]\n"
     "  Checks the whole database; exit status 0 when healthy, 1 when not, with\n"
     "  the problem found on stderr (and in the JSON output).\n",
     1, 1, table_opts, run_verify},
    {"checkpoint",
     "sombra checkpoint DB\n"
     "  Writes everything in the WAL into the database file.\n",
     1, 1, plain_opts, run_checkpoint},
    {"backup",
     "sombra backup DB DEST [--compact]\n"
     "  Copies DB, as of one commit, to the new file DEST (which must not exist).\n"
     "  --compact: rebuilds every tree into full pages and leaves out the free\n"
     "  pages, so DEST is smaller (DB itself does not change).\n",
     2, 2, backup_opts, run_backup},
    {"import",
     "sombra import DB [--nodes FILE] [--edges FILE] [--format-in csv|jsonl]\n"
     "                 [--on-error abort|skip] [--batch N] [--no-compact]\n"
     "                 [--format table|json]\n"
     "  Loads nodes and edges from CSV (.csv) or JSON Lines (.jsonl) files; see\n"
     "  tools/README.md for the formats. FILE may be a pipe, or - for stdin (with\n"
     "  --format-in). Every row is checked before anything is written: bad rows\n"
     "  are reported as FILE:LINE: reason and abort the import (default; the\n"
     "  database is left as it was) or are skipped. --batch: operations per\n"
     "  transaction, 1 to 1000000 (default 10000). DB is created when missing,\n"
     "  and then compacted at the end (its trees rebuilt into full pages, its\n"
     "  free pages left out); --no-compact leaves it as the batches wrote it.\n",
     1, 1, import_opts, cli_import},
    {"export",
     "sombra export DB [--out DIR] [--format-out jsonl|csv] [--only nodes|edges]\n"
     "  Writes every node and edge, in the import formats: to DIR/nodes.EXT and\n"
     "  DIR/edges.EXT, or to stdout (nodes, then edges; two CSV tables are\n"
     "  separated by an empty line). One snapshot: concurrent writes are not seen.\n",
     1, 1, export_opts, cli_export},
    {"get",
     "sombra get DB ID [--edge] [--format table|json]\n"
     "  Prints node ID (or edge ID) with its labels and properties.\n",
     2, 2, get_opts, run_get},
    {"neighbors",
     "sombra neighbors DB ID [--type T] [--in|--out|--both] [--format table|json]\n"
     "  Lists the edges of node ID (default --out) and the nodes at their other end.\n",
     2, 2, walk_opts, run_neighbors},
    {"path",
     "sombra path DB FROM TO [--type T] [--in|--out|--both] [--format table|json]\n"
     "  A shortest path from FROM to TO following edges (default --out).\n",
     3, 3, walk_opts, run_path},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
        fputs("usage: sombra COMMAND [ARGS]   (sombra COMMAND --help says more)\n\n", f);
        /* The synopsis lines only: each usage's text up to its first description line. */
        for (size_t i = 0; i < NCOMMANDS; i++)
                fprintf(f, "  %.*s",
                        (int)(strstr(commands[i].usage, "\n  ") + 1 - commands[i].usage),
                        commands[i].usage);
        fputs("  sombra bench [sombra-bench options]\n", f);
}

/* Fills a from argv; CLI_OK to run, CLI_USAGE (said why), or -1 after --help. */
static int
parse(const struct command *cmd, int argc, char **argv, struct cli_args *a)
{
        uint64_t count;
        int opt;

        a->dir = SOMBRA_OUT;
        a->batch = 10000;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "", cmd->longs, NULL)) != -1) {
                switch (opt) {
                case 'h':
                        fputs(cmd->usage, stdout);
                        return -1;
                case 'f':
                        if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)
                                return cli_fail_as(CLI_USAGE, "--format: json or table, not '%s'",
                                                   optarg);
                        a->json = strcmp(optarg, "json") == 0;
                        break;
                case 'E':
                        a->edge = true;
                        break;
                case 'C':
                        a->compact = true;
                        break;
                case 't':
                        a->type = optarg;
                        break;
                case 'i':
                        a->dir = SOMBRA_IN;
                        break;
                case 'o':
                        a->dir = SOMBRA_OUT;
                        break;
                case 'b':
                        a->dir = SOMBRA_BOTH;
                        break;
                case 'n':
                        a->nodes = optarg;
                        break;
                case 'e':
                        a->edges = optarg;
                        break;
                case 'I':
                        a->format_in = optarg;
                        break;
                case 'O':
                        a->format_out = optarg;
                        break;
                case 'D':
                        a->out_dir = optarg;
                        break;
                case 'W':
                        a->only = optarg;
                        break;
                case 'x':
                        if (strcmp(optarg, "skip") != 0 && strcmp(optarg, "abort") != 0)
                                return cli_fail_as(CLI_USAGE, "--on-error: skip or abort, not '%s'",
                                                   optarg);
                        a->skip_bad = strcmp(optarg, "skip") == 0;
                        break;
                case 'N':
                        a->no_compact = true;
                        break;
                case 'B':
                        if (!cli_parse_count("--batch", optarg, 1, CLI_MAX_BATCH, &count))
                                return CLI_USAGE;
                        a->batch = (size_t)count;
                        break;
                default:
                        fputs(cmd->usage, stderr);
                        return CLI_USAGE;
                }
        }
        for (; optind < argc; optind++) {
                if (a->npos == 3)
                        break;
                a->pos[a->npos++] = argv[optind];
        }
        if (optind < argc || a->npos < cmd->min_pos || a->npos > cmd->max_pos) {
                cli_fail("%s: wrong number of arguments", cmd->name);
                fputs(cmd->usage, stderr);
                return CLI_USAGE;
        }
        return CLI_OK;
}

int
main(int argc, char **argv)
{
        struct cli_args a = {0};
        int rc;

        if (argc < 2) {
                usage(stderr);
                return CLI_USAGE;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return CLI_OK;
        }
        if (strcmp(argv[1], "bench") == 0)
                return sombra_bench_main(argc - 1, argv + 1);
        for (size_t i = 0; i < NCOMMANDS; i++) {
                if (strcmp(argv[1], commands[i].name) != 0)
                        continue;
                rc = parse(&commands[i], argc - 1, argv + 1, &a);
                if (rc != CLI_OK)
                        return rc < 0 ? CLI_OK : rc;
                return commands[i].run(&a);
        }
        cli_fail("unknown command '%s'", argv[1]);
        usage(stderr);
        return CLI_USAGE;
}
