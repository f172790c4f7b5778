/*
 * test_io.c - the file layer: opening, locking, exact reads and writes,
 * errno mapping, and the fault hook the crash and fault tests rely on.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "sombra.h"
#include "support.h"

static void
setup(void)
{
        support_dir_make("io");
}

TestSuite(io, .init = setup, .fini = support_dir_remove);

/* Opens (creating) dir/name and fills it with `len` bytes of `fill`. */
static void
open_filled(struct io_file *f, const char *name, int fill, size_t len)
{
        uint8_t block[4096];

        cr_assert(le(sz, len, sizeof(block)));
        memset(block, fill, len);
        cr_assert(eq(int, io_open(f, support_path(name), true), SOMBRA_OK));
        cr_assert(eq(int, io_write(f, block, len, 0), SOMBRA_OK));
}

/* Asserts that bytes [off, off + len) of f all equal `fill`. */
static void
expect_bytes(struct io_file *f, uint64_t off, size_t len, int fill)
{
        uint8_t block[4096];

        cr_assert(le(sz, len, sizeof(block)));
        cr_assert(eq(int, io_read(f, block, len, off), SOMBRA_OK));
        for (size_t i = 0; i < len; i++)
                cr_assert(eq(u8, block[i], (uint8_t)fill), "byte %zu", (size_t)off + i);
}

Test(io, written_bytes_read_back_and_set_the_size)
{
        struct io_file f;
        uint8_t out[300], in[300];
        uint64_t size;

        for (size_t i = 0; i < sizeof(out); i++)
                out[i] = (uint8_t)(i * 7);
        cr_assert(eq(int, io_open(&f, support_path("db"), true), SOMBRA_OK));
        cr_assert(eq(ptr, f.faults, NULL));
        cr_assert(eq(int, io_write(&f, out, sizeof(out), 1000), SOMBRA_OK));
        cr_assert(eq(int, io_sync(&f), SOMBRA_OK));
        cr_assert(eq(int, io_size(&f, &size), SOMBRA_OK));
        cr_assert(eq(u64, size, 1300));
        cr_assert(eq(int, io_read(&f, in, sizeof(in), 1000), SOMBRA_OK));
        cr_assert(eq(int, memcmp(in, out, sizeof(in)), 0));
        io_close(&f);
        cr_assert(eq(int, f.fd, -1));
}

Test(io, reading_past_the_end_is_corrupt)
{
        struct io_file f;
        uint8_t in[100];

        open_filled(&f, "db", 1, 50);
        cr_assert(eq(int, io_read(&f, in, 100, 0), SOMBRA_ECORRUPT));
        cr_assert(eq(int, io_read(&f, in, 1, 50), SOMBRA_ECORRUPT));
        cr_assert(eq(int, io_read(&f, in, 50, 0), SOMBRA_OK));
        io_close(&f);
}

Test(io, truncate_shrinks_and_grows_the_file)
{
        struct io_file f;
        uint64_t size;

        open_filled(&f, "db", 9, 4096);
        cr_assert(eq(int, io_truncate(&f, 100), SOMBRA_OK));
        cr_assert(eq(int, io_size(&f, &size), SOMBRA_OK));
        cr_assert(eq(u64, size, 100));
        cr_assert(eq(int, io_truncate(&f, 200), SOMBRA_OK));
        cr_assert(eq(int, io_size(&f, &size), SOMBRA_OK));
        cr_assert(eq(u64, size, 200));
        expect_bytes(&f, 0, 100, 9);
        expect_bytes(&f, 100, 100, 0);
        io_close(&f);
}

Test(io, offsets_past_off_t_are_rejected)
{
        struct io_file f;
        uint8_t b = 0;

        open_filled(&f, "db", 0, 1);
        cr_assert(eq(int, io_write(&f, &b, 1, UINT64_MAX), SOMBRA_EINVAL));
        cr_assert(eq(int, io_read(&f, &b, 1, (uint64_t)INT64_MAX), SOMBRA_EINVAL));
        cr_assert(eq(int, io_truncate(&f, UINT64_MAX), SOMBRA_EINVAL));
        io_close(&f);
}

Test(io, opening_a_missing_file_without_create_is_notfound)
{
        struct io_file f = {.fd = -7};

        cr_assert(eq(int, io_open(&f, support_path("missing"), false), SOMBRA_ENOTFOUND));
        cr_assert(eq(int, f.fd, -7));
}

