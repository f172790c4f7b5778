/*
 * support.c - the temporary directory and file helpers of support.h.
 *
 * Criterion runs each test in its own process, so the directory is plain
 * static state: setup makes it, teardown removes it, and a forked child of a
 * test sees the same one. Paths are built in fixed buffers; a name too long
 * for them fails the test rather than being cut short.
 */
#define _GNU_SOURCE /* nftw */

#include "support.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "pager.h"
#include "wal.h"

#define PATH_BYTES 256

static char dir[PATH_BYTES]; /* empty until support_dir_make */

void
support_dir_make(const char *what)
{
        int n = snprintf(dir, sizeof(dir), "/tmp/sombra-test-%s-XXXXXX", what);

        cr_assert(lt(int, n, (int)sizeof(dir)));
        cr_assert(not(eq(ptr, mkdtemp(dir), NULL)), "mkdtemp: %s", strerror(errno));
}

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)st;
        (void)type;
        (void)ftw;
        return remove(path);
}

void
support_dir_remove(void)
{
        if (dir[0] == '\0')
                return;
        /* Depth first, so that each directory is empty when its turn comes. */
        cr_assert(eq(int, nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0), "removing %s: %s",
                  dir, strerror(errno));
        dir[0] = '\0';
}

const char *
support_dir(void)
{
        return dir;
}

static void
path_in(char *out, const char *name)
{
        int n = snprintf(out, PATH_BYTES, "%s/%s", dir, name);

        cr_assert(lt(int, n, PATH_BYTES), "path of %s is too long", name);
}

const char *
support_path(const char *name)
{
        static char paths[4][PATH_BYTES];
        static unsigned next;
        char *p = paths[next++ % 4];

        path_in(p, name);
        return p;
}

/* Opens dir/name with flags (and mode 0644 when creating); asserts that it opened. */
static int
open_in(const char *name, int flags)
{
        char path[PATH_BYTES];
        int fd;

        path_in(path, name);
        fd = open(path, flags, 0644);
        cr_assert(ge(int, fd, 0), "open %s: %s", path, strerror(errno));
        return fd;
}

bool
support_file_exists(const char *name)
{
        char path[PATH_BYTES];

        path_in(path, name);
        return access(path, F_OK) == 0;
}

uint64_t
support_file_size(const char *name)
{
        char path[PATH_BYTES];
        struct stat st;

        path_in(path, name);
        cr_assert(eq(int, stat(path, &st), 0), "stat %s: %s", path, strerror(errno));
        return (uint64_t)st.st_size;
}

void
support_read_at(const char *name, uint64_t off, void *buf, size_t len)
{
        int fd = open_in(name, O_RDONLY);

        cr_assert(eq(sz, (size_t)pread(fd, buf, len, (off_t)off), len),
                  "read %zu bytes of %s at %llu", len, name, (unsigned long long)off);
        close(fd);
}

void
support_write_at(const char *name, uint64_t off, const void *buf, size_t len)
{
        int fd = open_in(name, O_WRONLY);

        cr_assert(eq(sz, (size_t)pwrite(fd, buf, len, (off_t)off), len),
                  "write %zu bytes of %s at %llu", len, name, (unsigned long long)off);
        close(fd);
}

uint8_t *
support_read_file(const char *name, size_t *len)
{
        uint8_t *b;

        *len = (size_t)support_file_size(name);
        b = malloc(*len > 0 ? *len : 1);
        cr_assert(not(eq(ptr, b, NULL)));
        support_read_at(name, 0, b, *len);
        return b;
}

void
support_write_file(const char *name, const void *data, size_t len)
{
        int fd = open_in(name, O_WRONLY | O_CREAT | O_TRUNC);

        cr_assert(eq(sz, (size_t)pwrite(fd, data, len, 0), len), "write %s", name);
        close(fd);
}

void
support_flip_byte(const char *name, uint64_t off, uint8_t mask)
{
        uint8_t b;

        support_read_at(name, off, &b, 1);
        b ^= mask;
        support_write_at(name, off, &b, 1);
}

void
support_truncate(const char *name, uint64_t size)
{
        char path[PATH_BYTES];

        path_in(path, name);
        cr_assert(eq(int, truncate(path, (off_t)size), 0), "truncate %s to %llu: %s", path,
                  (unsigned long long)size, strerror(errno));
}

void
support_copy_file(const char *from, const char *to)
{
        uint8_t block[65536];
        ssize_t n;
        int in = open_in(from, O_RDONLY), out = open_in(to, O_WRONLY | O_CREAT | O_TRUNC);

        while ((n = read(in, block, sizeof(block))) > 0)
                cr_assert(eq(sz, (size_t)write(out, block, (size_t)n), (size_t)n), "write %s", to);
        cr_assert(eq(int, (int)n, 0), "read %s", from);
        close(in);
        close(out);
}

void
support_remove(const char *name)
{
        char path[PATH_BYTES];

        path_in(path, name);
        cr_assert(unlink(path) == 0 || errno == ENOENT, "unlink %s: %s", path, strerror(errno));
}

