/*
 * fuzz_support.c - the fuzz targets' scratch files, template and final check.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_support.h"
#include "graph.h"

/* Process-wide by nature: libFuzzer calls the target again and again in one process. */
static char scratch[64];
static char db_path[96], wal_path[100];
static struct fuzz_bytes template_db, template_wal;

static void
die(const char *what)
{
        fprintf(stderr, "fuzz: %s\n", what);
        abort();
}

static void
scratch_remove(void)
{
        unlink(db_path);
        unlink(wal_path);
        rmdir(scratch);
}

static void
scratch_make(void)
{
        struct stat st;

        if (scratch[0] != '\0')
                return;
        /* Memory-backed when possible: every run writes and syncs two files. */
        snprintf(scratch, sizeof(scratch), "%s/sombra-fuzz-XXXXXX",
                 stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
        if (mkdtemp(scratch) == NULL)
                die("mkdtemp");
        snprintf(db_path, sizeof(db_path), "%s/f.sombra", scratch);
        snprintf(wal_path, sizeof(wal_path), "%s-wal", db_path);
        atexit(scratch_remove);
}

const char *
fuzz_db_path(void)
{
        scratch_make();
        return db_path;
}

const char *
fuzz_wal_path(void)
{
        scratch_make();
        return wal_path;
}

void
fuzz_write(const char *path, const void *data, size_t len)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0 || (len > 0 && write(fd, data, len) != (ssize_t)len) || close(fd) != 0)
                die("write");
}

void
fuzz_write_resealed(const char *path, const uint8_t *data, size_t len,
                    void (*reseal)(uint8_t *copy, size_t len))
{
        uint8_t *copy = malloc(len ? len : 1);

        if (copy == NULL)
                die("malloc");
        memcpy(copy, data, len);
        reseal(copy, len);
        fuzz_write(path, copy, len);
        free(copy);
}

static struct fuzz_bytes
file_read(const char *path)
{
        struct fuzz_bytes b = {NULL, 0};
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fstat(fd, &st) != 0)
                die("open template");
        b.len = (size_t)st.st_size;
        b.data = malloc(b.len ? b.len : 1);
        if (b.data == NULL || (b.len > 0 && read(fd, b.data, b.len) != (ssize_t)b.len))
                die("read template");
        close(fd);
        return b;
}

/* Node i of the template: every value type, two labels, an indexed key. */
static void
template_node(struct graph *g, int i, uint64_t *id)
{
        static const char *const labels[] = {"Person", "Fuzzed"};
        static const uint8_t blob[] = {0, 1, 2, 0xff};
        struct sombra_prop p[6] = {
            {"age", {.type = SOMBRA_INT, .u.i = 20 + i}},
            {"name", {.type = SOMBRA_STRING, .u.s = {"someone", 7}}},
            {"score", {.type = SOMBRA_DOUBLE, .u.d = 0.5 * i}},
            {"ok", {.type = SOMBRA_BOOL, .u.b = i % 2 == 0}},
            {"blob", {.type = SOMBRA_BYTES, .u.s = {(const char *)blob, sizeof(blob)}}},
            {"none", {.type = SOMBRA_NULL}},
        };

        if (graph_node_create(g, labels, 1 + (size_t)(i % 2), p, 6, id) != SOMBRA_OK)
                die("template node");
}