Test(io, opening_a_directory_is_einval)
{
        struct io_file f;

        cr_assert(eq(int, io_open(&f, support_dir(), false), SOMBRA_EINVAL));
        cr_assert(eq(int, io_open(&f, support_dir(), true), SOMBRA_EINVAL));
}

Test(io, opening_a_fifo_is_einval)
{
        struct io_file f;

        cr_assert(eq(int, mkfifo(support_path("fifo"), 0600), 0));
        cr_assert(eq(int, io_open(&f, support_path("fifo"), false), SOMBRA_EINVAL));
}

Test(io, opening_a_read_only_file_is_eperm)
{
        struct io_file f;

        if (geteuid() == 0) {
                support_dir_remove(); /* a skipped test does not run .fini */
                cr_skip_test("root ignores file permissions");
        }
        cr_assert(eq(int, io_open(&f, support_path("ro"), true), SOMBRA_OK));
        io_close(&f);
        cr_assert(eq(int, chmod(support_path("ro"), 0444), 0));
        cr_assert(eq(int, io_open(&f, support_path("ro"), false), SOMBRA_EPERM));
}

Test(io, descriptors_are_close_on_exec)
{
        struct io_file f;

        cr_assert(eq(int, io_open(&f, support_path("db"), true), SOMBRA_OK));
        cr_assert(fcntl(f.fd, F_GETFD) & FD_CLOEXEC);
        io_close(&f);
}

Test(io, second_open_of_a_locked_file_cannot_lock_it)
{
        struct io_file a, b, c;

        cr_assert(eq(int, io_open(&a, support_path("db"), true), SOMBRA_OK));
        cr_assert(eq(int, io_open(&b, support_path("db"), false), SOMBRA_OK));
        cr_assert(eq(int, io_lock(&a), SOMBRA_OK));
        cr_assert(eq(int, io_lock(&b), SOMBRA_ELOCKED));
        io_close(&a);
        cr_assert(eq(int, io_lock(&b), SOMBRA_OK), "closing releases the lock");
        cr_assert(eq(int, io_open(&c, support_path("db"), false), SOMBRA_OK));
        cr_assert(eq(int, io_lock(&c), SOMBRA_ELOCKED));
        io_close(&b);
        io_close(&c);
}

Test(io, fault_fires_on_the_call_after_countdown_and_then_disarms)
{
        struct io_faults faults = {.ops = 1u << IO_OP_WRITE, .countdown = 2, .err = EIO};
        struct io_file f;
        uint8_t block[64];

        open_filled(&f, "db", 0, 256);
        f.faults = &faults;
        memset(block, 0xaa, sizeof(block));
        cr_assert(eq(int, io_write(&f, block, 64, 0), SOMBRA_OK));
        cr_assert(eq(int, io_write(&f, block, 64, 64), SOMBRA_OK));
        cr_assert(eq(u64, faults.fired, 0));
        cr_assert(eq(int, io_write(&f, block, 64, 128), SOMBRA_EIO));
        cr_assert(eq(u64, faults.fired, 1));
        cr_assert(eq(int, io_write(&f, block, 64, 192), SOMBRA_OK),
                  "a fault that is not sticky fires once");
        cr_assert(eq(u64, faults.fired, 1));
        expect_bytes(&f, 0, 128, 0xaa);
        expect_bytes(&f, 128, 64, 0);
        expect_bytes(&f, 192, 64, 0xaa);
        io_close(&f);
}

Test(io, sticky_fault_fails_every_later_call)
{
        struct io_faults faults = {
            .ops = 1u << IO_OP_READ, .countdown = 1, .err = EIO, .sticky = true};
        struct io_file f;
        uint8_t b;

        open_filled(&f, "db", 3, 16);
        f.faults = &faults;
        cr_assert(eq(int, io_read(&f, &b, 1, 0), SOMBRA_OK));
        for (int i = 0; i < 5; i++)
                cr_assert(eq(int, io_read(&f, &b, 1, 0), SOMBRA_EIO));
        cr_assert(eq(u64, faults.fired, 5));
        io_close(&f);
}

Test(io, short_write_fault_writes_the_first_half_then_fails)
{
        struct io_faults faults = {
            .ops = 1u << IO_OP_WRITE, .countdown = 0, .err = ENOSPC, .short_write = true};
        struct io_file f;
        uint8_t block[200];

        open_filled(&f, "db", 0, 200);
        f.faults = &faults;
        memset(block, 0x5c, sizeof(block));
        cr_assert(eq(int, io_write(&f, block, sizeof(block), 0), SOMBRA_ENOSPC));
        cr_assert(eq(u64, faults.fired, 1));
        expect_bytes(&f, 0, 100, 0x5c);
        expect_bytes(&f, 100, 100, 0);
        io_close(&f);
}

