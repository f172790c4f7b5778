/*
 * support.h - what the test files share: a temporary directory per test,
 * paths in it, byte-level access to the files there, a random number
 * generator, and the two steps most tests of the public API begin with.
 *
 * Every function asserts (with Criterion) instead of returning an error, so
 * a test that calls one reads as a list of steps. Files are named relative to
 * the test's directory ("db", "db-wal"); support_path gives the full path for
 * the code under test.
 */
#ifndef SOMBRA_TEST_SUPPORT_H
#define SOMBRA_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sombra.h"

/* Makes a new, empty directory /tmp/sombra-test-<what>-XXXXXX: the test's directory. */
void support_dir_make(const char *what);

/* Removes the test's directory and everything in it, if it was made. */
void support_dir_remove(void);

/* The test's directory. */
const char *support_dir(void);

/* dir/name, in one of a few static buffers used in turn (four may be held at once). */
const char *support_path(const char *name);

/* Whether dir/name exists. */
bool support_file_exists(const char *name);

/* Size in bytes of dir/name. */
uint64_t support_file_size(const char *name);

/* Reads len bytes at offset off of dir/name; all of them must be there. */
void support_read_at(const char *name, uint64_t off, void *buf, size_t len);

/* Writes len bytes at offset off of dir/name, which must exist. */
void support_write_at(const char *name, uint64_t off, const void *buf, size_t len);

/* The whole of dir/name in a malloc'd buffer (the caller frees it); its length in *len. */
uint8_t *support_read_file(const char *name, size_t *len);

/* Makes dir/name (replacing it if there is one) holding exactly data[0..len). */
void support_write_file(const char *name, const void *data, size_t len);

/* XORs the byte at offset off of dir/name with mask; a second call restores it. */
void support_flip_byte(const char *name, uint64_t off, uint8_t mask);

/* Cuts or extends dir/name to size bytes. */
void support_truncate(const char *name, uint64_t size);

/* Makes dir/to a copy of dir/from. */
void support_copy_file(const char *from, const char *to);

/* Removes dir/name if there is one. */
void support_remove(const char *name);

/* The next number of the splitmix64 sequence in *state: fast, and the same on every machine. */
uint64_t support_next_rand(uint64_t *state);

/* Closes *db, which must close cleanly, unless it is NULL; leaves *db NULL. */
void support_db_close(sombra_db **db);

/* A connection of db, waited for. */
sombra_conn *support_conn_acquire(sombra_db *db);

/* A new node with the one label given, made through c; its id. */
uint64_t support_node_make(sombra_conn *c, const char *label);

/* The integer property key of e, or -1 when it has none. */
int64_t support_prop_int(const struct sombra_entity *e, const char *key);

/*
 * Commits one transaction through c, reusing batch b: a node A and a node B,
 * both with props, and an edge A -PAIR-> B; a test can then see whether it
 * is whole. The status of the submit.
 */
int support_pair_commit(sombra_conn *c, sombra_batch *b, const struct sombra_prop *props,
                        size_t nprops);

/*
 * How many WAL notes the log of database `name` holds before its last
 * restart record (which voids them for recovery); asserts that no note
 * follows that restart.
 */
size_t support_notes_voided(const char *name);
/*
 * Forks a child that runs child(fd, arg), fd being the write end of a new
 * pipe; the child ends with _exit(2) should child return. Returns its pid
 * and puts the pipe's read end in *read_fd.
 */
pid_t support_fork_piped(void (*child)(int fd, const void *arg), const void *arg, int *read_fd);
/*
 * Where the log of database `name` ends: the offset past its last intact
 * record, which the file's size no longer tells (zeros follow, wal.h).
 */
uint64_t support_wal_end(const char *name);

/*
 * Rewrites both meta pages of database `name` (pages of page_size bytes)
 * as format `version` of the current layout (3 and later), checksum and
 * all, as a file of that format would have them. A file of a format before
 * 6 has no leaf of varint cells: made so when it has no leaf yet (a new
 * file), the library then gives it the fixed layout; it checks that.
 */
void support_meta_set_version(const char *name, uint32_t page_size, uint32_t version);

#endif