/* Session one: checkpointed. Session two: only in the WAL, with every kind of change. */
static void
template_sessions(void)
{
        struct sombra_value v = {.type = SOMBRA_INT, .u.i = 7};
        struct sombra_config cfg;
        struct graph *g;
        uint64_t ids[8], e;

        sombra_config_production(&cfg);
        cfg.page_size = 4096;
        unlink(db_path);
        unlink(wal_path);
        if (graph_open(db_path, &cfg, NULL, &g) != SOMBRA_OK || graph_begin(g) != SOMBRA_OK ||
            graph_index_create(g, "Person", "age") != SOMBRA_OK)
                die("template open");
        for (int i = 0; i < 8; i++)
                template_node(g, i, &ids[i]);
        for (int i = 0; i < 8; i++)
                if (graph_edge_create(g, ids[i], ids[(i + 1) % 8], "KNOWS", NULL, 0, NULL) !=
                    SOMBRA_OK)
                        die("template edge");
        if (graph_commit(g) != SOMBRA_OK || graph_close(g) != SOMBRA_OK)
                die("template commit");
        template_db = file_read(db_path);

        if (graph_open(db_path, &cfg, NULL, &g) != SOMBRA_OK || graph_begin(g) != SOMBRA_OK ||
            graph_edge_create(g, ids[0], ids[4], "LIKES", NULL, 0, &e) != SOMBRA_OK ||
            graph_node_set(g, ids[1], "age", &v) != SOMBRA_OK ||
            graph_node_unset(g, ids[2], "name") != SOMBRA_OK ||
            graph_node_label_add(g, ids[3], "Extra") != SOMBRA_OK || graph_commit(g) != SOMBRA_OK)
                die("template second session");
        if (graph_begin(g) != SOMBRA_OK || graph_edge_delete(g, e) != SOMBRA_OK ||
            graph_node_delete(g, ids[5]) != SOMBRA_OK ||
            graph_node_label_remove(g, ids[6], "Person") != SOMBRA_OK ||
            graph_commit(g) != SOMBRA_OK)
                die("template third transaction");
        template_wal = file_read(wal_path); /* before close checkpoints it away */
        if (graph_close(g) != SOMBRA_OK)
                die("template close");
}

void
fuzz_template(struct fuzz_bytes *db, struct fuzz_bytes *wal)
{
        scratch_make();
        if (template_db.data == NULL)
                template_sessions();
        *db = template_db;
        *wal = template_wal;
}

/* Reads everything a caller could ask for by id, up to what verify counted. */
static void
read_all(struct graph *g, uint64_t nodes, uint64_t edges)
{
        struct graph_reader *r = graph_writer_reader(g);
        struct graph_entity ent = {0};
        struct graph_adjvec adj = {0};
        uint64_t n, m;

        (void)graph_counts(r, &n, &m);
        /* Ids start at 1 and deleted ones leave gaps: look a little past the counts. */
        for (uint64_t id = 1; id <= nodes + 8 && id <= 256; id++) {
                (void)graph_node_get(r, id, &ent);
                (void)graph_neighbors(r, id, SOMBRA_BOTH, NULL, 0, &adj);
        }
        for (uint64_t id = 1; id <= edges + 8 && id <= 256; id++)
                (void)graph_edge_get(r, id, &ent);
        graph_entity_free(&ent);
        graph_adjvec_free(&adj);
}

void
fuzz_open_and_read(void)
{
        struct graph_verify_report report;
        struct sombra_config cfg;
        struct graph *g;

        sombra_config_production(&cfg);
        cfg.sync_mode = SOMBRA_SYNC_OFF;
        /* Off, so that damaged pages reach the structural checks instead of the checksum. */
        cfg.checksums = false;
        if (graph_open(db_path, &cfg, NULL, &g) != SOMBRA_OK)
                return;
        if (graph_verify(g, &report) == SOMBRA_OK)
                read_all(g, report.nodes, report.edges);
        else
                read_all(g, 16, 16);
        (void)graph_close(g);
}

int
fuzz_template_initialize(void)
{
        const char *dir = getenv("SOMBRA_FUZZ_SEEDS");
        struct fuzz_bytes db, wal;
        char path[4096];

        fuzz_template(&db, &wal);
        if (dir == NULL)
                return 0;
        snprintf(path, sizeof(path), "%s/db.seed", dir);
        fuzz_write(path, db.data, db.len);
        snprintf(path, sizeof(path), "%s/wal.seed", dir);
        fuzz_write(path, wal.data, wal.len);
        exit(0);
}
