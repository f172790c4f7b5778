/*
 * io.c - file access for the database file and the WAL.
 *
 * Design
 *   Every function is a thin, complete wrapper around one system call: reads
 *   and writes loop until all bytes are transferred (pread and pwrite may
 *   return early, and any blocking call may be interrupted by a signal), and
 *   every failure is turned into a status code by io_status_from_errno so
 *   that the engine never looks at errno.
 *
 *   Files are opened with O_CLOEXEC so that a program that forks and execs
 *   while a database is open does not hand the descriptor, and with it the
 *   flock, to the child. Only regular files are accepted: the engine relies
 *   on pread past the end returning 0, on ftruncate and on fdatasync, none of
 *   which mean the same thing on a directory, a FIFO or a device.
 *
 *   Locking uses flock, which belongs to the open file description: two
 *   io_open calls on the same path, even in one process, exclude each other,
 *   and closing the descriptor releases the lock. (fcntl locks would be
 *   dropped by closing any descriptor of the file in the process.)
 *
 * Private mode
 *   A read-only open must not change a byte of either file, yet the engine
 *   replays the WAL, checkpoints for a backup and may write a restart record,
 *   all through these functions. So rather than teach every caller to skip
 *   its writes, a private io_file takes them all: the file is mapped
 *   MAP_PRIVATE over a reserved anonymous region, and reads, writes,
 *   truncates and sizes work on the map, whose written pages the kernel
 *   copies for this process alone. Faults do not apply to it.
 *
 * Fault injection
 *   When f->faults is set, each read, write, sync and truncate first asks
 *   fault_fire whether it must fail. The decision is made once per call, not
 *   once per system call inside the retry loops, so a test's countdown counts
 *   the calls the engine makes. A failing call touches nothing, except a short
 *   write, which writes the first half of its bytes to model a torn write,
 *   and a sync with drop_unsynced, which zeroes what it failed to make durable.
 *   A test's observer (io.h) is asked before every write, sync and truncate
 *   that the faults let through, and the call then runs under the fault lock.
 *
 * Threads
 *   Any thread may call these functions on a file; pread and pwrite carry
 *   their own offsets so concurrent calls do not race on a file position. The
 *   fault state is shared by the engine's threads under its spin lock; the
 *   lock is taken only when a test has set f->faults.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pread, pwrite, fdatasync, flock; F_OFD_SETLK is Linux's */
#endif

#include "io.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "sombra.h"
#include "hash.h"

/* The largest offset off_t can hold; offsets past it are rejected, not wrapped. */
#define IO_OFF_MAX ((uint64_t)INT64_MAX)

/*
 * Blocks one pwritev takes in io_write_blocks (a stack array of iovecs): 8
 * pages of 8 KiB, 64 KiB a call. The page cache sizes a folio by the write
 * that creates it, and on Linux 6.18's ext4 every later 8 KiB write into a
 * large folio walks all of its block buffers: where 512 KiB calls had made
 * the folios, a page overwrite cost 4.7-6.1 us against 3.2-3.4 us, and the
 * engine overwrites (reuses) pages far more often than it extends the file.
 * A first write costs 1.65 us a page at 64 KiB a call against 1.2 at 512 KiB.
 */
#define IO_GATHER 8

int
io_status_from_errno(int err)
{
        switch (err) {
        case EACCES:
        case EROFS:
        case EPERM:
                return SOMBRA_EPERM;
        case ENOENT:
                return SOMBRA_ENOTFOUND;
        case ENOSPC:
#ifdef EDQUOT
        case EDQUOT:
#endif
                return SOMBRA_ENOSPC;
        default:
                return SOMBRA_EIO;
        }
}

void
io_faults_lock(struct io_faults *faults)
{
        while (__atomic_exchange_n(&faults->lock, 1, __ATOMIC_ACQUIRE) != 0)
                sched_yield();
}

void
io_faults_unlock(struct io_faults *faults)
{
        __atomic_store_n(&faults->lock, 0, __ATOMIC_RELEASE);
}