/* Blocks of `len` bytes, block i filled with i + 1. */
static void
blocks_make(uint8_t (*data)[512], const void **blocks, size_t n, size_t len)
{
        for (size_t i = 0; i < n; i++) {
                memset(data[i], (int)(i + 1), len);
                blocks[i] = data[i];
        }
}

Test(io, blocks_land_one_after_another_in_one_call)
{
        /* More blocks than one pwritev takes, so the call spans several. */
        static uint8_t data[150][512];
        const void *blocks[150];
        struct io_faults faults = {.ops = 1u << IO_OP_WRITE, .countdown = 1, .err = EIO};
        struct io_file f;
        uint64_t size;

        blocks_make(data, blocks, 150, 512);
        open_filled(&f, "db", 0, 4096);
        cr_assert(eq(int, io_write_blocks(&f, blocks, 150, 0, 1024), SOMBRA_OK)); /* no bytes */
        f.faults = &faults;
        cr_assert(eq(int, io_write_blocks(&f, blocks, 150, 512, 1024), SOMBRA_OK));
        for (size_t i = 0; i < 150; i++)
                expect_bytes(&f, 1024 + i * 512, 512, (int)(i + 1));
        expect_bytes(&f, 0, 1024, 0);
        cr_assert(eq(int, io_size(&f, &size), SOMBRA_OK));
        cr_assert(eq(u64, size, 1024 + 150 * 512));
        /* The fault counts calls: the whole gather was one, so the next call fails. */
        cr_assert(eq(u64, faults.fired, 0));
        cr_assert(eq(int, io_write(&f, "x", 1, 0), SOMBRA_EIO));
        io_close(&f);
}

Test(io, short_write_fault_on_blocks_writes_the_first_half_of_the_bytes)
{
        static uint8_t data[5][512];
        const void *blocks[5];
        struct io_faults faults = {
            .ops = 1u << IO_OP_WRITE, .countdown = 0, .err = ENOSPC, .short_write = true};
        struct io_file f;

        blocks_make(data, blocks, 5, 100);
        open_filled(&f, "db", 0, 500);
        f.faults = &faults;
        cr_assert(eq(int, io_write_blocks(&f, blocks, 5, 100, 0), SOMBRA_ENOSPC));
        cr_assert(eq(u64, faults.fired, 1));
        expect_bytes(&f, 0, 100, 1);
        expect_bytes(&f, 100, 100, 2);
        expect_bytes(&f, 200, 50, 3);
        expect_bytes(&f, 250, 250, 0);
        io_close(&f);
}

Test(io, blocks_past_off_t_or_overflowing_are_rejected)
{
        static uint8_t data[2][512];
        const void *blocks[2];
        struct io_file f;

        blocks_make(data, blocks, 2, 512);
        open_filled(&f, "db", 0, 10);
        cr_assert(
            eq(int, io_write_blocks(&f, blocks, 2, 512, (uint64_t)INT64_MAX - 600), SOMBRA_EINVAL));
        cr_assert(eq(int, io_write_blocks(&f, blocks, SIZE_MAX / 2, 512, 0), SOMBRA_EINVAL));
        expect_bytes(&f, 0, 10, 0);
        io_close(&f);
}

Test(io, fault_errno_is_mapped_like_a_real_failure)
{
        struct io_faults faults = {.ops = 1u << IO_OP_WRITE, .err = EDQUOT};
        struct io_file f;
        uint64_t size;

        open_filled(&f, "db", 1, 10);
        f.faults = &faults;
        cr_assert(eq(int, io_write(&f, "x", 1, 0), SOMBRA_ENOSPC));

        faults = (struct io_faults){.ops = 1u << IO_OP_TRUNCATE, .err = ENOSPC};
        cr_assert(eq(int, io_truncate(&f, 4096), SOMBRA_ENOSPC));
        cr_assert(eq(int, io_size(&f, &size), SOMBRA_OK));
        cr_assert(eq(u64, size, 10), "a failed truncate leaves the size alone");

        faults = (struct io_faults){.ops = 1u << IO_OP_SYNC, .err = ENOSPC};
        cr_assert(eq(int, io_sync(&f), SOMBRA_EIO), "sync reports every failure as EIO");
        cr_assert(eq(u64, faults.fired, 1));
        io_close(&f);
}

