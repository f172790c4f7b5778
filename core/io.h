/*
 * io.h - the one door between the storage engine and the operating system.
 *
 * Every read, write, sync, resize and lock of the database file and the WAL
 * goes through these functions, so that a test can make any of them fail (the
 * fault hook below) and the rest of the engine sees exactly what a failing
 * disk would show it.
 */
#ifndef SOMBRA_IO_H
#define SOMBRA_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The kinds of call a fault can be injected into. */
enum io_op { IO_OP_READ, IO_OP_WRITE, IO_OP_SYNC, IO_OP_TRUNCATE, IO_OP_COUNT };

/* A byte range [lo, hi) of a file; empty when lo == hi. */
struct io_extent {
        uint64_t lo, hi;
};

struct io_file;

/*
 * A test's view of every change to the files (tests/powerloss.c models a
 * power loss with it). `before` is called ahead of each write (off, len),
 * sync and truncate (off = the new length) of a file; a non-zero errno
 * fails the call, which then touches nothing. `synced` follows each sync
 * that succeeded. The call, `before` and `synced` run under the fault lock,
 * so the observer sees the calls of every thread one at a time, each whole.
 */
struct io_observer {
        int (*before)(void *arg, struct io_file *f, enum io_op op, uint64_t off, uint64_t len);
        void (*synced)(void *arg, struct io_file *f);
        void *arg;
};

/*
 * Fault injection, for tests. When `countdown` reaches zero on a call of a kind
 * whose bit is set in `ops`, that call fails with `err` (EIO, ENOSPC, ...)
 * without touching the file; with `short_write` set, a failing write instead
 * writes half of its bytes and then fails. `sticky` keeps failing every later
 * matching call. With `drop_unsynced`, a failing sync of the WAL also zeroes
 * every byte written to it since the last sync that succeeded, as a disk that
 * lost its volatile cache would: a commit acknowledged without a good sync
 * then vanishes, and a test can see it. (The WAL is written in order, so one
 * extent is exactly what was written; the database file is not, and is never
 * dropped.) One fault state may be shared by several files of a database.
 *
 * The test arms it before the calls it targets and reads `fired` after they
 * are done; in between, the engine's threads (writer, committer) share it
 * under `lock`.
 */
struct io_faults {
        uint32_t ops;      /* bit (1u << enum io_op) per kind of call */
        int64_t countdown; /* matching calls to let through before failing */
        int err;           /* errno to fail with */
        bool short_write;
        bool sticky;
        bool drop_unsynced;
        uint32_t files; /* bit per io_file.kind to target; 0 targets every file */
        uint64_t fired; /* how many calls were failed */
        const struct io_observer *observer; /* may be NULL */
        /* io.c's own: */
        uint32_t lock;                /* a spin lock over this struct; zero is unlocked */
        struct io_extent wal_pending; /* written to the WAL since the last good sync */
};

/* The fault state's lock, for a test that must act between two calls of the engine. */
void io_faults_lock(struct io_faults *faults);
void io_faults_unlock(struct io_faults *faults);

struct io_file {
        int fd;                   /* -1 when closed, and for an empty private file */
        uint32_t kind;            /* the owner's label for it (IO_FILE_*), for io_faults.files */
        struct io_faults *faults; /* NULL outside fault tests */
        /* Private mode only (io_open_private); NULL and zero otherwise. */
        uint8_t *priv;      /* the copy-on-write map */
        uint64_t priv_cap;  /* bytes of address space it spans */
        uint64_t priv_size; /* the file's length as this handle sees it (__atomic) */
};

#define IO_FILE_DB   1u /* the database file */
#define IO_FILE_WAL  2u /* the write-ahead log */
#define IO_FILE_DIR  4u /* the directory holding them (io_sync_dir_of) */
#define IO_FILE_COPY 8u /* a backup being written (sombra_backup, sombra_backup_compact) */

/*
 * Opens (creating with mode 0644 when `create`) path for reading and writing.
 * Returns SOMBRA_OK, SOMBRA_EPERM (no permission / read-only file system),
 * SOMBRA_ENOTFOUND (missing and !create), SOMBRA_EINVAL (a directory) or
 * SOMBRA_EIO.
 */
int io_open(struct io_file *f, const char *path, bool create);
void io_close(struct io_file *f);
/*
 * Opens a second open file description of f's file (not private), unlocked,
 * through /proc/self/fd: the same inode whatever its name is now. For a
 * thread whose syncs must not take a write-back error from f's: the kernel
 * reports such an error once to each description that syncs (Linux 4.13 on). The errors of
 * io_open (SOMBRA_ENOTFOUND without /proc); SOMBRA_EINVAL for a private f.
 */
int io_open_twin(const struct io_file *f, struct io_file *twin);
/* Whether f is open (either mode). */
bool io_is_open(const struct io_file *f);

