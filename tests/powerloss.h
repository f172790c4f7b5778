/*
 * powerloss.h - a model of a power loss, for tests: what a disk may show of
 * the database file and its WAL after the power went out.
 *
 * Attached to a database's io_faults as its observer (io.h), the model keeps
 * the contents that every 4 KiB block had at its file's last good fdatasync,
 * the first time a write or a truncate touches the block after that sync. A
 * good fdatasync makes the file durable and forgets its blocks. At
 * powerloss_cut the power goes: from then on every write, sync and truncate
 * fails with EIO and touches nothing, so nothing the engine acknowledges
 * afterwards can be durable. powerloss_image then writes one file as a disk
 * may show it: each block written since the last sync is kept (it reached the
 * disk), dropped (the synced contents) or torn (its first sectors new, the
 * rest old), as the caller's fate function decides. Sectors (512 bytes) are
 * taken to be written whole, as disks promise.
 *
 * Files are told apart by io_file.kind (IO_FILE_DB, IO_FILE_WAL). A sync runs
 * under the fault lock with every write, so it covers exactly the writes that
 * came before it; the model does not see a write that overlaps a sync.
 */
#ifndef SOMBRA_TEST_POWERLOSS_H
#define SOMBRA_TEST_POWERLOSS_H

#include <stdint.h>

#include "io.h"

#define POWERLOSS_BLOCK  4096u
#define POWERLOSS_SECTOR 512u

enum powerloss_fate { POWERLOSS_KEEP, POWERLOSS_DROP, POWERLOSS_TEAR };

/*
 * What becomes of one unsynced block (its index in the file) of file kind;
 * for POWERLOSS_TEAR, *sectors (1 .. sectors per block - 1) is how many of its
 * first sectors hold the new contents.
 */
typedef enum powerloss_fate (*powerloss_fate_fn)(void *arg, uint32_t kind, uint64_t block,
                                                 uint32_t *sectors);

struct powerloss;

/* Attaches a new model to faults, which must outlive it. Asserts on failure. */
struct powerloss *powerloss_attach(struct io_faults *faults);
/* Detaches it and frees it. */
void powerloss_free(struct powerloss *pl);

/* The power goes now, between two calls of the engine. */
void powerloss_cut(struct powerloss *pl);

/* Blocks of file kind written since its last good sync. */
uint64_t powerloss_unsynced(struct powerloss *pl, uint32_t kind);

/*
 * Writes to dst what the file kind, now at src, may hold after the cut, with
 * fate deciding each unsynced block. Asserts on failure.
 */
void powerloss_image(struct powerloss *pl, uint32_t kind, const char *src, const char *dst,
                     powerloss_fate_fn fate, void *arg);

/* Fates: keep every block; drop every block; or each at random (struct powerloss_dice). */
enum powerloss_fate powerloss_keep_all(void *arg, uint32_t kind, uint64_t block, uint32_t *sectors);
enum powerloss_fate powerloss_drop_all(void *arg, uint32_t kind, uint64_t block, uint32_t *sectors);

struct powerloss_dice {
        uint64_t rng;      /* splitmix64 state (support_next_rand) */
        uint32_t keep_pct; /* chance that a block is kept, in percent */
        uint32_t tear_pct; /* chance that a block not kept is torn rather than dropped */
};
enum powerloss_fate powerloss_random(void *arg, uint32_t kind, uint64_t block, uint32_t *sectors);

#endif