/*
 * Returns 0 when a call of kind op may proceed, or the errno it must fail
 * with. Called once at the start of every faultable call.
 */
static int
fault_fire(struct io_file *f, enum io_op op)
{
        struct io_faults *faults = f->faults;
        int err = 0;

        if (faults == NULL)
                return 0;
        io_faults_lock(faults);
        if (!(faults->ops & (1u << op)) || (faults->files != 0 && !(faults->files & f->kind))) {
                /* not a target */
        } else if (faults->countdown > 0) {
                faults->countdown--;
        } else {
                faults->fired++;
                if (!faults->sticky)
                        faults->ops = 0;
                /* An armed fault with no errno still has to fail. */
                err = faults->err != 0 ? faults->err : EIO;
        }
        io_faults_unlock(faults);
        return err;
}

static bool
range_ok(size_t len, uint64_t off)
{
        return off <= IO_OFF_MAX && (uint64_t)len <= IO_OFF_MAX - off;
}

/* Opens path with flags and checks that it is a regular file. */
static int
open_regular(const char *path, int flags, int *out)
{
        struct stat st;
        int fd, rc;

        if (path == NULL || path[0] == '\0')
                return SOMBRA_EINVAL;
        do {
                fd = open(path, flags | O_CLOEXEC, 0644);
        } while (fd < 0 && errno == EINTR);
        if (fd < 0)
                return errno == EISDIR ? SOMBRA_EINVAL : io_status_from_errno(errno);

        if (fstat(fd, &st) != 0) {
                rc = io_status_from_errno(errno);
                goto label_fail;
        }
        if (!S_ISREG(st.st_mode)) {
                rc = SOMBRA_EINVAL;
                goto label_fail;
        }
        *out = fd;
        return SOMBRA_OK;

label_fail:
        close(fd);
        return rc;
}

int
io_open(struct io_file *f, const char *path, bool create)
{
        int fd, rc;

        assert(f != NULL);
        rc = open_regular(path, O_RDWR | (create ? O_CREAT : 0), &fd);
        if (rc != SOMBRA_OK)
                return rc;
        f->fd = fd;
        f->faults = NULL;
        f->priv = NULL;
        f->priv_cap = f->priv_size = 0;
        return SOMBRA_OK;
}

int
io_open_twin(const struct io_file *f, struct io_file *twin)
{
        char proc[64];
        int rc;

        if (f->fd < 0 || f->priv != NULL)
                return SOMBRA_EINVAL;
        /* /proc's link names f's inode itself, whatever the file is called now. */
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
        rc = io_open(twin, proc, false);
        if (rc != SOMBRA_OK)
                return rc;
        twin->kind = f->kind;
        twin->faults = f->faults;
        return SOMBRA_OK;
}