Test(io, fault_only_hits_the_kinds_of_call_in_its_mask)
{
        struct io_faults faults = {.ops = 1u << IO_OP_SYNC, .err = EIO};
        struct io_file f;
        uint8_t b;

        open_filled(&f, "db", 2, 8);
        f.faults = &faults;
        cr_assert(eq(int, io_read(&f, &b, 1, 0), SOMBRA_OK));
        cr_assert(eq(int, io_write(&f, &b, 1, 0), SOMBRA_OK));
        cr_assert(eq(int, io_truncate(&f, 8), SOMBRA_OK));
        cr_assert(eq(u64, faults.fired, 0));
        cr_assert(eq(int, io_sync(&f), SOMBRA_EIO));
        cr_assert(eq(u64, faults.fired, 1));
        io_close(&f);
}

Test(io, shared_fault_counts_calls_on_every_file)
{
        struct io_faults faults = {.ops = 1u << IO_OP_WRITE, .countdown = 2, .err = EIO};
        struct io_file db, wal;

        open_filled(&db, "db", 0, 1);
        open_filled(&wal, "wal", 0, 1);
        db.faults = &faults;
        wal.faults = &faults;
        cr_assert(eq(int, io_write(&db, "a", 1, 0), SOMBRA_OK));
        cr_assert(eq(int, io_write(&wal, "b", 1, 0), SOMBRA_OK));
        cr_assert(eq(int, io_write(&db, "c", 1, 0), SOMBRA_EIO));
        cr_assert(eq(u64, faults.fired, 1));
        io_close(&db);
        io_close(&wal);
}

Test(io, errno_values_map_to_status_codes)
{
        cr_assert(eq(int, io_status_from_errno(EACCES), SOMBRA_EPERM));
        cr_assert(eq(int, io_status_from_errno(EROFS), SOMBRA_EPERM));
        cr_assert(eq(int, io_status_from_errno(EPERM), SOMBRA_EPERM));
        cr_assert(eq(int, io_status_from_errno(ENOENT), SOMBRA_ENOTFOUND));
        cr_assert(eq(int, io_status_from_errno(ENOSPC), SOMBRA_ENOSPC));
        cr_assert(eq(int, io_status_from_errno(EDQUOT), SOMBRA_ENOSPC));
        cr_assert(eq(int, io_status_from_errno(EIO), SOMBRA_EIO));
        cr_assert(eq(int, io_status_from_errno(EBADF), SOMBRA_EIO));
}

/*
 * A twin is the same file through another open file description: even once
 * the file has another name, and while the original holds its lock.
 */
Test(io, a_twin_writes_the_same_file_and_its_zeros_come_in_whole_blocks)
{
        struct io_file f, twin, priv;
        uint64_t size;

        open_filled(&f, "db", 0x5a, 100);
        cr_assert(eq(int, io_lock(&f), SOMBRA_OK));
        cr_assert(eq(int, rename(support_path("db"), support_path("moved")), 0));
        cr_assert(eq(int, io_open_twin(&f, &twin), SOMBRA_OK));
        cr_assert(eq(int, io_write_zeros(&twin, 100, 2 * IO_ZERO_BLOCK), SOMBRA_OK));
        cr_assert(eq(int, io_sync(&twin), SOMBRA_OK));
        cr_assert(eq(int, io_size(&f, &size), SOMBRA_OK));
        cr_assert(eq(u64, size, 100 + 2 * IO_ZERO_BLOCK));
        expect_bytes(&f, 0, 100, 0x5a);
        expect_bytes(&f, 100, 4096, 0);
        expect_bytes(&f, 100 + 2 * IO_ZERO_BLOCK - 4096, 4096, 0);
        cr_assert(eq(int, io_write_zeros(&twin, 0, IO_ZERO_BLOCK + 1), SOMBRA_EINVAL));
        cr_assert(eq(int, io_write_zeros(&twin, 0, 0), SOMBRA_OK));
        expect_bytes(&f, 0, 100, 0x5a);
        io_close(&twin);
        io_close(&f);

        cr_assert(
            eq(int, io_open_private(&priv, support_path("moved"), 1 << 20, false), SOMBRA_OK));
        cr_assert(eq(int, io_open_twin(&priv, &twin), SOMBRA_EINVAL), "a private file has none");
        io_close(&priv);
}