void
support_db_close(sombra_db **db)
{
        if (*db != NULL)
                cr_assert_eq(sombra_close(*db), SOMBRA_OK);
        *db = NULL;
}

sombra_conn *
support_conn_acquire(sombra_db *db)
{
        sombra_conn *c;

        cr_assert_eq(sombra_conn_acquire(db, &c), SOMBRA_OK);
        return c;
}

uint64_t
support_node_make(sombra_conn *c, const char *label)
{
        const char *labels[] = {label};
        uint64_t id;

        cr_assert_eq(sombra_node_create(c, labels, 1, NULL, 0, &id), SOMBRA_OK);
        return id;
}

uint64_t
support_next_rand(uint64_t *state)
{
        uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

int64_t
support_prop_int(const struct sombra_entity *e, const char *key)
{
        for (size_t i = 0; i < e->nprops; i++)
                if (strcmp(e->props[i].key, key) == 0 && e->props[i].value.type == SOMBRA_INT)
                        return e->props[i].value.u.i;
        return -1;
}

int
support_pair_commit(sombra_conn *c, sombra_batch *b, const struct sombra_prop *props, size_t nprops)
{
        const char *la[] = {"A"}, *lb[] = {"B"};
        int rc = sombra_batch_reset(b);

        if (rc == SOMBRA_OK)
                rc = sombra_batch_node_create(b, la, 1, props, nprops, NULL);
        if (rc == SOMBRA_OK)
                rc = sombra_batch_node_create(b, lb, 1, props, nprops, NULL);
        if (rc == SOMBRA_OK)
                rc = sombra_batch_edge_create(b, SOMBRA_BATCH_REF(0), SOMBRA_BATCH_REF(1), "PAIR",
                                              NULL, 0, NULL);
        return rc == SOMBRA_OK ? sombra_batch_submit(c, b) : rc;
}

/* Counts notes in n[0], and moves them to n[1] at each restart record. */
static int
count_notes(void *arg, const struct wal_record *r)
{
        size_t *n = arg;

        if (r->type == WAL_REC_NOTE)
                n[0]++;
        if (r->type == WAL_REC_RESTART) {
                n[1] += n[0];
                n[0] = 0;
        }
        return SOMBRA_OK;
}

/* Opens the log of database `name` as its owner would, and reads it through fn. */
static void
wal_read_all(const char *name, struct wal *w, int (*fn)(void *, const struct wal_record *),
             void *arg)
{
        char wal_name[256];
        uint8_t meta[200];
        uint64_t applied;

        snprintf(wal_name, sizeof(wal_name), "%s-wal", name);
        support_read_at(name, 0, meta, sizeof(meta)); /* the database id is at byte 160 */
        cr_assert(
            eq(int, wal_open(w, support_path(wal_name), get_be64(meta + 160), NULL), SOMBRA_OK));
        cr_assert(eq(int, wal_replay(w, NULL, 0, fn, arg, &applied), SOMBRA_OK));
}

size_t
support_notes_voided(const char *name)
{
        size_t n[2] = {0, 0};
        struct wal w;

        wal_read_all(name, &w, count_notes, n);
        wal_close(&w);
        cr_assert(eq(sz, n[0], 0), "notes after the last restart");
        return n[1];
}

static int
take_nothing(void *arg, const struct wal_record *r)
{
        (void)arg;
        (void)r;
        return SOMBRA_OK;
}

uint64_t
support_wal_end(const char *name)
{
        struct wal w;
        uint64_t end;

        wal_read_all(name, &w, take_nothing, NULL);
        end = w.end;
        wal_close(&w);
        return end;
}

void
support_meta_set_version(const char *name, uint32_t page_size, uint32_t version)
{
        struct stat st;
        uint8_t *d = malloc(page_size);

        cr_assert(not(eq(ptr, d, NULL)));
        cr_assert(eq(int, stat(support_path(name), &st), 0));
        for (uint64_t pgno = 2; version < 6 && pgno < (uint64_t)st.st_size / page_size; pgno++) {
                support_read_at(name, pgno * page_size, d, page_size);
                cr_assert(d[0] != PAGE_LEAF || d[1] == PAGE_CELLS_FIXED,
                          "page %" PRIu64 ": a leaf of varint cells in a file of format %u", pgno,
                          version);
        }
        free(d);
        for (uint64_t slot = 0; slot < 2; slot++) {
                uint8_t b[200];

                support_read_at(name, slot * page_size, b, sizeof(b));
                put_be32(b + 8, version);
                put_be64(b + 192, XXH3_64bits(b, 192)); /* the checksum covers bytes 0..192 */
                support_write_at(name, slot * page_size, b, sizeof(b));
        }
}

pid_t
support_fork_piped(void (*child)(int fd, const void *arg), const void *arg, int *read_fd)
{
        int fds[2];
        pid_t pid;

        cr_assert_eq(pipe(fds), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(fds[0]);
                child(fds[1], arg);
                _exit(2);
        }
        close(fds[1]);
        *read_fd = fds[0];
        return pid;
}