/* The reserved region, with the file's first bytes mapped over its start. */
static int
private_map(struct io_file *f, uint64_t reserve, uint64_t size)
{
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        uint64_t shown = size < reserve ? size : reserve;
        uint8_t *m;

        m = mmap(NULL, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
        if (m == MAP_FAILED)
                return SOMBRA_ENOMEM;
        /* The tail of the last page past the end of the file reads as zeros. */
        if (shown > 0 && mmap(m, (shown + page - 1) / page * page, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_FIXED, f->fd, 0) == MAP_FAILED) {
                munmap(m, reserve);
                return SOMBRA_ENOMEM;
        }
        f->priv = m;
        f->priv_cap = reserve;
        f->priv_size = shown;
        return SOMBRA_OK;
}

int
io_open_readonly(struct io_file *f, const char *path)
{
        assert(f != NULL);
        memset(f, 0, sizeof(*f));
        f->fd = -1;
        return open_regular(path, O_RDONLY, &f->fd);
}

int
io_make_private(struct io_file *f, uint64_t reserve)
{
        struct stat st;

        if (reserve == 0 || reserve > IO_OFF_MAX || f->priv != NULL)
                return SOMBRA_EINVAL;
        if (f->fd < 0)
                return private_map(f, reserve, 0);
        if (fstat(f->fd, &st) != 0)
                return io_status_from_errno(errno);
        return private_map(f, reserve, (uint64_t)st.st_size);
}

int
io_open_private(struct io_file *f, const char *path, uint64_t reserve, bool missing_empty)
{
        int rc = io_open_readonly(f, path);

        if (rc == SOMBRA_ENOTFOUND && missing_empty)
                rc = SOMBRA_OK; /* fd -1: an empty file */
        if (rc == SOMBRA_OK)
                rc = io_make_private(f, reserve);
        if (rc != SOMBRA_OK)
                io_close(f);
        return rc;
}

bool
io_is_open(const struct io_file *f)
{
        return f->fd >= 0 || f->priv != NULL;
}

static uint64_t
private_size(const struct io_file *f)
{
        return __atomic_load_n(&f->priv_size, __ATOMIC_ACQUIRE);
}

static int
private_read(struct io_file *f, void *buf, size_t len, uint64_t off)
{
        if (off > private_size(f) || len > private_size(f) - off)
                return SOMBRA_ECORRUPT; /* as pread's short read */
        memcpy(buf, f->priv + off, len);
        return SOMBRA_OK;
}

static int
private_resize(struct io_file *f, uint64_t len)
{
        uint64_t size = private_size(f);

        if (len > f->priv_cap)
                return SOMBRA_ENOSPC;
        /* A file that shrinks and grows again reads zeros there, as ftruncate leaves it. */
        if (len > size)
                memset(f->priv + size, 0, len - size);
        __atomic_store_n(&f->priv_size, len, __ATOMIC_RELEASE);
        return SOMBRA_OK;
}

static int
private_write(struct io_file *f, const void *buf, size_t len, uint64_t off)
{
        int rc = SOMBRA_OK;

        if (off > f->priv_cap || len > f->priv_cap - off)
                return SOMBRA_ENOSPC;
        if (off + len > private_size(f))
                rc = private_resize(f, off + len);
        if (rc == SOMBRA_OK)
                memcpy(f->priv + off, buf, len);
        return rc;
}

void
io_close(struct io_file *f)
{
        if (f == NULL || !io_is_open(f))
                return;
        /*
         * close errors are not reported: durability comes from io_sync, and
         * after close the descriptor is gone whatever close returned, so
         * retrying on EINTR could close a descriptor another thread just got.
         */
        if (f->priv != NULL)
                munmap(f->priv, f->priv_cap);
        f->priv = NULL;
        if (f->fd >= 0)
                close(f->fd);
        f->fd = -1;
}

int
io_lock(struct io_file *f)
{
        int rc;

        do {
                rc = flock(f->fd, LOCK_EX | LOCK_NB);
        } while (rc != 0 && errno == EINTR);
        if (rc == 0)
                return SOMBRA_OK;
        return errno == EWOULDBLOCK ? SOMBRA_ELOCKED : io_status_from_errno(errno);
}

int
io_read(struct io_file *f, void *buf, size_t len, uint64_t off)
{
        uint8_t *p = buf;
        size_t done = 0;
        int err;

        if (!range_ok(len, off))
                return SOMBRA_EINVAL;
        if (f->priv != NULL)
                return private_read(f, buf, len, off);
        err = fault_fire(f, IO_OP_READ);
        if (err != 0)
                return io_status_from_errno(err);

        while (done < len) {
                ssize_t n = pread(f->fd, p + done, len - done, (off_t)(off + done));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return io_status_from_errno(errno);
                }
                /* The engine only reads what it wrote: a short file is a damaged one. */
                if (n == 0)
                        return SOMBRA_ECORRUPT;
                done += (size_t)n;
        }
        return SOMBRA_OK;
}

/* Writes all len bytes at off, with no fault check. */
static int
write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
        size_t done = 0;

        while (done < len) {
                ssize_t n = pwrite(fd, p + done, len - done, (off_t)(off + done));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return io_status_from_errno(errno);
                }
                /* pwrite of a non-zero length returns 0 only when nothing can be written. */
                if (n == 0)
                        return SOMBRA_EIO;
                done += (size_t)n;
        }
        return SOMBRA_OK;
}

