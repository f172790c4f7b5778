/*
 * fuzz_support.h - what the libFuzzer targets share: a scratch directory in
 * memory, a small database made once per process to start from, and the
 * check every target ends with (open, verify, read, close).
 *
 * A target that damages a file also reseals the checksums the damage broke
 * (fuzz_wal the WAL's, fuzz_open the meta pages'), so that the fuzzer gets
 * past them to the parsers behind: a checksum alone turns almost every
 * mutation into one early ECORRUPT.
 */
#ifndef SOMBRA_FUZZ_SUPPORT_H
#define SOMBRA_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

struct fuzz_bytes {
        uint8_t *data;
        size_t len;
};

/*
 * The template, made at the first call: `db` is a checkpointed database
 * file (4096-byte pages) and `wal` the WAL of the transactions committed on
 * it afterwards, which replays onto it. Aborts on failure: a fuzzer that
 * cannot make its template has nothing to do.
 */
void fuzz_template(struct fuzz_bytes *db, struct fuzz_bytes *wal);

/* The scratch database path (in /dev/shm when it exists) and its WAL's. */
const char *fuzz_db_path(void);
const char *fuzz_wal_path(void);

/* Replaces path with exactly data[0..len). Aborts on failure. */
void fuzz_write(const char *path, const void *data, size_t len);
/* The same, after reseal(copy, len) has mended the checksums of a copy of data. */
void fuzz_write_resealed(const char *path, const uint8_t *data, size_t len,
                         void (*reseal)(uint8_t *copy, size_t len));

/*
 * Opens the scratch database, verifies it, reads what verify found (each
 * node, its neighbours, each edge), and closes it. Every status is
 * acceptable; what the fuzzer hunts is a crash, a sanitizer report, a leak
 * or a hang.
 */
void fuzz_open_and_read(void);

/*
 * LLVMFuzzerInitialize of the targets that start from the template: makes
 * it, or, when SOMBRA_FUZZ_SEEDS names a directory, writes it there as seed
 * inputs (db.seed and wal.seed) and exits. Returns 0.
 */
int fuzz_template_initialize(void);

#endif
