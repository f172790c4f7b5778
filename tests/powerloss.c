/*
 * powerloss.c - the power-loss model (powerloss.h).
 *
 * Each file kind has a journal: the synced contents of every block written
 * since the kind's last good sync, in an array, found by block number
 * through an open-addressing table (a test may write thousands of blocks
 * between two checkpoints of the database file).
 */
#include "powerloss.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

#define KINDS 3 /* io_file.kind values: IO_FILE_DB and IO_FILE_WAL */

struct saved_block {
        uint64_t block;
        uint8_t old[POWERLOSS_BLOCK];
};

struct journal {
        struct saved_block *saved;
        uint64_t n, cap;
        uint64_t *slots; /* index + 1 into saved; 0 is empty */
        uint64_t nslots; /* a power of two, at least twice n */
};

struct powerloss {
        struct io_faults *faults;
        struct io_observer observer;
        int cut;
        struct journal journals[KINDS];
};

static uint64_t
slot_of(const struct journal *j, uint64_t block)
{
        uint64_t i = (block * 0x9E3779B97F4A7C15ull) & (j->nslots - 1);

        while (j->slots[i] != 0 && j->saved[j->slots[i] - 1].block != block)
                i = (i + 1) & (j->nslots - 1);
        return i;
}

static void
journal_grow(struct journal *j)
{
        uint64_t *old = j->slots, nold = j->nslots;

        if (j->n == j->cap) {
                j->cap = j->cap ? 2 * j->cap : 64;
                j->saved = realloc(j->saved, j->cap * sizeof(*j->saved));
                cr_assert(j->saved != NULL);
        }
        if (2 * (j->n + 1) <= j->nslots)
                return;
        j->nslots = j->nslots ? 2 * j->nslots : 256;
        j->slots = calloc(j->nslots, sizeof(*j->slots));
        cr_assert(j->slots != NULL);
        for (uint64_t i = 0; i < nold; i++)
                if (old[i] != 0)
                        j->slots[slot_of(j, j->saved[old[i] - 1].block)] = old[i];
        free(old);
}

/* Saves block's synced contents, unless a write since the last sync already did. */
static void
journal_save(struct journal *j, int fd, uint64_t block)
{
        struct saved_block *b;
        ssize_t got;

        if (j->nslots != 0 && j->slots[slot_of(j, block)] != 0)
                return;
        journal_grow(j);
        b = &j->saved[j->n];
        b->block = block;
        memset(b->old, 0, sizeof(b->old));
        /* Past the end of the file the old contents are zeros: a grown file shows zeros. */
        got = pread(fd, b->old, sizeof(b->old), (off_t)(block * POWERLOSS_BLOCK));
        cr_assert(got >= 0);
        j->slots[slot_of(j, block)] = ++j->n;
}

static void
journal_clear(struct journal *j)
{
        j->n = 0;
        if (j->slots != NULL)
                memset(j->slots, 0, j->nslots * sizeof(*j->slots));
}

static int
observe_before(void *arg, struct io_file *f, enum io_op op, uint64_t off, uint64_t len)
{
        struct powerloss *pl = arg;
        struct journal *j = &pl->journals[f->kind % KINDS];
        struct stat st;
        uint64_t end;

        if (__atomic_load_n(&pl->cut, __ATOMIC_ACQUIRE))
                return EIO;
        if (op == IO_OP_TRUNCATE) {
                /* What a cut drops lies beyond the new length, up to the old one. */
                cr_assert(fstat(f->fd, &st) == 0);
                end = (uint64_t)st.st_size;
        } else {
                end = op == IO_OP_WRITE ? off + len : off;
        }
        for (uint64_t b = off / POWERLOSS_BLOCK; off < end && b * POWERLOSS_BLOCK < end; b++)
                journal_save(j, f->fd, b);
        return 0;
}

static void
observe_synced(void *arg, struct io_file *f)
{
        struct powerloss *pl = arg;

        journal_clear(&pl->journals[f->kind % KINDS]);
}