/* Grows e to cover [off, off + len). */
static void
extent_add(struct io_extent *e, uint64_t off, uint64_t len)
{
        if (len == 0)
                return;
        if (e->lo == e->hi) {
                *e = (struct io_extent){off, off + len};
                return;
        }
        e->lo = off < e->lo ? off : e->lo;
        e->hi = off + len > e->hi ? off + len : e->hi;
}

/* Notes a write to the WAL that no sync has covered yet (fault tests only). */
static void
pending_note(struct io_file *f, uint64_t off, uint64_t len)
{
        if (f->faults == NULL || f->kind != IO_FILE_WAL)
                return;
        io_faults_lock(f->faults);
        extent_add(&f->faults->wal_pending, off, len);
        io_faults_unlock(f->faults);
}

/*
 * What a sync of the WAL is about to cover: the pending extent, handed to
 * the sync and cleared (writes that land during the sync start a new one).
 */
static struct io_extent
pending_take(struct io_file *f)
{
        struct io_extent e = {0, 0};

        if (f->faults == NULL || f->kind != IO_FILE_WAL)
                return e;
        io_faults_lock(f->faults);
        e = f->faults->wal_pending;
        f->faults->wal_pending = (struct io_extent){0, 0};
        io_faults_unlock(f->faults);
        return e;
}

/*
 * A sync of the WAL failed: what it was to cover is pending again, and with
 * drop_unsynced everything pending is lost - zeroed in the file.
 */
static void
pending_fail(struct io_file *f, struct io_extent taken)
{
        static const uint8_t zeros[4096];
        struct io_extent e;

        if (f->faults == NULL || f->kind != IO_FILE_WAL)
                return;
        io_faults_lock(f->faults);
        extent_add(&f->faults->wal_pending, taken.lo, taken.hi - taken.lo);
        e = f->faults->wal_pending;
        if (f->faults->drop_unsynced)
                f->faults->wal_pending = (struct io_extent){0, 0};
        else
                e.hi = e.lo;
        io_faults_unlock(f->faults);
        for (uint64_t at = e.lo; at < e.hi; at += sizeof(zeros)) {
                uint64_t n = e.hi - at < sizeof(zeros) ? e.hi - at : sizeof(zeros);
                (void)write_all(f->fd, zeros, (size_t)n, at); /* best effort: a test's model */
        }
}

/*
 * With an observer (io.h), takes the fault lock and asks it about the call:
 * 0 lets the call go on with the lock held until observed_end.
 */
static int
observed(struct io_file *f, enum io_op op, uint64_t off, uint64_t len)
{
        const struct io_observer *o = f->faults != NULL ? f->faults->observer : NULL;
        int err;

        if (o == NULL)
                return 0;
        io_faults_lock(f->faults);
        err = o->before(o->arg, f, op, off, len);
        if (err != 0)
                io_faults_unlock(f->faults);
        return err;
}

static void
observed_end(struct io_file *f, bool synced)
{
        const struct io_observer *o = f->faults != NULL ? f->faults->observer : NULL;

        if (o == NULL)
                return;
        if (synced)
                o->synced(o->arg, f);
        io_faults_unlock(f->faults);
}

/*
 * Writes n blocks of len bytes, one after another from off, with no fault
 * check: pwritev, IO_GATHER blocks a call, and a short one finished block
 * by block with write_all.
 */
static int
write_blocks_all(int fd, const void *const *blocks, size_t n, size_t len, uint64_t off)
{
        struct iovec iov[IO_GATHER];

        if (len == 0)
                return SOMBRA_OK;
        while (n > 0) {
                int cnt = n < IO_GATHER ? (int)n : IO_GATHER;
                size_t want = (size_t)cnt * len, done, k;
                ssize_t got;

                for (int i = 0; i < cnt; i++)
                        iov[i] = (struct iovec){(void *)blocks[i], len};
                got = pwritev(fd, iov, cnt, (off_t)off);
                if (got < 0 && errno != EINTR)
                        return io_status_from_errno(errno);
                done = got > 0 ? (size_t)got : 0;
                for (k = done / len; done < want; k++, done = k * len) {
                        int rc = write_all(fd, (const uint8_t *)blocks[k] + done % len,
                                           len - done % len, off + done);
                        if (rc != SOMBRA_OK)
                                return rc;
                }
                blocks += cnt;
                n -= (size_t)cnt;
                off += want;
        }
        return SOMBRA_OK;
}