/*
 * Private mode, for a read-only open: path is opened read-only and mapped
 * copy-on-write into `reserve` bytes of address space (MAP_NORESERVE). Every
 * call below then works on that map: a write changes this process's memory
 * only, a sync does nothing, a truncate only sets the length it reports, and
 * nothing ever reaches the file, whatever the engine does with it. Parts not
 * written show the file as it is now, not as it was at open: the caller must
 * know that what it reads there does not change (store.c's reader locks), or
 * check it (the WAL's checksums). A file larger than `reserve` is seen cut at
 * it. With `missing_empty`, a missing file gives an empty private one (fd -1);
 * otherwise SOMBRA_ENOTFOUND. Also the errors of io_open, and SOMBRA_ENOMEM.
 */
int io_open_private(struct io_file *f, const char *path, uint64_t reserve, bool missing_empty);
/*
 * The same in two steps, for a caller that must read the file before it
 * fixes the length the map shows: io_open_readonly opens path read-only
 * (writes then fail), io_make_private maps it as it is now.
 */
int io_open_readonly(struct io_file *f, const char *path);
int io_make_private(struct io_file *f, uint64_t reserve);

/*
 * Byte-range locks that belong to the open file description (Linux OFD
 * locks: like flock, and unlike fcntl's classic locks, they are not dropped
 * when another descriptor of the file closes, and two opens in one process
 * see each other's). They lock offsets, not bytes of data: an offset past the
 * end of the file is fine, and nothing is read or written. Independent of
 * io_lock's flock. io_range_share takes a shared lock on the byte at off,
 * io_range_unshare drops it; io_range_held tells whether another open file
 * description holds any lock on a byte of [lo, hi). SOMBRA_EIO, SOMBRA_EINVAL.
 */
int io_range_share(struct io_file *f, uint64_t off);
void io_range_unshare(struct io_file *f, uint64_t off);
int io_range_held(struct io_file *f, uint64_t lo, uint64_t hi, bool *held);

/*
 * Takes an exclusive advisory lock (flock, non-blocking) on the file.
 * SOMBRA_ELOCKED when another open file description holds it.
 */
int io_lock(struct io_file *f);

/* Reads exactly len bytes at off. Reading past the end is SOMBRA_ECORRUPT. */
int io_read(struct io_file *f, void *buf, size_t len, uint64_t off);
/*
 * Writes n blocks of len bytes each to [off, off + n * len), in that order,
 * retrying short writes: one pwritev for many pages instead of a pwrite
 * each (a system call costs more than copying a page on a virtual machine).
 * One call for the fault injection and the observer; an injected short
 * write writes the first half of the bytes. SOMBRA_ENOSPC or SOMBRA_EIO;
 * SOMBRA_EINVAL for a range past off_t.
 */
int io_write_blocks(struct io_file *f, const void *const *blocks, size_t n, size_t len,
                    uint64_t off);
/* io_write_blocks of one block: exactly len bytes at off. */
int io_write(struct io_file *f, const void *buf, size_t len, uint64_t off);
/*
 * Zeros over [off, off + len), len a multiple of IO_ZERO_BLOCK: one
 * io_write_blocks call, so pwritev's of IO_ZERO_BLOCK-sized pieces.
 * SOMBRA_EINVAL for another len, SOMBRA_ENOMEM, and as io_write_blocks.
 */
#define IO_ZERO_BLOCK ((size_t)8 << 10)
int io_write_zeros(struct io_file *f, uint64_t off, uint64_t len);
/* fdatasync. SOMBRA_EIO on failure. */
int io_sync(struct io_file *f);
/*
 * fsyncs the directory holding path: a new file's entry is durable only
 * then. SOMBRA_EIO. faults (may be NULL) sees it as a sync of a file of kind
 * IO_FILE_DIR.
 */
int io_sync_dir_of(const char *path, struct io_faults *faults);
/* ftruncate to len bytes. */
int io_truncate(struct io_file *f, uint64_t len);
/* Current size in bytes. */
int io_size(struct io_file *f, uint64_t *size);

/*
 * What names the data the page cache holds for this file in this boot of
 * the kernel: a hash of the kernel's boot id, the file's device number, and
 * a hash of its inode number and the inode's generation. The generation is
 * what tells a file from the one that had its number before: ext4 gives a
 * new file the number of the one just deleted, with a new random
 * generation. tmpfs keeps no generation but does not hand numbers out
 * again. SOMBRA_EIO when the boot id cannot be read (no /proc), or on any
 * other file system without generations (FS_IOC_GETVERSION).
 */
struct io_identity {
        uint64_t boot, dev, file;
};
int io_identity(const struct io_file *f, struct io_identity *out);

/* Maps an errno to a status code (ENOSPC -> SOMBRA_ENOSPC, ...). */
int io_status_from_errno(int err);

#endif