struct powerloss *
powerloss_attach(struct io_faults *faults)
{
        struct powerloss *pl = calloc(1, sizeof(*pl));

        cr_assert(pl != NULL);
        pl->faults = faults;
        pl->observer = (struct io_observer){observe_before, observe_synced, pl};
        faults->observer = &pl->observer;
        return pl;
}

void
powerloss_free(struct powerloss *pl)
{
        if (pl == NULL)
                return;
        pl->faults->observer = NULL;
        for (int k = 0; k < KINDS; k++) {
                free(pl->journals[k].saved);
                free(pl->journals[k].slots);
        }
        free(pl);
}

void
powerloss_cut(struct powerloss *pl)
{
        /* Under the fault lock: a call under way finishes whole, before the cut. */
        io_faults_lock(pl->faults);
        __atomic_store_n(&pl->cut, 1, __ATOMIC_RELEASE);
        io_faults_unlock(pl->faults);
}

uint64_t
powerloss_unsynced(struct powerloss *pl, uint32_t kind)
{
        uint64_t n;

        io_faults_lock(pl->faults);
        n = pl->journals[kind % KINDS].n;
        io_faults_unlock(pl->faults);
        return n;
}

/* Copies src to a new dst. */
static void
copy_whole(const char *src, const char *dst)
{
        int in = open(src, O_RDONLY | O_CLOEXEC), out;
        uint8_t buf[1 << 16];
        ssize_t n;

        cr_assert(in >= 0, "open %s", src);
        out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert(out >= 0, "create %s", dst);
        while ((n = read(in, buf, sizeof(buf))) > 0)
                cr_assert(write(out, buf, (size_t)n) == n);
        cr_assert(n == 0);
        close(in);
        close(out);
}

void
powerloss_image(struct powerloss *pl, uint32_t kind, const char *src, const char *dst,
                powerloss_fate_fn fate, void *arg)
{
        const struct journal *j = &pl->journals[kind % KINDS];
        int fd;

        cr_assert(__atomic_load_n(&pl->cut, __ATOMIC_ACQUIRE), "an image is of a cut");
        copy_whole(src, dst);
        fd = open(dst, O_WRONLY | O_CLOEXEC);
        cr_assert(fd >= 0);
        for (uint64_t i = 0; i < j->n; i++) {
                const struct saved_block *b = &j->saved[i];
                uint32_t sectors = 0;
                size_t from;

                switch (fate(arg, kind, b->block, &sectors)) {
                case POWERLOSS_KEEP:
                        continue;
                case POWERLOSS_DROP:
                        from = 0;
                        break;
                default:
                        cr_assert(sectors > 0 && sectors < POWERLOSS_BLOCK / POWERLOSS_SECTOR);
                        from = (size_t)sectors * POWERLOSS_SECTOR;
                        break;
                }
                cr_assert(pwrite(fd, b->old + from, POWERLOSS_BLOCK - from,
                                 (off_t)(b->block * POWERLOSS_BLOCK + from)) ==
                          (ssize_t)(POWERLOSS_BLOCK - from));
        }
        close(fd);
}

enum powerloss_fate
powerloss_keep_all(void *arg, uint32_t kind, uint64_t block, uint32_t *sectors)
{
        (void)arg;
        (void)kind;
        (void)block;
        (void)sectors;
        return POWERLOSS_KEEP;
}

enum powerloss_fate
powerloss_drop_all(void *arg, uint32_t kind, uint64_t block, uint32_t *sectors)
{
        (void)arg;
        (void)kind;
        (void)block;
        (void)sectors;
        return POWERLOSS_DROP;
}

enum powerloss_fate
powerloss_random(void *arg, uint32_t kind, uint64_t block, uint32_t *sectors)
{
        struct powerloss_dice *d = arg;
        uint64_t r = support_next_rand(&d->rng);

        (void)kind;
        (void)block;
        if (r % 100 < d->keep_pct)
                return POWERLOSS_KEEP;
        r /= 100;
        if (r % 100 >= d->tear_pct)
                return POWERLOSS_DROP;
        *sectors = 1 + (uint32_t)((r / 100) % (POWERLOSS_BLOCK / POWERLOSS_SECTOR - 1));
        return POWERLOSS_TEAR;
}