int
io_write_blocks(struct io_file *f, const void *const *blocks, size_t n, size_t len, uint64_t off)
{
        size_t total = n * len;
        int err, rc = SOMBRA_OK;

        if (len != 0 && total / len != n)
                return SOMBRA_EINVAL;
        if (!range_ok(total, off))
                return SOMBRA_EINVAL;
        if (f->priv != NULL) {
                for (size_t i = 0; i < n && rc == SOMBRA_OK; i++)
                        rc = private_write(f, blocks[i], len, off + i * len);
                return rc;
        }
        err = fault_fire(f, IO_OP_WRITE);
        if (err == 0) {
                err = observed(f, IO_OP_WRITE, off, total);
                if (err != 0)
                        return io_status_from_errno(err);
                rc = write_blocks_all(f->fd, blocks, n, len, off);
                observed_end(f, false);
                pending_note(f, off, total);
                return rc;
        }

        if (f->faults->short_write) { /* a torn write: the first half of its bytes */
                size_t half = total / 2;
                for (size_t i = 0; i * len < half; i++) {
                        size_t part = half - i * len < len ? half - i * len : len;
                        rc = write_all(f->fd, blocks[i], part, off + i * len);
                        if (rc != SOMBRA_OK)
                                return rc;
                }
                pending_note(f, off, half);
        }
        return io_status_from_errno(err);
}

int
io_write(struct io_file *f, const void *buf, size_t len, uint64_t off)
{
        return io_write_blocks(f, &buf, 1, len, off);
}

int
io_write_zeros(struct io_file *f, uint64_t off, uint64_t len)
{
        static const uint8_t zeros[IO_ZERO_BLOCK];
        const void **blocks;
        size_t n = (size_t)(len / IO_ZERO_BLOCK);
        int rc;

        if (len % IO_ZERO_BLOCK != 0 || n != len / IO_ZERO_BLOCK || n > SIZE_MAX / sizeof(*blocks))
                return SOMBRA_EINVAL;
        if (n == 0)
                return SOMBRA_OK;
        blocks = malloc(n * sizeof(*blocks));
        if (blocks == NULL)
                return SOMBRA_ENOMEM;
        for (size_t i = 0; i < n; i++)
                blocks[i] = zeros;
        rc = io_write_blocks(f, blocks, n, IO_ZERO_BLOCK, off);
        free(blocks);
        return rc;
}

int
io_sync(struct io_file *f)
{
        struct io_extent covered;
        int rc;

        if (f->priv != NULL)
                return SOMBRA_OK; /* nothing of it is ever to reach the disk */
        covered = pending_take(f);
        if (fault_fire(f, IO_OP_SYNC) != 0 || observed(f, IO_OP_SYNC, 0, 0) != 0) {
                pending_fail(f, covered);
                return SOMBRA_EIO;
        }
        /*
         * EINTR means the call was interrupted before it reported anything,
         * so asking again is safe; any other failure may have dropped dirty
         * pages and must reach the caller, never be retried into a success.
         */
        do {
                rc = fdatasync(f->fd);
        } while (rc != 0 && errno == EINTR);
        observed_end(f, rc == 0);
        if (rc != 0)
                pending_fail(f, covered);
        return rc == 0 ? SOMBRA_OK : SOMBRA_EIO;
}

int
io_truncate(struct io_file *f, uint64_t len)
{
        int err, rc;

        if (len > IO_OFF_MAX)
                return SOMBRA_EINVAL;
        if (f->priv != NULL)
                return private_resize(f, len);
        err = fault_fire(f, IO_OP_TRUNCATE);
        if (err == 0)
                err = observed(f, IO_OP_TRUNCATE, len, 0);
        if (err != 0)
                return io_status_from_errno(err);

        do {
                rc = ftruncate(f->fd, (off_t)len);
        } while (rc != 0 && errno == EINTR);
        err = errno;
        observed_end(f, false);
        return rc == 0 ? SOMBRA_OK : io_status_from_errno(err);
}

int
io_size(struct io_file *f, uint64_t *size)
{
        struct stat st;

        if (f->priv != NULL) {
                *size = private_size(f);
                return SOMBRA_OK;
        }
        if (fstat(f->fd, &st) != 0)
                return io_status_from_errno(errno);
        *size = (uint64_t)st.st_size;
        return SOMBRA_OK;
}

int
io_identity(const struct io_file *f, struct io_identity *out)
{
        char id[64];
        struct stat st;
        struct statfs fs;
        uint64_t file[2];
        ssize_t n = -1;
        int gen = 0, fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);

        if (fd >= 0) {
                n = read(fd, id, sizeof(id));
                close(fd);
        }
        if (n <= 0 || f->priv != NULL || fstat(f->fd, &st) != 0)
                return SOMBRA_EIO;
        if (ioctl(f->fd, FS_IOC_GETVERSION, &gen) != 0 &&
            (fstatfs(f->fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC))
                return SOMBRA_EIO;
        file[0] = (uint64_t)st.st_ino;
        file[1] = (uint32_t)gen;
        out->boot = XXH3_64bits(id, (size_t)n);
        out->dev = (uint64_t)st.st_dev;
        out->file = XXH3_64bits(file, sizeof(file));
        return SOMBRA_OK;
}

int
io_sync_dir_of(const char *path, struct io_faults *faults)
{
        struct io_file dir = {.fd = -1, .kind = IO_FILE_DIR, .faults = faults};
        char *copy;
        int fd, rc = SOMBRA_OK;

        if (fault_fire(&dir, IO_OP_SYNC) != 0)
                return SOMBRA_EIO;
        copy = strdup(path);
        if (copy == NULL)
                return SOMBRA_ENOMEM;
        fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
                rc = SOMBRA_EIO;
        if (fd >= 0)
                close(fd);
        free(copy);
        return rc;
}

/* ---- byte-range locks ---- */

static int
range_fcntl(struct io_file *f, int cmd, short type, uint64_t lo, uint64_t hi, short *seen)
{
        struct flock fl = {.l_type = type, .l_whence = SEEK_SET};
        int rc;

        if (lo > IO_OFF_MAX || hi > IO_OFF_MAX || hi <= lo)
                return SOMBRA_EINVAL;
        fl.l_start = (off_t)lo;
        fl.l_len = (off_t)(hi - lo);
        /* l_pid must be zero for OFD locks. */
        do {
                rc = fcntl(f->fd, cmd, &fl);
        } while (rc != 0 && errno == EINTR);
        if (rc != 0)
                return io_status_from_errno(errno);
        if (seen != NULL)
                *seen = fl.l_type;
        return SOMBRA_OK;
}

int
io_range_share(struct io_file *f, uint64_t off)
{
        return range_fcntl(f, F_OFD_SETLK, F_RDLCK, off, off + 1, NULL);
}

void
io_range_unshare(struct io_file *f, uint64_t off)
{
        (void)range_fcntl(f, F_OFD_SETLK, F_UNLCK, off, off + 1, NULL);
}

int
io_range_held(struct io_file *f, uint64_t lo, uint64_t hi, bool *held)
{
        short seen = F_UNLCK;
        int rc = hi > lo ? range_fcntl(f, F_OFD_GETLK, F_WRLCK, lo, hi, &seen) : SOMBRA_OK;

        /* GETLK reports a conflicting lock, or leaves F_UNLCK when there is none. */
        *held = rc == SOMBRA_OK && seen != F_UNLCK;
        return rc;
}
