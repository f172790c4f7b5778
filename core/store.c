/*
 * store.c - transactions, the meta pages, checkpoints and recovery.
 *
 * Durable state = the newest valid meta page + the WAL records after its LSN.
 *
 * Meta page (pages 0 and 1; a checkpoint writes slot gen % 2, so the other
 * slot always holds the previous complete checkpoint). First 200 bytes:
 *   0   8  magic "SOMBRADB"          88  4  next name id
 *   8   4  format version (6)        92  4  number of trees (8)
 *   12  4  page size                 96  64 tree roots, enum store_tree order
 *   16  8  checkpoint generation     160 8  database id: random at creation
 *   24  8  checkpoint LSN            168 8  WAL salt: the generation of the
 *   32  8  pages in the file                log that continues this state
 *   40  8  free-list head page       176 8  WAL offset of the first record
 *   48  8  pages on the free list           after the checkpoint LSN (0: the
 *   56  8  next node id                     generation's first record)
 *   64  8  next edge id              184 8  the chain that record is seeded with
 *   72  8  live nodes                192 8  XXH3-64 of bytes 0..192
 *   80  8  live edges
 * The rest of the page is zero. Integers big-endian. Versions 4 to 6 have
 * the layout of version 3. All say that node and edge records may be
 * compact (record.h), so that a library that knows only version 3 refuses
 * the file (ENOTDB) rather than take those records for damage. Version 5
 * also says that the keys of the nodes, edges, labels and adj trees are
 * compact, and version 6 that the leaves' cells are too (varint lengths,
 * btree.c): a file made by this library. One made before keeps its fixed
 * keys and cells (a tree cannot mix them), written as the version it had
 * (4 or 5). Versions 3 and 2 (the latter without the WAL offset and chain,
 * and with the checksum at 176) are still read, and a read-write open
 * rewrites both slots of such a file (meta_upgrade).
 *
 * The database id binds the WAL to its database (wal.h), and the WAL salt
 * names the one generation of it that may be replayed onto this state. A
 * checkpoint that restarts the log starts that generation; one that leaves
 * the log as it is (a background checkpoint, see store_checkpoint_begin)
 * names the generation under way and the place in it where its state ends,
 * so that recovery reads from there. recover() sorts out every other.
 *
 * WAL payload of a commit (wal.h has the record header):
 *   u64 next node | u64 next edge | u64 nodes | u64 edges | u32 next name |
 *   u32 number of ops | ops
 *   op: u8 kind (1 put, 2 delete) | u8 tree | u16 key length | u32 value
 *       length (0 for delete) | key | value
 * The ops are the B+tree writes of the transaction in the order they were
 * made; replaying them on the checkpointed trees rebuilds the same state,
 * since one writer made them in that order.
 *
 * WAL note of a publication (a WAL note record; see recover_from_note):
 *   0   4  kind (1), then 4 zero bytes
 *   8   8  LSN of the state
 *   16  8  pages in the file
 *   24  104 the state: bytes 56..160 of the meta page
 *   128 8  boot (io_identity)
 *   136 8  device of the database file
 *   144 8  the database file: a hash of its inode number and generation
 *
 * WAL hint (hint_write): where recovery may start reading the log to find
 * the last note, instead of reading all of it since the checkpoint (4 MiB
 * of log took 1.5-2 ms of a 6-7 ms recovery). HINT_LEN bytes at HINT_AT of
 * the database file, in page 0 but in a block of its own (page sizes from
 * 8 KiB): a meta page written there clears it, and no write of it can tear
 * the meta page's block.
 *   0   8  magic "SOMBRHNT"
 *   8   8  the WAL generation's salt
 *   16  24 a note's place in the log: offset, chain, LSN (struct wal_pos)
 *   40  8  XXH3-64 of bytes 0..40
 * It is written, never synced, once the last note on file lies HINT_STRIDE
 * bytes of log past the hinted one. It is only a hint: the note's place is
 * checked against the chain like any record, and recovery reads the log
 * from the checkpoint when it finds no usable note from there.
 *
 * Readers in other processes (a read-only open, cfg.read_only). Such a
 * store reads the newest checkpoint on file and replays the WAL after it,
 * like recovery, but both files are in io.c's private mode: whatever the
 * engine writes (replayed pages, a checkpoint for a backup) stays in this
 * process's memory. What it reads unwritten comes from the file as it is now,
 * so the owner must not write over the checkpoint's pages while it is read.
 * Hence a reader table made of byte-range locks on the database file: a
 * reader holds a shared lock on byte READER_LOCK_BASE + gen, gen being the
 * checkpoint it pinned, for as long as it is open. The owner looks, after
 * every checkpoint and at open, for a lock below its newest generation, and
 * while one is there keeps every page that a durable meta page reached from
 * reuse (pager_set_hold): the file grows instead. A reader checks, after
 * taking its lock, that its checkpoint is still the newest: the owner's look
 * for locks comes after its next meta page is written, so it cannot miss a
 * reader that saw no newer one. The kernel drops the locks of a process that
 * dies, so a crashed reader holds nothing.
 *
 * Failure policy: with autopublish (each commit written on its own), a failed
 * WAL write rolls the transaction back and the store carries on (nothing was
 * acknowledged). A failed group write (store_flush_log), sync, page flush or
 * meta write makes the store refuse writes (SOMBRA_EFAILED), since memory and
 * disk may disagree. Reads keep working.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "adopt.h"
#include "futex.h"
#include "record.h"
#include "store.h"
#include "wal.h"

static const uint8_t meta_magic[8] = {'S', 'O', 'M', 'B', 'R', 'A', 'D', 'B'};

#define META_VERSION    6u /* compact records, keys and leaf cells */
#define META_V5_VERSION 5u /* compact records and keys, fixed leaf cells */
#define META_V4_VERSION 4u /* compact records, fixed keys and leaf cells */
#define META_V3_VERSION 3u /* fixed records, keys and cells; the layout of 4 to 6 */
#define META_SIZE       200u
#define META_SUM        192u /* the checksum's offset, and the bytes it covers */
#define META_V2_VERSION 2u   /* read only: no WAL place, the checksum at 176 */
#define META_V2_SUM     176u
#define OP_PUT          1u
#define OP_DEL          2u
#define OP_HDR          8u
#define PAYLOAD_STATE   40u
/*
 * A state's counters and roots as the meta page (at byte 56) and a note
 * both carry them: next node | next edge | nodes | edges (8 each) | next
 * name | number of trees (4 each) | roots.
 */
#define STATE_BLOCK (40u + 8u * STORE_TREES)
/* A note (see the layout above): its kind, LSN and pages, the state, the file's identity. */
#define NOTE_PUBLISHED 1u
#define NOTE_STATE     24u
#define NOTE_ID        (NOTE_STATE + STATE_BLOCK)
#define NOTE_LEN       (NOTE_ID + 24u)
/* The WAL hint (see above). */
#define HINT_AT     4096u
#define HINT_LEN    48u
#define HINT_STRIDE ((uint64_t)256 << 10)

/* Reader locks (see above): past any real file length, and far below off_t's end. */
#define READER_LOCK_BASE (1ull << 62)
/* Checkpoints a read-only open may see pass before it gives up with SOMBRA_EBUSY. */
#define READER_PIN_TRIES 64

struct meta {
        uint32_t page_size;
        uint64_t gen;
        uint64_t ckpt_lsn;
        uint64_t npages;
        pgno_t free_head;
        uint64_t free_count;
        uint64_t db_id;
        uint64_t wal_salt;
        struct wal_pos wal_from; /* off 0: the generation's first record */
        struct store_state st;
        /*
         * The format it is written in, as read (2 is written as 3, the same
         * fields in the later layout). 4 and later: compact records allowed;
         * 5 and later: compact keys (record.h); 6: varint leaf cells (btree.c).
         */
        uint32_t version;
};

/*
 * Snapshots and readers.
 *
 * A published snapshot is an immutable copy of a committed state. Readers
 * find the newest through `published` and announce the one they use in a
 * reader slot, hazard-pointer style: load it, store it in the slot, fence,
 * and check that it is still the newest (else retry). The writer, after a
 * fence, reads every slot: the oldest LSN it sees bounds what readers can
 * reach, so snapshots older than that are freed and pages retired by
 * transactions up to it are reused (pager_reclaim). This is the reader table
 * of LMDB more than an epoch scheme: the writer needs the oldest state still
 * in use, not only a grace period. The shared fields use the compiler's
 * __atomic builtins rather than ck_pr: ck_pr's loads and stores are volatile
 * accesses that ThreadSanitizer cannot see as atomic, and the builtins compile
 * to the same instructions on x86-64.
 */
struct store_snapshot {
        struct store_state st;
        struct store_snapshot *older; /* the writer's list, newest first */
};

/* A checkpoint beside the writer (store_checkpoint_begin). */
struct store_ckpt {
        struct meta m;       /* the meta page it writes */
        uint64_t started_ns; /* at its begin */
        uint64_t ended_ns;   /* when the meta page was durable, or the write failed */
        int rc;              /* store_checkpoint_write's */
        uint32_t done;       /* futex_once word: the write finished */
};

struct reader_slot {
        struct store_snapshot *snap; /* in use by the slot's reader; NULL when idle */
        int owned;                   /* claimed by a store_reader (compare-and-swap) */
        char pad[64 - sizeof(void *) - sizeof(int)];
};

struct store_reader {
        struct store *s;
        struct pager *pager; /* a reader handle on the store's pager */
        struct reader_slot *slot;
        struct store_snapshot *snap;
        uint32_t depth; /* nested begins */
};

struct store {
        struct io_file file;
        struct wal wal;
        struct pager *pager;
        struct sombra_config cfg;
        struct io_faults *faults;
        struct meta meta; /* the last durable meta page */
        /*
         * meta.version 5 or later, set at open and never after: readers on other
         * threads ask for it while a checkpoint rewrites `meta`.
         */
        bool compact_keys;
        bool old_format; /* a meta slot on file is format 3 or 2: store_open upgrades both */

        struct store_state committed;
        struct store_state txn;
        bool in_txn;
        bool replaying;
        int poisoned;   /* a write of the open txn failed half-way: it can only roll back */
        int failed;     /* sticky: writes are refused */
        struct buf rec; /* the WAL record of the open txn */
        uint32_t nops;
        bool txn_wrote;  /* the open txn changed a tree: its rollback has pages to undo */
        bool txn_shared; /* the open txn is in the group (store_begin_shared) */
        bool group_open; /* a pager txn is open for the group */
        struct store_state group_base;        /* the committed state when the group began */
        struct btree_hint hints[STORE_TREES]; /* the pager txn's last leaf in each tree */

        struct store_stats st;

        struct store_snapshot *published; /* newest; seq-cst atomic loads by readers */
        /*
         * A futex word bumped after every publication, at a failure and by
         * store_publish_last, with the count of its sleepers
         * (published_sleep).
         */
        uint32_t published_seq, published_sleepers;
        bool publish_closed; /* store_publish_last: no publication comes any more */
        /*
         * No reader may begin on a state older than `floor_lsn` (seq-cst):
         * the newest one answered unpublished (store_publish_skip). A reader
         * that finds the published state older calls want_publish and waits.
         */
        uint64_t floor_lsn;
        void (*want_publish)(void *arg);
        void *want_arg;
        bool skip_run;    /* writer: groups were skipped since the last publication */
        bool autopublish; /* store_commit publishes (else the caller does) */
        /*
         * The publication under way (store_publish_begin), if `publishing`:
         * its frames, its snapshot and `done` are the publishing thread's
         * until `done` says it finished; `handed_lsn` is the newest state
         * handed to a publication, written or not.
         */
        struct store_publication pub;
        bool publishing;
        uint64_t handed_lsn;
        /*
         * The newest state handed to a publication or answered unpublished
         * (store_publish_skip): in the log, its pages intact. After a store
         * failure it is the one store_publish_begin may still publish.
         */
        struct store_state fallback;
        /* The checkpoint under way, if `checkpointing`: like the publication's. */
        struct store_ckpt ckpt;
        bool checkpointing;
        bool background_ckpts; /* store_set_background_checkpoints */
        struct reader_slot *slots;
        uint32_t nslots;
        uint32_t backups; /* writer only: copies of the durable image in progress */
        bool older_meta;  /* at open: the other meta slot continues the same WAL generation */
        /* The file as the page cache knows it (io_identity); boot 0: notes are not written. */
        struct io_identity identity;
        /* Writer only: the last note's place and the hinted one's, with their generations. */
        struct wal_pos note_at, hinted;
        uint64_t note_salt, hinted_salt; /* 0: none */
        uint64_t backup_id;              /* the database id a copy's meta page gets */
};

/* ---- meta pages ---- */

/* Writes STATE_BLOCK bytes. */
static void
state_encode(const struct store_state *st, uint8_t *b)
{
        put_be64(b, st->next_node);
        put_be64(b + 8, st->next_edge);
        put_be64(b + 16, st->nodes);
        put_be64(b + 24, st->edges);
        put_be32(b + 32, st->next_name);
        put_be32(b + 36, STORE_TREES);
        for (int i = 0; i < STORE_TREES; i++)
                put_be64(b + 40 + 8 * i, st->roots[i]);
}

/* SOMBRA_ENOTDB for a block with another number of trees. */
static int
state_decode(struct store_state *st, const uint8_t *b)
{
        if (get_be32(b + 36) != STORE_TREES)
                return SOMBRA_ENOTDB;
        st->next_node = get_be64(b);
        st->next_edge = get_be64(b + 8);
        st->nodes = get_be64(b + 16);
        st->edges = get_be64(b + 24);
        st->next_name = get_be32(b + 32);
        for (int i = 0; i < STORE_TREES; i++)
                st->roots[i] = get_be64(b + 40 + 8 * i);
        return SOMBRA_OK;
}

static void
meta_encode(const struct meta *m, uint8_t *b)
{
        memset(b, 0, META_SIZE);
        memcpy(b, meta_magic, 8);
        put_be32(b + 8, m->version < META_V3_VERSION ? META_V3_VERSION : m->version);
        put_be32(b + 12, m->page_size);
        put_be64(b + 16, m->gen);
        put_be64(b + 24, m->ckpt_lsn);
        put_be64(b + 32, m->npages);
        put_be64(b + 40, m->free_head);
        put_be64(b + 48, m->free_count);
        state_encode(&m->st, b + 56);
        put_be64(b + 160, m->db_id);
        put_be64(b + 168, m->wal_salt);
        put_be64(b + 176, m->wal_from.off);
        put_be64(b + 184, m->wal_from.chain);
        put_be64(b + META_SUM, XXH3_64bits(b, META_SUM));
}

static bool
page_size_ok(uint32_t ps)
{
        return ps >= SOMBRA_MIN_PAGESIZE && ps <= SOMBRA_MAX_PAGESIZE && (ps & (ps - 1)) == 0;
}

/* The leaves' cell layout of a file of m's format. */
static enum page_cells
meta_leaf_cells(const struct meta *m)
{
        return m->version >= META_VERSION ? PAGE_CELLS_VARINT : PAGE_CELLS_FIXED;
}

/* SOMBRA_ENOTDB without the magic, SOMBRA_ECORRUPT with it but damaged. */
static int
meta_decode(struct meta *m, const uint8_t *b)
{
        uint32_t version = get_be32(b + 8);
        size_t sum = version == META_V2_VERSION ? META_V2_SUM : META_SUM;

        /* Another version's meta page is laid out differently: check that first. */
        if (memcmp(b, meta_magic, 8) != 0 || (version < META_V2_VERSION || version > META_VERSION))
                return SOMBRA_ENOTDB;
        if (get_be64(b + sum) != XXH3_64bits(b, sum))
                return SOMBRA_ECORRUPT;
        if (state_decode(&m->st, b + 56) != SOMBRA_OK)
                return SOMBRA_ENOTDB;
        m->page_size = get_be32(b + 12);
        m->gen = get_be64(b + 16);
        m->ckpt_lsn = get_be64(b + 24);
        m->npages = get_be64(b + 32);
        m->free_head = get_be64(b + 40);
        m->free_count = get_be64(b + 48);
        m->db_id = get_be64(b + 160);
        m->wal_salt = get_be64(b + 168);
        m->wal_from.off = version != META_V2_VERSION ? get_be64(b + 176) : 0;
        m->wal_from.chain = version != META_V2_VERSION ? get_be64(b + 184) : 0;
        m->wal_from.lsn = m->ckpt_lsn + 1;
        m->version = version;
        m->st.lsn = m->ckpt_lsn;
        if (!page_size_ok(m->page_size) || m->npages < 2 || m->free_count > m->npages ||
            m->db_id == 0 || m->wal_salt == 0 ||
            (m->wal_from.off != 0 && m->wal_from.off < WAL_HDR))
                return SOMBRA_ECORRUPT;
        for (int i = 0; i < STORE_TREES; i++)
                if (m->st.roots[i] == 1 || (m->st.roots[i] != 0 && m->st.roots[i] >= m->npages))
                        return SOMBRA_ECORRUPT;
        if (m->free_head == 1 || (m->free_head != 0 && m->free_head >= m->npages))
                return SOMBRA_ECORRUPT;
        return SOMBRA_OK;
}

static int
meta_write(struct store *s, const struct meta *m)
{
        uint8_t *page = calloc(1, m->page_size);
        int rc;

        if (page == NULL)
                return SOMBRA_ENOMEM;
        meta_encode(m, page);
        rc = io_write(&s->file, page, m->page_size, (m->gen % 2) * m->page_size);
        free(page);
        return rc;
}

/*
 * Reads both meta pages and keeps the newest valid one. Meta 0 gives the page
 * size; when it is damaged, meta 1 is looked for at every legal page size.
 * A failed read is returned as it is: taking it for a damaged page would open
 * the older meta, or call a database unreadable "not a database".
 * *unfinished tells that the file is a creation a crash interrupted (see the
 * end), which holds nothing and is to be created again.
 */
static int
meta_read(struct store *s, uint64_t file_size, struct meta *out, bool *unfinished)
{
        uint8_t b[META_SIZE];
        struct meta m0 = {0}, m1 = {0};
        int rc, rc0 = SOMBRA_ENOTDB, rc1 = SOMBRA_ENOTDB;

        rc = io_read(&s->file, b, file_size < META_SIZE ? file_size : META_SIZE, 0);
        if (rc != SOMBRA_OK)
                return rc;
        if (file_size >= META_SIZE)
                rc0 = meta_decode(&m0, b);
        else if (file_size >= sizeof(meta_magic) && memcmp(b, meta_magic, sizeof(meta_magic)) == 0)
                rc0 = SOMBRA_ECORRUPT; /* a database cut short inside its first meta page */
        for (uint32_t ps = SOMBRA_MIN_PAGESIZE; ps <= SOMBRA_MAX_PAGESIZE; ps *= 2) {
                if (rc0 == SOMBRA_OK && ps != m0.page_size)
                        continue;
                if (file_size < (uint64_t)ps + META_SIZE)
                        continue;
                rc = io_read(&s->file, b, META_SIZE, ps);
                if (rc != SOMBRA_OK)
                        return rc;
                rc1 = meta_decode(&m1, b);
                if (rc1 == SOMBRA_OK && m1.page_size != ps)
                        rc1 = SOMBRA_ECORRUPT;
                if (rc1 != SOMBRA_ENOTDB)
                        break;
        }
        if (rc0 == SOMBRA_OK && rc1 == SOMBRA_OK && m0.page_size != m1.page_size)
                rc1 = SOMBRA_ECORRUPT;
        if (rc0 == SOMBRA_OK && (rc1 != SOMBRA_OK || m0.gen >= m1.gen))
                *out = m0;
        else if (rc1 == SOMBRA_OK)
                *out = m1;
        else
                return (rc0 == SOMBRA_ECORRUPT || rc1 == SOMBRA_ECORRUPT) ? SOMBRA_ECORRUPT
                                                                          : SOMBRA_ENOTDB;
        /*
         * The other slot, if this one is damaged later, is opened instead
         * (see recover()), unless the log on disk has moved past it to a new
         * generation: close makes sure of that for its own checkpoint.
         */
        s->older_meta = rc0 == SOMBRA_OK && rc1 == SOMBRA_OK && m0.wal_salt == m1.wal_salt;
        s->old_format = (rc0 == SOMBRA_OK && m0.version < META_V4_VERSION) ||
                        (rc1 == SOMBRA_OK && m1.version < META_V4_VERSION);
        /*
         * Shorter than its pages: cut short, unless the newest meta is one that
         * db_create writes (generation 0 or 1, two pages, nothing
         * checkpointed). Then a crash stopped db_create between or inside its
         * two meta writes; open never returned, so no commit can exist, and
         * the file only needs creating again. (Seen while writing tests/crash:
         * a kill there left a file that every later open called corrupt.)
         * Divided, not multiplied: a damaged npages must not wrap around into
         * a small size.
         */
        if (out->npages > file_size / out->page_size) {
                *unfinished = out->gen <= 1 && out->npages == 2 && out->ckpt_lsn == 0;
                return *unfinished ? SOMBRA_OK : SOMBRA_ECORRUPT;
        }
        return SOMBRA_OK;
}

static int
db_create(struct store *s, const char *path)
{
        struct meta m = {0};
        int rc;

        if (!page_size_ok(s->cfg.page_size))
                return SOMBRA_EINVAL;
        m.page_size = s->cfg.page_size;
        m.version = META_VERSION;
        m.npages = 2;
        m.st.next_node = 1;
        m.st.next_edge = 1;
        m.st.next_name = 1;
        /*
         * A creation that a crash cut short keeps its ids: its WAL may have
         * its header already, and is this database's.
         */
        m.db_id = s->meta.db_id != 0 ? s->meta.db_id : wal_random(0);
        m.wal_salt = s->meta.wal_salt != 0 ? s->meta.wal_salt : wal_random(0);
        for (m.gen = 0; m.gen < 2; m.gen++) {
                rc = meta_write(s, &m);
                if (rc != SOMBRA_OK)
                        return rc;
        }
        m.gen = 1;
        rc = io_sync(&s->file);
        if (rc == SOMBRA_OK)
                rc = io_sync_dir_of(path, s->faults);
        if (rc == SOMBRA_OK)
                s->meta = m;
        return rc;
}

/* ---- transactions ---- */

static void
hints_clear(struct store *s)
{
        for (int t = 0; t < STORE_TREES; t++)
                btree_hint_clear(&s->hints[t]);
}

/* Commits the group's pager txn: what its commits wrote becomes committed pages. */
static void
group_close(struct store *s)
{
        if (!s->group_open)
                return;
        (void)pager_txn_commit(s->pager); /* a failure only leaks a page; the commits stand */
        s->group_open = false;
}

static int
txn_start(struct store *s, bool shared)
{
        if (s->in_txn)
                return SOMBRA_EBUSY;
        if (s->cfg.read_only && !s->replaying)
                return SOMBRA_EREADONLY;
        if (store_failure(s) != SOMBRA_OK)
                return SOMBRA_EFAILED;
        if (!shared)
                group_close(s);
        s->txn = s->committed;
        s->txn.lsn = s->committed.lsn + 1;
        s->in_txn = true;
        s->txn_shared = shared;
        s->txn_wrote = false;
        s->poisoned = SOMBRA_OK;
        s->nops = 0;
        buf_reset(&s->rec);
        /* Header room for wal_append, then the state, filled in at commit. */
        if (buf_reserve(&s->rec, WAL_REC_HDR + PAYLOAD_STATE) == SOMBRA_OK)
                s->rec.len = WAL_REC_HDR + PAYLOAD_STATE;
        else
                s->poisoned = SOMBRA_ENOMEM;
        if (shared && s->group_open)
                return SOMBRA_OK; /* what the group wrote stays writable, hints included */
        if (shared) {
                s->group_open = true;
                s->group_base = s->committed;
        }
        hints_clear(s);
        pager_txn_begin(s->pager, s->txn.lsn);
        return SOMBRA_OK;
}

int
store_begin(struct store *s)
{
        return txn_start(s, false);
}

int
store_begin_shared(struct store *s)
{
        return txn_start(s, true);
}

static int group_redo(struct store *s);

/*
 * Drops the open txn's changes. Alone, its pager txn is aborted. In the
 * group, the group's pager txn holds the commits before it too: when it
 * changed pages, the whole pager txn is aborted and those commits applied
 * again (the group then ends, so that each commit is applied again at most
 * once however many of its neighbours fail); when it changed none, there is
 * nothing to undo. A failed redo fails the store.
 */
static void
txn_discard(struct store *s)
{
        if (!s->txn_shared) {
                pager_txn_abort(s->pager);
        } else if (s->txn_wrote && group_redo(s) == SOMBRA_OK) {
                /* A new group from here: a later rollback redoes only what follows. */
                group_close(s);
        }
        s->in_txn = false;
        buf_reset(&s->rec);
}

void
store_rollback(struct store *s)
{
        if (!s->in_txn)
                return;
        txn_discard(s);
        s->st.rollbacks++;
}

bool
store_in_txn(const struct store *s)
{
        return s->in_txn;
}

struct store_state *
store_txn_state(struct store *s)
{
        return &s->txn;
}

const struct store_state *
store_committed(const struct store *s)
{
        return &s->committed;
}

static int checkpoint(struct store *s, bool fresh);

/* Bytes of log after the place where the last checkpoint's state ends. */
static uint64_t
wal_since_checkpoint(const struct store *s)
{
        uint64_t size = wal_size(&s->wal);
        uint64_t at = s->meta.wal_from.off != 0 ? s->meta.wal_from.off - WAL_HDR : 0;

        return size > at ? size - at : 0;
}

/*
 * The automatic checkpoint that stops the writer: when the log passes
 * checkpoint_threshold, or, with background checkpoints, when the log file
 * passes STORE_WAL_RESTART times that (STORE_WAL_RESTART_MIN at least): only
 * a checkpoint on the writer can start the log anew. A failure is sticky in
 * s->failed; SOMBRA_EBUSY while a backup holds checkpoints.
 */
static void
checkpoint_if_due(struct store *s)
{
        uint64_t limit = s->cfg.checkpoint_threshold;

        if (s->background_ckpts) {
                limit =
                    limit > UINT64_MAX / STORE_WAL_RESTART ? UINT64_MAX : limit * STORE_WAL_RESTART;
                if (limit < STORE_WAL_RESTART_MIN)
                        limit = STORE_WAL_RESTART_MIN;
        }
        if (wal_size(&s->wal) >= limit)
                (void)checkpoint(s, false);
}

/*
 * Wakes the threads in published_sleep. Seq-cst on both sides: a waiter
 * counts itself before it sleeps, and we bump the word before we look at the
 * count, so either it sees the new word or we see it counted.
 */
static void
published_wake(struct store *s)
{
        __atomic_add_fetch(&s->published_seq, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&s->published_sleepers, __ATOMIC_SEQ_CST) > 0)
                futex_wake(&s->published_seq, INT32_MAX);
}

static int
store_fail(struct store *s, int rc)
{
        /* Atomic: the committer thread reads it in store_sync. */
        if (__atomic_load_n(&s->failed, __ATOMIC_ACQUIRE) == SOMBRA_OK) {
                __atomic_store_n(&s->failed, rc, __ATOMIC_RELEASE);
                published_wake(s); /* no publication will come for those who wait */
        }
        return rc;
}

int
store_commit(struct store *s, uint64_t *lsn)
{
        uint8_t *p;
        uint64_t got;
        int rc;

        if (!s->in_txn)
                return SOMBRA_ENOTXN;
        /*
         * A failure since begin (a sync on the committer thread, a group
         * write) means nothing more may be acknowledged: not even this txn.
         */
        if (s->poisoned == SOMBRA_OK && store_failure(s) != SOMBRA_OK)
                s->poisoned = SOMBRA_EFAILED;
        if (s->poisoned != SOMBRA_OK) {
                rc = s->poisoned;
                store_rollback(s);
                return rc;
        }
        if (s->nops == 0) { /* nothing to log; the txn changed no tree */
                txn_discard(s);
                if (lsn != NULL)
                        *lsn = s->committed.lsn;
                return SOMBRA_OK;
        }
        p = s->rec.data + WAL_REC_HDR;
        put_be64(p, s->txn.next_node);
        put_be64(p + 8, s->txn.next_edge);
        put_be64(p + 16, s->txn.nodes);
        put_be64(p + 24, s->txn.edges);
        put_be32(p + 32, s->txn.next_name);
        put_be32(p + 36, s->nops);
        if (!s->replaying) {
                rc = wal_append(&s->wal, s->rec.data, s->rec.len, &got);
                /* Alone, a commit goes to the file now; in a group, at store_flush_log. */
                if (rc == SOMBRA_OK && s->autopublish)
                        rc = wal_flush(&s->wal);
                if (rc != SOMBRA_OK) {
                        store_rollback(s);
                        return rc;
                }
                s->st.wal_bytes += s->rec.len;
        }
        /* In the group, pages become committed ones at store_group_end. */
        rc = s->txn_shared ? SOMBRA_OK : pager_txn_commit(s->pager);
        s->committed = s->txn;
        s->in_txn = false;
        s->st.commits++;
        if (lsn != NULL)
                *lsn = s->committed.lsn;
        (void)rc; /* a failure there only leaks a page; the commit stands */
        if (s->replaying || s->txn_shared)
                return SOMBRA_OK; /* recovery publishes once, at its end; a group at its end */
        /* A failed publish leaves readers on the older state; the commit stands. */
        if (s->autopublish)
                (void)store_publish(s);
        checkpoint_if_due(s);
        return SOMBRA_OK;
}

void
store_group_end(struct store *s)
{
        if (s->in_txn || !s->group_open)
                return;
        group_close(s);
        checkpoint_if_due(s);
}

int
store_flush_log(struct store *s)
{
        int rc = wal_flush(&s->wal);

        /* Commits already in memory never reached the log: nothing may follow them. */
        if (rc != SOMBRA_OK)
                return store_fail(s, rc);
        return SOMBRA_OK;
}

/* ---- snapshots ---- */

/*
 * The least of `oldest` and the LSNs of the snapshots readers' slots hold.
 * A slot may name a snapshot that is already freed: its reader loaded the
 * pointer, was preempted while the writer freed it, stored it, and will see
 * on its re-check that it must retry. So the pointer is only compared with
 * the writer's own live snapshots, never followed.
 */
static uint64_t
slots_oldest(struct store *s, uint64_t oldest)
{
        /* Seq-cst loads: ordered after our seq-cst store of `published` (see above). */
        for (uint32_t i = 0; i < s->nslots; i++) {
                struct store_snapshot *held = __atomic_load_n(&s->slots[i].snap, __ATOMIC_SEQ_CST);
                for (struct store_snapshot *snap = s->published; held != NULL && snap != NULL;
                     snap = snap->older) {
                        if (snap == held) {
                                if (snap->st.lsn < oldest)
                                        oldest = snap->st.lsn;
                                break;
                        }
                }
        }
        return oldest;
}

/* The oldest LSN any reader may still be using (the newest snapshot's when none). */
static uint64_t
oldest_in_use(struct store *s)
{
        uint64_t oldest = s->published->st.lsn;
        uint64_t floor = __atomic_load_n(&s->floor_lsn, __ATOMIC_SEQ_CST);

        /* Past the floor no reader begins on `published` (store_reader_begin): only slots hold it.
         */
        if (floor > oldest)
                oldest = floor;
        return slots_oldest(s, oldest);
}

static void
snapshots_reclaim(struct store *s)
{
        uint64_t oldest = oldest_in_use(s);
        struct store_snapshot **link = &s->published->older;

        while (*link != NULL) {
                struct store_snapshot *snap = *link;
                if (snap->st.lsn >= oldest) {
                        link = &snap->older;
                        continue;
                }
                *link = snap->older;
                free(snap);
        }
        pager_reclaim(s->pager, oldest);
}

static const uint8_t hint_magic[8] = {'S', 'O', 'M', 'B', 'R', 'H', 'N', 'T'};

/* Whether page 0 has a block of its own for the hint, past the meta page's. */
static bool
hint_room(const struct store *s)
{
        return s->meta.page_size >= 2 * HINT_AT;
}

/* Points the WAL hint at `at`, a note on file; a failure changes nothing but recovery's speed. */
static void
hint_write(struct store *s, const struct wal_pos *at)
{
        uint8_t b[HINT_LEN];

        memcpy(b, hint_magic, sizeof(hint_magic));
        put_be64(b + 8, s->wal.salt);
        put_be64(b + 16, at->off);
        put_be64(b + 24, at->chain);
        put_be64(b + 32, at->lsn);
        put_be64(b + 40, XXH3_64bits(b, 40));
        if (io_write(&s->file, b, sizeof(b), HINT_AT) == SOMBRA_OK) {
                s->hinted = *at;
                s->hinted_salt = s->wal.salt;
        }
}

/*
 * A place in the log from the WAL hint, for recover_from_note: *found when
 * there is one past `from`. A read error is returned, as anywhere in open.
 */
static int
hint_read(struct store *s, const struct wal_pos *from, struct wal_pos *out, bool *found)
{
        uint8_t b[HINT_LEN];
        int rc;

        *found = false;
        if (!hint_room(s))
                return SOMBRA_OK;
        rc = io_read(&s->file, b, sizeof(b), HINT_AT);
        if (rc != SOMBRA_OK || memcmp(b, hint_magic, sizeof(hint_magic)) != 0 ||
            get_be64(b + 40) != XXH3_64bits(b, 40) || get_be64(b + 8) != s->wal.salt)
                return rc;
        *out = (struct wal_pos){get_be64(b + 16), get_be64(b + 24), get_be64(b + 32)};
        *found = out->off > from->off && out->lsn >= from->lsn;
        return SOMBRA_OK;
}

/*
 * The hint moves to the last note the log holds, once that lies HINT_STRIDE
 * past the hinted one: a write every so much log, not every group, and a
 * recovery that reads at most about that much before its note.
 */
static void
hint_follow(struct store *s)
{
        uint64_t since = s->hinted_salt == s->wal.salt ? s->hinted.off : WAL_HDR;

        if (hint_room(s) && s->note_salt == s->wal.salt && s->wal.end > s->note_at.off &&
            s->note_at.off >= since + HINT_STRIDE)
                hint_write(s, &s->note_at);
}

/*
 * Notes in the WAL that the file now holds the newest published state, with
 * `npages` pages, so that recovery after a crash of the process alone can
 * take that state over instead of replaying up to it (recover_from_note).
 * Appended, not written: it goes out with the next group's records. A note
 * is a hint, so failing to add one changes nothing.
 */
static void
note_published(struct store *s, uint64_t npages)
{
        const struct store_state *st = &s->published->st;
        uint8_t b[NOTE_LEN] = {0};
        struct wal_pos at;

        /* A failed store may have voided the notes (checkpoint_failed): none may follow. */
        if (s->identity.boot == 0 || store_failure(s) != SOMBRA_OK)
                return;
        put_be32(b, NOTE_PUBLISHED);
        put_be64(b + 8, st->lsn);
        put_be64(b + 16, npages);
        state_encode(st, b + NOTE_STATE);
        put_be64(b + NOTE_ID, s->identity.boot);
        put_be64(b + NOTE_ID + 8, s->identity.dev);
        put_be64(b + NOTE_ID + 16, s->identity.file);
        hint_follow(s); /* to the note before this one: on file by now, if it went out */
        if (wal_note(&s->wal, b, sizeof(b), &at) == SOMBRA_OK) {
                s->note_at = at;
                s->note_salt = s->wal.salt;
        }
}

/* Readers get the publication's state; `published` is only ever set here and at close. */
static void
publish_snapshot(struct store *s, struct store_publication *pub)
{
        pager_publish(s->pager, pub->npages);
        pub->snap->older = __atomic_load_n(&s->published, __ATOMIC_RELAXED);
        __atomic_store_n(&s->published, pub->snap, __ATOMIC_SEQ_CST);
        pub->snap = NULL;
        published_wake(s);
}

/*
 * A reader waiting for a newer published state loads published_seq, looks
 * at the state, and sleeps here only if it is still too old. The sleep ends
 * at the next publication, at a store failure and at store_publish_last.
 */
static void
published_sleep(struct store *s, uint32_t seq)
{
        __atomic_add_fetch(&s->published_sleepers, 1, __ATOMIC_SEQ_CST);
        futex_wait(&s->published_seq, seq, 0);
        __atomic_sub_fetch(&s->published_sleepers, 1, __ATOMIC_SEQ_CST);
}

void
store_publish_last(struct store *s)
{
        (void)store_publish(s);
        __atomic_store_n(&s->publish_closed, true, __ATOMIC_SEQ_CST);
        published_wake(s);
}

int
store_publish_begin(struct store *s, struct store_publication **out)
{
        struct store_publication *pub = &s->pub;
        const struct store_state *st = &s->committed;
        bool failed;

        *out = NULL;
        (void)store_publish_settle(s);
        /*
         * A failed publication may have failed the store after this group's
         * commits began, and a failed log write leaves commits in memory that
         * the log lacks: neither may be published. Commits answered
         * unpublished are in the log, though, and their pages intact (every
         * later change copied them), so readers still get those.
         */
        failed = store_failure(s) != SOMBRA_OK;
        if (failed && s->fallback.lsn <= s->handed_lsn)
                return SOMBRA_EFAILED;
        if (failed)
                st = &s->fallback;
        if (s->published != NULL && s->handed_lsn == st->lsn) {
                snapshots_reclaim(s);
                return SOMBRA_OK;
        }
        pub->snap = malloc(sizeof(*pub->snap));
        if (pub->snap == NULL)
                return SOMBRA_ENOMEM; /* readers keep the previous state; the commit stands */
        /* Not after a failure: later commits superseded pages that `fallback` reaches. */
        if (s->published != NULL && !failed)
                pager_forget_unpublished(s->pager, s->handed_lsn);
        pub->snap->st = *st;
        /* Its pages stay dirty until written, where the forget may drop an older state's. */
        s->fallback = *st;
        pub->frames = pager_write_take(s->pager, &pub->n);
        pub->npages = pager_npages(s->pager);
        pub->written = 0;
        pub->rc = SOMBRA_OK;
        pub->done = FUTEX_ONCE_PENDING;
        s->handed_lsn = st->lsn;
        s->publishing = true;
        *out = pub;
        return SOMBRA_OK;
}

/*
 * Readers read pages from the file: everything they can reach must be
 * written before the state is theirs. After a failed write readers stay on
 * the older state, and the commits stand in the WAL.
 */
int
store_publish_write(struct store *s, struct store_publication *pub, bool fail_store)
{
        size_t more = 0;
        int rc;

        pager_write_seal(s->pager, pub->frames, pub->n);
        rc = pager_write_frames(s->pager, pub->frames, pub->n, &pub->written);
        if (rc != SOMBRA_OK && fail_store) { /* as store_publish_or_fail: once more */
                rc = pager_write_frames(s->pager, pub->frames + pub->written, pub->n - pub->written,
                                        &more);
                pub->written += more;
        }
        if (rc == SOMBRA_OK)
                publish_snapshot(s, pub);
        else if (fail_store)
                store_fail(s, rc);
        pub->rc = rc;
        futex_once_set(&pub->done);
        return rc;
}

int
store_held_pages(struct store *s, uint64_t *out)
{
        int rc = store_publish_settle(s); /* the chain of snapshots is then the writer's alone */

        if (rc != SOMBRA_OK)
                return rc;
        *out = s->published == NULL ? 0 : pager_limbo_after(s->pager, slots_oldest(s, UINT64_MAX));
        return SOMBRA_OK;
}

int
store_publish_skip(struct store *s)
{
        /* The publication under way reads frames that the reclaim below could free. */
        int rc = store_publish_settle(s);

        if (rc != SOMBRA_OK)
                return rc;
        if (store_failure(s) != SOMBRA_OK)
                return SOMBRA_EFAILED; /* the committed state may hold commits the log lacks */
        if (s->published == NULL)
                return SOMBRA_EINVAL;
        s->fallback = s->committed;
        /* Seq-cst, before the slots are read: see store_reader_begin. */
        __atomic_store_n(&s->floor_lsn, s->committed.lsn, __ATOMIC_SEQ_CST);
        s->skip_run = true;
        pager_forget_unpublished(s->pager, s->handed_lsn);
        snapshots_reclaim(s);
        return SOMBRA_OK;
}

void
store_set_publish_hook(struct store *s, void (*want_publish)(void *arg), void *arg)
{
        s->want_publish = want_publish;
        s->want_arg = arg;
}

int
store_publish_settle(struct store *s)
{
        struct store_publication *pub = &s->pub;

        if (!s->publishing)
                return SOMBRA_OK;
        futex_once_wait(&pub->done);
        s->publishing = false;
        pager_write_done(s->pager, pub->frames, pub->n, pub->written);
        if (pub->rc != SOMBRA_OK) {
                s->st.publish_failures++;
                free(pub->snap);
                pub->snap = NULL;
                /* The next publication writes them again: nobody ever saw this state. */
                s->handed_lsn = s->published != NULL ? s->published->st.lsn : 0;
                return pub->rc;
        }
        /* After a failure the log's end is in doubt: nothing more goes into it. */
        if (store_failure(s) == SOMBRA_OK)
                note_published(s, pub->npages);
        /*
         * After skipped groups this publication wrote over pages of the state
         * the last note names (store_publish_skip freed them early): its own
         * note goes to the log file now, not with the next group's records,
         * or a crash meanwhile would find no note whose pages the file holds.
         * Written, not synced: notes serve crashes of the process alone.
         */
        if (s->skip_run && store_failure(s) == SOMBRA_OK)
                (void)store_flush_log(s); /* a failure is sticky */
        s->skip_run = false;
        snapshots_reclaim(s);
        return SOMBRA_OK;
}

int
store_publish(struct store *s)
{
        struct store_publication *pub;
        int rc = store_publish_begin(s, &pub);

        if (rc != SOMBRA_OK || pub == NULL)
                return rc;
        (void)store_publish_write(s, pub, false);
        return store_publish_settle(s);
}

int
store_publish_or_fail(struct store *s)
{
        int rc = store_publish(s);

        /* The pages are still dirty: a transient failure may pass when asked again. */
        if (rc != SOMBRA_OK)
                rc = store_publish(s);
        return rc == SOMBRA_OK ? SOMBRA_OK : store_fail(s, rc);
}

static bool
slot_claim(struct reader_slot *slot)
{
        int idle = 0;
        return __atomic_compare_exchange_n(&slot->owned, &idle, 1, false, __ATOMIC_ACQ_REL,
                                           __ATOMIC_RELAXED);
}

void
store_set_autopublish(struct store *s, bool on)
{
        s->autopublish = on;
}

int
store_reader_open(struct store *s, struct store_reader **out)
{
        struct store_reader *r;
        int rc;

        r = calloc(1, sizeof(*r));
        if (r == NULL)
                return SOMBRA_ENOMEM;
        r->s = s;
        for (uint32_t i = 0; i < s->nslots && r->slot == NULL; i++)
                if (slot_claim(&s->slots[i]))
                        r->slot = &s->slots[i];
        rc = r->slot == NULL ? SOMBRA_EBUSY : pager_reader_open(s->pager, &r->pager);
        if (rc != SOMBRA_OK) {
                store_reader_close(r);
                return rc;
        }
        *out = r;
        return SOMBRA_OK;
}

void
store_reader_close(struct store_reader *r)
{
        if (r == NULL)
                return;
        if (r->slot != NULL) {
                __atomic_store_n(&r->slot->snap, NULL, __ATOMIC_SEQ_CST);
                __atomic_store_n(&r->slot->owned, 0, __ATOMIC_RELEASE);
        }
        pager_reader_close(r->pager);
        free(r);
}

/*
 * Pins the newest published state in the reader's slot. When it is older
 * than the floor (commits were answered unpublished: store_publish_skip),
 * the slot is cleared again before anything is read, the writer is asked to
 * publish, and the reader waits: a reader never begins on a state that lacks
 * a commit answered before it began. The floor is loaded after the slot is
 * stored, and the writer stores the floor before it reads the slots to free
 * pages (all seq-cst): either the writer sees this slot, or this reader sees
 * the new floor and reads none of the pages the writer frees.
 */
const struct store_state *
store_reader_begin(struct store_reader *r)
{
        struct store *s = r->s;
        struct store_snapshot *snap;

        if (r->depth > 0) {
                r->depth++;
                return &r->snap->st;
        }
        for (;;) {
                uint32_t seq = __atomic_load_n(&s->published_seq, __ATOMIC_SEQ_CST);
                snap = __atomic_load_n(&s->published, __ATOMIC_SEQ_CST);
                /* Seq-cst store then load: the writer sees the slot before we look again. */
                __atomic_store_n(&r->slot->snap, snap, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&s->published, __ATOMIC_SEQ_CST) != snap)
                        continue;
                if (snap->st.lsn >= __atomic_load_n(&s->floor_lsn, __ATOMIC_SEQ_CST))
                        break;
                __atomic_store_n(&r->slot->snap, NULL, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&s->publish_closed, __ATOMIC_SEQ_CST) ||
                    s->want_publish == NULL)
                        return NULL;
                s->want_publish(s->want_arg);
                published_sleep(s, seq);
        }
        r->depth = 1;
        r->snap = snap;
        return &snap->st;
}

void
store_reader_end(struct store_reader *r)
{
        if (r->depth == 0 || --r->depth > 0)
                return;
        r->snap = NULL;
        __atomic_store_n(&r->slot->snap, NULL, __ATOMIC_SEQ_CST);
}

struct pager *
store_reader_pager(struct store_reader *r)
{
        return r->pager;
}

static int
log_op(struct store *s, uint8_t kind, enum store_tree t, const void *key, size_t klen,
       const void *val, size_t vlen)
{
        uint8_t h[OP_HDR];
        int rc;

        if (s->replaying) { /* the ops are in the log already */
                s->nops++;
                return SOMBRA_OK;
        }
        if (s->rec.len + OP_HDR + klen + vlen > WAL_MAX_RECORD)
                return SOMBRA_ETOOBIG;
        h[0] = kind;
        h[1] = (uint8_t)t;
        put_be16(h + 2, (uint16_t)klen);
        put_be32(h + 4, (uint32_t)vlen);
        rc = buf_reserve(&s->rec, s->rec.len + OP_HDR + klen + vlen);
        if (rc != SOMBRA_OK)
                return rc;
        buf_append(&s->rec, h, OP_HDR);
        buf_append(&s->rec, key, klen);
        if (vlen > 0)
                buf_append(&s->rec, val, vlen);
        s->nops++;
        return SOMBRA_OK;
}

static int
write_checks(struct store *s, enum store_tree t)
{
        if (!s->in_txn)
                return SOMBRA_ENOTXN;
        if (s->poisoned != SOMBRA_OK)
                return s->poisoned;
        if ((unsigned)t >= STORE_TREES)
                return SOMBRA_EINVAL;
        return SOMBRA_OK;
}

void
store_poison(struct store *s, int status)
{
        if (s->in_txn && s->poisoned == SOMBRA_OK)
                s->poisoned = status;
}

/* A tree write that failed half-way leaves the txn unusable; a clean refusal does not. */
static int
after_write(struct store *s, size_t mark, int rc)
{
        if (rc == SOMBRA_OK)
                return rc;
        s->rec.len = mark;
        s->nops--;
        if (rc != SOMBRA_ENOTFOUND && rc != SOMBRA_EINVAL && rc != SOMBRA_ETOOBIG)
                s->poisoned = rc;
        return rc;
}

int
store_put(struct store *s, enum store_tree t, const void *key, size_t klen, const void *val,
          size_t vlen)
{
        size_t mark = s->rec.len;
        int rc = write_checks(s, t);

        if (rc == SOMBRA_OK && (klen == 0 || klen > BTREE_MAX_KEY || vlen > SOMBRA_MAX_RECORD))
                rc = klen == 0 || klen > BTREE_MAX_KEY ? SOMBRA_EINVAL : SOMBRA_ETOOBIG;
        if (rc == SOMBRA_OK)
                rc = log_op(s, OP_PUT, t, key, klen, val, vlen);
        if (rc != SOMBRA_OK)
                return rc;
        s->txn_wrote = true;
        return after_write(
            s, mark,
            btree_put_hinted(s->pager, &s->txn.roots[t], &s->hints[t], key, klen, val, vlen));
}

int
store_del(struct store *s, enum store_tree t, const void *key, size_t klen)
{
        size_t mark = s->rec.len;
        int rc = write_checks(s, t);

        if (rc == SOMBRA_OK && (klen == 0 || klen > BTREE_MAX_KEY))
                rc = SOMBRA_EINVAL;
        if (rc == SOMBRA_OK)
                rc = log_op(s, OP_DEL, t, key, klen, NULL, 0);
        if (rc != SOMBRA_OK)
                return rc;
        s->txn_wrote = true;
        btree_hint_clear(&s->hints[t]); /* a delete may merge or free the leaf */
        return after_write(s, mark, btree_del(s->pager, &s->txn.roots[t], key, klen));
}

int
store_get(struct store *s, const struct store_state *st, enum store_tree t, const void *key,
          size_t klen, struct buf *val)
{
        if ((unsigned)t >= STORE_TREES)
                return SOMBRA_EINVAL;
        return btree_get(s->pager, st->roots[t], key, klen, val);
}

void
store_cursor(struct store *s, const struct store_state *st, enum store_tree t,
             struct btree_cursor *c)
{
        btree_cursor_init(c, s->pager, st->roots[t]);
}

/* ---- durability ---- */

int
store_sync(struct store *s)
{
        int rc;

        if (store_failure(s) != SOMBRA_OK)
                return SOMBRA_EFAILED;
        rc = wal_sync(&s->wal);
        if (rc != SOMBRA_OK)
                return store_fail(s, rc);
        return SOMBRA_OK;
}

uint64_t
store_log_room(struct store *s)
{
        return wal_room_wanted(&s->wal);
}

void
store_log_grow(struct store *s, uint64_t to)
{
        (void)wal_grow(&s->wal, to);
}

/*
 * The owner: whether a reader in another process holds a checkpoint older
 * than the newest durable one, which decides whether pages that durable meta
 * pages reached may be reused. A failed look (a file system without OFD
 * locks) finds none: readers cannot have taken theirs there either.
 */
static void
readers_look(struct store *s)
{
        bool held = false;

        if (!s->cfg.read_only)
                (void)io_range_held(&s->file, READER_LOCK_BASE, READER_LOCK_BASE + s->meta.gen,
                                    &held);
        pager_set_hold(s->pager, held);
}

/*
 * The first half of a checkpoint, on the writer: the committed state's meta
 * page in *m, its free list built and every page it reaches written (not
 * synced). With `restart` the meta page names a new WAL generation, which the
 * caller starts once the page is durable; otherwise it names the place in
 * the log under way where the state ends, and the log goes on.
 */
static int
checkpoint_prepare(struct store *s, bool restart, struct meta *m)
{
        int rc;

        group_close(s); /* its pages must be committed ones to be checkpointed */
        /* The state's records must be in the log before its place there is taken. */
        rc = store_flush_log(s);
        if (rc != SOMBRA_OK)
                return rc;
        *m = s->meta;
        m->gen++;
        m->ckpt_lsn = s->committed.lsn;
        m->st = s->committed;
        if (restart) {
                m->wal_from = (struct wal_pos){0, 0, 0}; /* the new generation's first record */
                /* Named by the meta page before any record of it can exist. */
                do
                        m->wal_salt = wal_random(s->wal.salt);
                while (m->wal_salt == s->meta.wal_salt);
        } else {
                wal_position(&s->wal, &m->wal_from);
        }
        pager_checkpoint_begin(s->pager, m->ckpt_lsn);
        rc = pager_freelist_build(s->pager, m->ckpt_lsn, s->meta.free_head, &m->free_head,
                                  &m->free_count);
        if (rc == SOMBRA_OK)
                rc = pager_flush(s->pager);
        m->npages = pager_npages(s->pager);
        return rc == SOMBRA_OK ? SOMBRA_OK : store_fail(s, rc);
}

/* The second half, on any thread: the meta page, durable after every page it reaches. */
static int
checkpoint_sync(struct store *s, const struct meta *m)
{
        int rc = io_sync(&s->file);

        if (rc == SOMBRA_OK)
                rc = meta_write(s, m);
        if (rc == SOMBRA_OK)
                rc = io_sync(&s->file);
        return rc;
}

/*
 * Writer, after a checkpoint's sync or meta write failed. A page written
 * since the last checkpoint may then never reach the disk, and the kernel
 * may drop it from its cache, so a note could describe pages the file no
 * longer holds: a restart record after the notes voids them (best effort:
 * the store fails either way, and the next open replays the whole log).
 */
static int
checkpoint_failed(struct store *s, int rc)
{
        if (wal_flush(&s->wal) == SOMBRA_OK)
                (void)wal_restart(&s->wal);
        return store_fail(s, rc);
}

/*
 * Writer, once m is durable: it is the store's meta page, and pages that no
 * meta page on file reaches any more go free. Those the older slot reaches
 * stay until the next checkpoint: open falls back to that slot when the
 * newer one is damaged.
 */
static void
checkpoint_complete(struct store *s, const struct meta *m, uint64_t started_ns, uint64_t ended_ns)
{
        uint64_t took_ns = ended_ns - started_ns;

        s->meta = *m;
        readers_look(s);
        pager_checkpoint_done(s->pager);
        s->st.checkpoints++;
        s->st.checkpoint_ns += took_ns;
        if (took_ns > s->st.checkpoint_max_ns)
                s->st.checkpoint_max_ns = took_ns;
}

/*
 * A checkpoint on the writer, which starts a new WAL generation; with
 * `fresh`, also when nothing changed since the last one. A background
 * checkpoint under way finishes first. In a read-only store it all happens
 * in private memory (a backup copies it from there).
 */
static int
checkpoint(struct store *s, bool fresh)
{
        uint64_t started_ns = clock_now_ns();
        struct meta m;
        int rc;

        if (s->in_txn || s->backups > 0)
                return SOMBRA_EBUSY;
        (void)store_publish_settle(s);          /* its pages must be in the file */
        (void)store_checkpoint_settle(s, true); /* one at a time; failures are sticky */
        if (store_failure(s) != SOMBRA_OK)
                return SOMBRA_EFAILED;
        if (!fresh && s->committed.lsn == s->meta.ckpt_lsn && wal_size(&s->wal) == 0)
                return SOMBRA_OK; /* nothing since the last one */
        rc = checkpoint_prepare(s, true, &m);
        if (rc != SOMBRA_OK)
                return rc;
        rc = checkpoint_sync(s, &m);
        if (rc != SOMBRA_OK)
                return checkpoint_failed(s, rc);
        checkpoint_complete(s, &m, started_ns, clock_now_ns());
        /* Everything up to ckpt_lsn is durable through the meta page now. */
        __atomic_store_n(&s->wal.written_lsn, m.ckpt_lsn, __ATOMIC_RELEASE);
        __atomic_store_n(&s->wal.synced_lsn, m.ckpt_lsn, __ATOMIC_RELEASE);
        rc = wal_reset(&s->wal, m.ckpt_lsn + 1, m.wal_salt, m.gen);
        if (rc != SOMBRA_OK)
                return store_fail(s, rc);
        return SOMBRA_OK;
}

void
store_set_background_checkpoints(struct store *s, bool on)
{
        s->background_ckpts = on;
}

int
store_checkpoint_begin(struct store *s, struct store_ckpt **out)
{
        struct store_ckpt *c = &s->ckpt;
        int rc;

        *out = NULL;
        if (s->checkpointing || s->in_txn || s->backups > 0 || s->cfg.read_only ||
            wal_since_checkpoint(s) < s->cfg.checkpoint_threshold)
                return SOMBRA_OK;
        (void)store_publish_settle(s); /* its pages must be in the file; a failure is sticky */
        if (store_failure(s) != SOMBRA_OK)
                return SOMBRA_EFAILED;
        c->started_ns = clock_now_ns();
        rc = checkpoint_prepare(s, false, &c->m);
        if (rc != SOMBRA_OK)
                return rc;
        c->rc = SOMBRA_OK;
        c->done = FUTEX_ONCE_PENDING;
        s->checkpointing = true;
        *out = c;
        return SOMBRA_OK;
}

void
store_checkpoint_write(struct store *s, struct store_ckpt *c)
{
        c->rc = checkpoint_sync(s, &c->m);
        c->ended_ns = clock_now_ns();
        futex_once_set(&c->done);
}

int
store_checkpoint_settle(struct store *s, bool wait)
{
        struct store_ckpt *c = &s->ckpt;

        /* In a txn, pages must not go free under it: its abort gives its own back. */
        if (!s->checkpointing || (!wait && (s->in_txn || !futex_once_is_done(&c->done))))
                return SOMBRA_OK;
        futex_once_wait(&c->done);
        s->checkpointing = false;
        if (c->rc != SOMBRA_OK)
                return checkpoint_failed(s, c->rc);
        checkpoint_complete(s, &c->m, c->started_ns, c->ended_ns);
        return SOMBRA_OK;
}

int
store_checkpoint(struct store *s)
{
        return s->cfg.read_only ? SOMBRA_EREADONLY : checkpoint(s, false);
}

/*
 * Backups. After a checkpoint the file's first meta.npages pages hold the
 * committed state completely: the newest meta page, every page it reaches
 * and its free list. Until the next checkpoint nothing writes over them:
 * commits, publishes and cache spills only write pages that meta lists as
 * free or that later transactions allocated, and pages retired since the
 * checkpoint become reusable only when the next one is durable. So while
 * `backups` holds checkpoints off, any thread may copy those bytes and get a
 * database that opens at exactly that commit, and writers carry on (their
 * commits go to the WAL, which grows past checkpoint_threshold meanwhile).
 */
int
store_backup_begin(struct store *s, uint64_t *bytes)
{
        int rc = checkpoint(s, false);

        if (rc != SOMBRA_OK)
                return rc;
        if (s->backups++ == 0)
                s->backup_id = wal_random(s->meta.db_id);
        *bytes = s->meta.npages * s->meta.page_size;
        return SOMBRA_OK;
}

void
store_backup_end(struct store *s)
{
        assert(s->backups > 0);
        s->backups--;
}

/*
 * The copy's newest meta page gets a database id of its own: a `-wal` found
 * beside the copy later (the source's, say, after a restore over it) is then
 * refused, never replayed onto it.
 */
int
store_backup_read(struct store *s, void *buf, size_t len, uint64_t off)
{
        uint64_t at = (s->meta.gen % 2) * s->meta.page_size, lo, hi;
        uint8_t page[META_SIZE];
        struct meta m = s->meta;
        int rc = io_read(&s->file, buf, len, off);

        if (rc != SOMBRA_OK || off >= at + META_SIZE || off + len <= at)
                return rc;
        m.db_id = s->backup_id;
        meta_encode(&m, page);
        /* The part of the meta page's encoding that [off, off + len) covers. */
        lo = off > at ? off : at;
        hi = off + len < at + META_SIZE ? off + len : at + META_SIZE;
        memcpy((uint8_t *)buf + (lo - off), page + (lo - at), hi - lo);
        return SOMBRA_OK;
}

/* Scratch for rewriting an older file's entries in the compact formats. */
struct upgrade {
        struct rec rec;
        struct buf val;
        uint8_t key[REC_ADJ_KEY_MAX], adj_val[REC_ID_MAX];
};

/* A fixed-format node or edge record in *val, re-encoded compact. */
static int
record_upgrade(struct upgrade *u, enum store_tree t, struct buf *val)
{
        struct buf old;
        int rc = t == TREE_NODES ? rec_decode_node(&u->rec, val->data, val->len)
                                 : rec_decode_edge(&u->rec, val->data, val->len);

        if (rc == SOMBRA_OK)
                rc = t == TREE_NODES ? rec_encode_node(&u->rec, &u->val)
                                     : rec_encode_edge(&u->rec, &u->val);
        if (rc != SOMBRA_OK)
                return rc;
        old = *val; /* the new encoding becomes val; val the next scratch */
        *val = u->val;
        u->val = old;
        return SOMBRA_OK;
}

/* A fixed key of the nodes, edges, labels or adj tree made compact in u->key. */
static int
key_upgrade(struct upgrade *u, enum store_tree t, const uint8_t **key, size_t *klen,
            struct buf *val)
{
        struct rec_adj a;
        uint64_t id;
        uint32_t label;
        size_t n = 0;
        int rc;

        switch (t) {
        case TREE_NODES:
        case TREE_EDGES:
                rc = rec_id_decode(*key, *klen, false, &id);
                if (rc == SOMBRA_OK)
                        n = rec_id(u->key, true, id);
                break;
        case TREE_LABELS:
                rc = rec_label_key_decode(*key, *klen, false, &label, &id);
                if (rc == SOMBRA_OK)
                        n = rec_label_key(u->key, true, label, &id);
                break;
        case TREE_ADJ:
                rc = rec_adj_key_decode(*key, *klen, false, &a);
                if (rc == SOMBRA_OK)
                        rc = rec_id_decode(val->data, val->len, false, &id);
                if (rc == SOMBRA_OK) {
                        n = rec_adj_key(u->key, true, &a);
                        buf_reset(val);
                        rc = buf_append(val, u->adj_val, rec_id(u->adj_val, true, id));
                }
                break;
        default:
                return SOMBRA_OK;
        }
        if (rc == SOMBRA_OK) {
                *key = u->key;
                *klen = n;
        }
        return rc;
}

/*
 * Points *key and *val at the entry as a file of format 6 holds it: a
 * fixed-format node or edge record re-encoded compact, the fixed keys of
 * an older file (and the adj tree's value) made compact (record.h). Both
 * key formats sort as their fields, so the converted keys come in key
 * order as the old ones did. Other entries are left as they are.
 */
static int
entry_upgrade(struct upgrade *u, enum store_tree t, bool compact_keys, const uint8_t **key,
              size_t *klen, struct buf *val)
{
        int rc = SOMBRA_OK;

        if ((t == TREE_NODES || t == TREE_EDGES) && val->len > 0 && val->data[0] != REC_COMPACT)
                rc = record_upgrade(u, t, val);
        if (rc == SOMBRA_OK && !compact_keys)
                rc = key_upgrade(u, t, key, klen, val);
        return rc;
}

/*
 * A compacting copy of the held image. Its pages, read through a pager of
 * our own (checksums checked), do not change while the hold lasts, so any
 * thread may walk its trees: each is rebuilt bottom-up in key order
 * (btree_build) from page 2 on, leaving no free page. The copy's meta pages
 * keep the held one's state, generation, LSN and WAL salt, like a plain
 * backup's: its pages carry that LSN as their txn, so they all count as
 * checkpointed. Both slots are written, the other one with the generation
 * before, as db_create does, so that either can be damaged. The copy of an
 * older file is written in the compact formats (entry_upgrade, and varint
 * leaf cells): format 6.
 */
int
store_backup_compact(struct store *s, struct io_file *dest)
{
        struct meta m = s->meta;
        struct btree_build_out out = {dest, m.page_size, m.ckpt_lsn, 2, PAGE_CELLS_VARINT};
        struct pager *image = NULL;
        struct upgrade u = {REC_INIT, BUF_INIT, {0}, {0}};
        struct buf val = {0};
        uint8_t *page = NULL;
        int rc = pager_create(&s->file, m.page_size, SOMBRA_MIN_CACHE_PAGES, true, m.npages,
                              m.ckpt_lsn, &image);

        if (rc == SOMBRA_OK)
                pager_set_leaf_cells(image, meta_leaf_cells(&m));

        for (int t = 0; rc == SOMBRA_OK && t < STORE_TREES; t++) {
                struct btree_builder *b;
                struct btree_cursor c;
                rc = btree_build_begin(&out, &b);
                if (rc != SOMBRA_OK)
                        break;
                btree_cursor_init(&c, image, s->meta.st.roots[t]);
                for (rc = btree_cursor_seek(&c, NULL, 0); rc == SOMBRA_OK && btree_cursor_valid(&c);
                     rc = btree_cursor_next(&c)) {
                        const uint8_t *key;
                        size_t klen;
                        btree_cursor_key(&c, &key, &klen);
                        rc = btree_cursor_value(&c, &val);
                        if (rc == SOMBRA_OK)
                                rc = entry_upgrade(&u, t, s->compact_keys, &key, &klen, &val);
                        if (rc == SOMBRA_OK)
                                rc = btree_build_add(b, key, klen, val.data, val.len);
                        if (rc != SOMBRA_OK)
                                break;
                }
                btree_cursor_close(&c);
                if (rc == SOMBRA_OK)
                        rc = btree_build_end(b, &m.st.roots[t]);
                else
                        btree_build_abort(b);
        }
        m.npages = out.next;
        m.free_head = PGNO_NONE;
        m.free_count = 0;
        m.db_id = s->backup_id;
        m.version = META_VERSION;
        if (rc == SOMBRA_OK && (page = calloc(1, m.page_size)) == NULL)
                rc = SOMBRA_ENOMEM;
        for (uint64_t older = 0; rc == SOMBRA_OK && older < 2 && older <= m.gen; older++) {
                struct meta slot = m;
                slot.gen -= older;
                meta_encode(&slot, page);
                rc = io_write(dest, page, m.page_size, (slot.gen % 2) * m.page_size);
        }
        free(page);
        buf_free(&val);
        buf_free(&u.val);
        rec_free(&u.rec);
        pager_destroy(image);
        return rc;
}

struct io_faults *
store_faults(const struct store *s)
{
        return s->faults;
}

/* ---- recovery ---- */

/*
 * Applies the ops of a logged commit (the payload of its record) to the open
 * txn's trees without logging them again (s->replaying), and sets the txn's
 * counters from it: recovery's replay and a group's redo.
 */
static int
payload_apply(struct store *s, const uint8_t *p, size_t len)
{
        struct store_state *st = &s->txn;
        size_t off = PAYLOAD_STATE;
        uint32_t nops;
        int rc = SOMBRA_OK;

        if (len < PAYLOAD_STATE)
                return SOMBRA_ECORRUPT;
        nops = get_be32(p + 36);
        for (uint32_t i = 0; i < nops && rc == SOMBRA_OK; i++) {
                uint8_t kind, tree;
                uint16_t klen;
                uint32_t vlen;
                if (len - off < OP_HDR)
                        return SOMBRA_ECORRUPT;
                kind = p[off];
                tree = p[off + 1];
                klen = get_be16(p + off + 2);
                vlen = get_be32(p + off + 4);
                off += OP_HDR;
                if (tree >= STORE_TREES || len - off < (size_t)klen + vlen ||
                    (kind != OP_PUT && kind != OP_DEL))
                        return SOMBRA_ECORRUPT;
                if (kind == OP_PUT)
                        rc = store_put(s, tree, p + off, klen, p + off + klen, vlen);
                else
                        rc = store_del(s, tree, p + off, klen);
                off += (size_t)klen + vlen;
        }
        if (rc == SOMBRA_OK && off != len)
                rc = SOMBRA_ECORRUPT;
        if (rc != SOMBRA_OK)
                return rc == SOMBRA_ENOTFOUND || rc == SOMBRA_EINVAL ? SOMBRA_ECORRUPT : rc;
        st->next_node = get_be64(p);
        st->next_edge = get_be64(p + 8);
        st->nodes = get_be64(p + 16);
        st->edges = get_be64(p + 24);
        st->next_name = get_be32(p + 32);
        return SOMBRA_OK;
}

/*
 * Applies one logged commit. Recovery applies them all inside one
 * transaction, which recover() commits at the end: nobody can read the
 * states in between, so each page is copied once, not once per commit. The
 * transaction's LSN follows the records'.
 */
static int
replay_record(void *arg, const struct wal_record *r)
{
        struct store *s = arg;
        int rc = SOMBRA_OK;

        if (r->type != WAL_REC_COMMIT)
                return SOMBRA_OK;
        if (r->len < PAYLOAD_STATE || r->lsn != (s->in_txn ? s->txn.lsn : s->committed.lsn) + 1)
                return SOMBRA_ECORRUPT;
        if (!s->in_txn)
                rc = store_begin(s);
        if (rc != SOMBRA_OK)
                return rc;
        s->txn.lsn = r->lsn;
        return payload_apply(s, r->payload, r->len); /* recover() rolls it all back on failure */
}

static int
redo_record(void *arg, const uint8_t *p, size_t len)
{
        return payload_apply(arg, p, len);
}

/*
 * Undoes a rolled-back txn of the group (txn_discard): aborts the group's
 * pager txn, which drops every page the group wrote, and applies the
 * group's commits again from their records, which wait in the WAL's pending
 * buffer until store_flush_log (a checkpoint, which flushes it, ends the
 * group first). The committed state gets the new roots; its counters were
 * right already. A failure here leaves memory and the log disagreeing: the
 * store fails.
 */
static int
group_redo(struct store *s)
{
        int rc;

        pager_txn_abort(s->pager);
        pager_txn_begin(s->pager, s->group_base.lsn + 1);
        hints_clear(s);
        s->txn = s->group_base;
        s->poisoned = SOMBRA_OK;
        s->replaying = true;
        rc = wal_pending_each(&s->wal, s->group_base.lsn, redo_record, s);
        s->replaying = false;
        if (rc != SOMBRA_OK)
                return store_fail(s, rc);
        memcpy(s->committed.roots, s->txn.roots, sizeof(s->committed.roots));
        s->st.group_redos++;
        return SOMBRA_OK;
}

/* Checks a record of an older WAL generation: it must be in the checkpoint already. */
static int
older_record(void *arg, const struct wal_record *r)
{
        (void)arg;
        /* Called for commits only after the checkpoint's LSN; notes say nothing here. */
        return r->type == WAL_REC_COMMIT ? SOMBRA_ECORRUPT : SOMBRA_OK;
}

/*
 * Which WAL generation is on file, against the meta page's:
 *   - the one it names (same salt): replayed;
 *   - an older one (the checkpoint's WAL reset did not reach the disk): its
 *     records are all in the checkpoint already, and it is dropped;
 *   - a newer one: it continues a checkpoint this file does not have (the
 *     file was replaced by an older copy, or its newest meta page is
 *     damaged): SOMBRA_ECORRUPT, since replaying would skip commits;
 *   - the same checkpoint but another salt: another copy's log, SOMBRA_EWAL;
 *   - none (an empty log): nothing to replay.
 */
static int
wal_generation_check(const struct store *s, bool *current)
{
        const struct wal *w = &s->wal;

        *current = w->salt != 0 && w->salt == s->meta.wal_salt;
        if (*current && s->meta.wal_from.off != 0) /* a checkpoint within the generation */
                return w->base_lsn <= s->meta.ckpt_lsn + 1 ? SOMBRA_OK : SOMBRA_ECORRUPT;
        if (w->salt == 0 || *current)
                return *current && w->base_lsn != s->meta.ckpt_lsn + 1 ? SOMBRA_ECORRUPT
                                                                       : SOMBRA_OK;
        if (w->ckpt_gen > s->meta.gen)
                return SOMBRA_ECORRUPT;
        return w->ckpt_gen == s->meta.gen ? SOMBRA_EWAL : SOMBRA_OK;
}

/*
 * Recovery's first pass: the last usable note, and the places of the
 * commits after its state (which may come before the note: the writer notes
 * a publication once its pages are written, by when later commits may be in
 * the log). A restart record voids the notes before it: recovery writes one
 * before it replays the log onto pages that a note's state may still use
 * (recover_from_note). At most NOTE_TAIL places are kept; a note whose
 * first commit after it is no longer among them is not used.
 */
#define NOTE_TAIL 4096u

struct note_scan {
        struct store *s;
        uint8_t note[NOTE_LEN]; /* the last usable one, if `found` */
        bool found;
        bool voidable;     /* since the last restart: a note that a later open could use */
        uint64_t last_lsn; /* of the last commit read */
        struct wal_pos *tail;
        size_t ntail;
};

/* A note this file can be trusted to hold: this boot, this file, a state past the checkpoint. */
static bool
note_usable(const struct note_scan *ns, const struct wal_record *r)
{
        const struct store *s = ns->s;
        const uint8_t *b = r->payload;
        uint64_t lsn;

        if (r->len != NOTE_LEN || get_be32(b) != NOTE_PUBLISHED)
                return false;
        lsn = get_be64(b + 8);
        return lsn > s->meta.ckpt_lsn && lsn <= ns->last_lsn &&
               get_be64(b + 16) >= s->meta.npages && get_be64(b + NOTE_ID) == s->identity.boot &&
               get_be64(b + NOTE_ID + 8) == s->identity.dev &&
               get_be64(b + NOTE_ID + 16) == s->identity.file;
}

/* Keeps the place of a commit; when the list is full, the older half goes, and a note with it. */
static void
note_scan_commit(struct note_scan *ns, const struct wal_record *r)
{
        ns->last_lsn = r->lsn;
        if (ns->ntail == NOTE_TAIL) {
                memmove(ns->tail, ns->tail + NOTE_TAIL / 2, NOTE_TAIL / 2 * sizeof(*ns->tail));
                ns->ntail = NOTE_TAIL / 2;
                ns->found = false; /* its first commit after it is gone */
        }
        ns->tail[ns->ntail++] = r->at;
}

static int
note_scan_record(void *arg, const struct wal_record *r)
{
        struct note_scan *ns = arg;
        size_t drop = 0;
        uint64_t lsn;

        if (r->type == WAL_REC_COMMIT) {
                note_scan_commit(ns, r);
                return SOMBRA_OK;
        }
        if (r->type == WAL_REC_RESTART) {
                ns->found = ns->voidable = false;
                return SOMBRA_OK;
        }
        /*
         * Any note past the checkpoint might be trusted by a later open (with
         * an identity this one lacks, or by a build that reads another note
         * layout), so a replay onto its pages must void it.
         */
        if (r->len >= NOTE_STATE && get_be64(r->payload + 8) > ns->s->meta.ckpt_lsn)
                ns->voidable = true;
        if (!note_usable(ns, r))
                return SOMBRA_OK;
        lsn = get_be64(r->payload + 8);
        while (drop < ns->ntail && ns->tail[drop].lsn <= lsn)
                drop++;
        memmove(ns->tail, ns->tail + drop, (ns->ntail - drop) * sizeof(*ns->tail));
        ns->ntail -= drop;
        /* The replay after it must start at its next commit: kept, or not read yet. */
        ns->found = ns->ntail > 0 ? ns->tail[0].lsn == lsn + 1 : ns->last_lsn == lsn;
        memcpy(ns->note, r->payload, NOTE_LEN);
        return SOMBRA_OK;
}

/* Takes over the noted state, when the file holds it (adopt.h): *adopted says whether it did. */
static int
note_adopt(struct store *s, const uint8_t *b, bool *adopted)
{
        struct adopt_plan plan = ADOPT_PLAN_INIT;
        struct pager *walker = NULL;
        struct store_state st = {0};
        uint64_t npages = get_be64(b + 16);
        int rc;

        *adopted = false;
        if (state_decode(&st, b + NOTE_STATE) != SOMBRA_OK ||
            pager_adopt_begin(s->pager, npages) != SOMBRA_OK)
                return SOMBRA_OK; /* it changed nothing: the log is replayed */
        st.lsn = get_be64(b + 8);
        rc = pager_walker_open(s->pager, &walker);
        if (rc == SOMBRA_OK)
                rc = adopt_plan_make(walker, s->meta.st.roots, s->meta.ckpt_lsn, st.roots,
                                     STORE_TREES, st.lsn, &plan);
        pager_reader_close(walker);
        if (rc == SOMBRA_OK)
                rc = pager_adopt(s->pager, &plan.reached, plan.retired, plan.nretired);
        else
                rc = SOMBRA_ECORRUPT; /* could not tell: the same as not holding it */
        adopt_plan_free(&plan);
        if (rc == SOMBRA_ECORRUPT) { /* nothing taken over: the log is replayed instead */
                pager_adopt_cancel(s->pager);
                return SOMBRA_OK;
        }
        if (rc != SOMBRA_OK)
                return rc;
        s->committed = st;
        s->st.adopted = st.lsn;
        *adopted = true;
        return SOMBRA_OK;
}

/* Reads the log from `at` (NULL: its start) for the last usable note; counts what it read. */
static int
note_scan(struct store *s, const struct wal_pos *at, struct note_scan *ns, uint64_t *applied)
{
        uint64_t first = at != NULL ? at->lsn : s->wal.base_lsn;
        int rc;

        ns->found = ns->voidable = false;
        ns->ntail = 0;
        ns->last_lsn = first > 0 ? first - 1 : 0;
        rc = wal_replay(&s->wal, at, s->meta.ckpt_lsn, note_scan_record, ns, applied);
        if (rc == SOMBRA_OK)
                s->st.scanned += s->wal.end - (at != NULL ? at->off : WAL_HDR);
        return rc;
}

/*
 * Recovery after a crash of the process alone: the last state noted in the
 * log (note_published) is taken over from the file as it stands, and only
 * the commits after it are replayed. *adopted false: nothing was taken over
 * (no usable note, or the file does not hold its state), and the caller
 * replays the whole log as usual. *applied counts the commits replayed.
 */
static int
recover_from_note(struct store *s, const struct wal_pos *from, uint64_t *applied, bool *adopted)
{
        struct note_scan ns = {.s = s, .tail = malloc(NOTE_TAIL * sizeof(*ns.tail))};
        struct wal_pos start = {WAL_HDR, 0, s->wal.base_lsn}, hinted, rest;
        int rc = ns.tail == NULL ? SOMBRA_ENOMEM : SOMBRA_OK;
        bool hint = false, refused;

        *adopted = false;
        if (rc == SOMBRA_OK)
                rc = hint_read(s, from != NULL ? from : &start, &hinted, &hint);
        /* From the WAL hint first: the log before it is then never read. */
        if (rc == SOMBRA_OK && hint) {
                rc = note_scan(s, &hinted, &ns, applied);
                if (rc == SOMBRA_OK && ns.found)
                        rc = note_adopt(s, ns.note, adopted);
        }
        /*
         * Else from the checkpoint, which also finds where the log ends and
         * what a full replay must void. A note refused from the hint would
         * be found again: the last usable one is the same from either place.
         */
        refused = ns.found;
        if (rc == SOMBRA_OK && !*adopted) {
                rc = note_scan(s, from, &ns, applied);
                if (rc == SOMBRA_OK && ns.found && !refused)
                        rc = note_adopt(s, ns.note, adopted);
        }
        wal_position(&s->wal, &rest); /* after the last intact record */
        if (rc == SOMBRA_OK && *adopted)
                rc = wal_replay(&s->wal, ns.ntail > 0 ? &ns.tail[0] : &rest, s->committed.lsn,
                                replay_record, s, applied);
        /*
         * The whole log is replayed instead, and the replay may write over
         * pages of a noted state with pages no newer than it: a restart,
         * synced before, keeps the next recovery from trusting that note.
         */
        else if (rc == SOMBRA_OK && ns.voidable)
                rc = wal_restart(&s->wal);
        free(ns.tail);
        return rc;
}

/*
 * Replays the WAL generation the meta page names onto the checkpointed
 * state, and leaves the log ready for the next commit:
 *   - when the log on file is not that generation (older, empty, or with a
 *     damaged header), a checkpoint starts a new one that the meta page
 *     names;
 *   - when reading stopped short of the end of the file (a tear, or an
 *     older generation's leftovers), a restart record goes there, synced,
 *     before anything is appended: a new record written over a tear could
 *     otherwise line up with an intact older one beyond it (wal.h);
 *   - when records were replayed, they are synced, so that what this open
 *     showed is on disk before anyone builds on it.
 * Replayed commits stay in the log until the next checkpoint, as they were
 * before the crash: open does not wait for a checkpoint.
 */
static int
recover_log(struct store *s)
{
        const struct wal_pos *from;
        uint64_t applied = 0;
        bool current, adopted = false;
        int rc;

        /*
         * A header that fails its checksum: most likely a checkpoint's reset
         * torn by a crash, with nothing after it; but if records of the
         * generation the meta page names follow, they are replayed.
         */
        if (s->wal.damaged)
                wal_adopt(&s->wal, s->meta.ckpt_lsn + 1, s->meta.wal_salt, s->meta.gen);
        rc = wal_generation_check(s, &current);
        if (rc != SOMBRA_OK)
                return rc;
        s->replaying = current;
        from = current && s->meta.wal_from.off != 0 ? &s->meta.wal_from : NULL;
        if (current && !s->wal.damaged && !s->cfg.read_only)
                rc = recover_from_note(s, from, &applied, &adopted);
        if (rc == SOMBRA_OK && !adopted)
                rc = wal_replay(&s->wal, from, s->meta.ckpt_lsn,
                                current ? replay_record : older_record, s, &applied);
        if (rc == SOMBRA_OK && s->in_txn)
                rc = store_commit(s, NULL);
        store_rollback(s); /* after a failure */
        s->replaying = false;
        if (rc != SOMBRA_OK)
                return rc;
        /*
         * A damaged header that names another database, with no record of
         * ours behind it: most likely that database's log. Not ours to
         * overwrite. (A reset torn by a crash leaves our id or zeros.)
         */
        if (s->wal.damaged && applied == 0 && s->wal.damaged_id != 0 &&
            s->wal.damaged_id != s->meta.db_id)
                return SOMBRA_EWAL;
        s->st.replayed = applied;
        rc = store_publish(s);
        if (rc != SOMBRA_OK)
                return rc;
        if (!current || s->wal.damaged)
                return checkpoint(s, true);
        if (!s->wal.at_end)
                return wal_restart(&s->wal);
        if (applied > 0 || adopted)
                return wal_sync(&s->wal);
        return SOMBRA_OK;
}

/*
 * recover_log, reading the log into a run of the page arena: an open's
 * fresh 4 KiB pages of the C heap cost a fault each, a run none of its own
 * (pager_run_get). Without one, the replays use buffers of their own.
 */
static int
recover(struct store *s)
{
        size_t n = (WAL_READ_CHUNK + s->meta.page_size - 1) / s->meta.page_size;
        uint8_t *window = pager_run_get(s->pager, n);
        int rc;

        wal_lend_window(&s->wal, window, n * s->meta.page_size);
        rc = recover_log(s);
        wal_lend_window(&s->wal, NULL, 0);
        pager_run_put(s->pager, window, n);
        return rc;
}

/*
 * The WAL's name: the database's path with symlinks resolved, so that the
 * log sits beside the file itself whichever link opened it. *out is malloc'd.
 */
static int
wal_path_of(const char *path, char **out)
{
        char *real = realpath(path, NULL);
        size_t len;

        if (real == NULL)
                return errno == ENOMEM ? SOMBRA_ENOMEM : io_status_from_errno(errno);
        len = strlen(real);
        *out = malloc(len + sizeof("-wal"));
        if (*out != NULL) {
                memcpy(*out, real, len);
                memcpy(*out + len, "-wal", sizeof("-wal"));
        }
        free(real);
        return *out != NULL ? SOMBRA_OK : SOMBRA_ENOMEM;
}

/*
 * Opens the WAL beside the database. A new log file's directory entry is
 * made durable at once. A new database's log gets the generation its meta
 * page names, synced, so that the first open needs no checkpoint, and its
 * first room (wal.h), so that the first commits' syncs carry no new size.
 */
static int
wal_attach(struct store *s, const char *path, bool create)
{
        char *wal_path = NULL;
        int rc = wal_path_of(path, &wal_path);

        if (rc == SOMBRA_OK)
                rc = wal_open(&s->wal, wal_path, s->meta.db_id, s->faults);
        if (rc == SOMBRA_OK && s->wal.created)
                rc = io_sync_dir_of(wal_path, s->faults);
        if (rc == SOMBRA_OK && create && s->wal.salt == 0) {
                rc = wal_reset(&s->wal, s->meta.ckpt_lsn + 1, s->meta.wal_salt, s->meta.gen);
                if (rc == SOMBRA_OK)
                        (void)wal_reserve(&s->wal, WAL_ROOM_MIN); /* only speed is lost */
                if (rc == SOMBRA_OK)
                        rc = io_sync(&s->wal.file);
        }
        free(wal_path);
        return rc;
}

/* The newest meta page of a file another process may be writing. */
static int
meta_read_live(struct store *s, struct meta *m)
{
        uint64_t size;
        bool unfinished = false;
        int rc = io_size(&s->file, &size);

        if (rc == SOMBRA_OK && size == 0)
                return SOMBRA_ENOTDB;
        if (rc == SOMBRA_OK)
                rc = meta_read(s, size, m, &unfinished);
        /* A creation that never finished holds nothing, and only an owner finishes it. */
        return rc == SOMBRA_OK && unfinished ? SOMBRA_ENOTDB : rc;
}

/*
 * A file with a format 3 or 2 meta slot gets both slots rewritten in format
 * 4 or 5 before anything is written in the compact formats: two
 * checkpoints, one for each slot. Otherwise a library that knows only
 * format 3 would skip the upgraded slot as damaged and open the other, the
 * state before the last checkpoint, and its own checkpoints would then
 * write over the newer one. With both slots upgraded it refuses the file.
 */
static int
meta_upgrade(struct store *s)
{
        int rc = SOMBRA_OK;

        if (s->meta.version < META_V4_VERSION) /* what the checkpoints write */
                s->meta.version = META_V4_VERSION;
        for (int slot = 0; slot < 2 && rc == SOMBRA_OK; slot++)
                rc = checkpoint(s, true);
        return rc;
}

/*
 * One try at pinning the newest checkpoint (see the reader locks above) and
 * opening the log that continues it. SOMBRA_EAGAIN when the owner moved on
 * meanwhile; nothing is held then, nor after any other failure.
 */
static int
reader_try_pin(struct store *s, const char *wal_path)
{
        struct meta now;
        int rc = meta_read_live(s, &s->meta);

        if (rc != SOMBRA_OK)
                return rc;
        rc = io_range_share(&s->file, READER_LOCK_BASE + s->meta.gen);
        if (rc != SOMBRA_OK)
                return rc;
        rc = meta_read_live(s, &now);
        if (rc == SOMBRA_OK && now.gen != s->meta.gen)
                rc = SOMBRA_EAGAIN;
        if (rc == SOMBRA_OK)
                rc = wal_open_private(&s->wal, wal_path, s->meta.db_id);
        /* A log that a later checkpoint started: the one continuing ours is gone. */
        if (rc == SOMBRA_OK && s->wal.salt != 0 && s->wal.ckpt_gen > s->meta.gen) {
                wal_close(&s->wal);
                rc = SOMBRA_EAGAIN;
        }
        if (rc != SOMBRA_OK)
                io_range_unshare(&s->file, READER_LOCK_BASE + s->meta.gen);
        return rc;
}

/*
 * The address space a read-only open reserves for its private copy of the
 * file, at least (twice the file when that is more): the pages its replay
 * of the log adds go there, and unlike the readers' map it cannot grow.
 */
#define STORE_PRIVATE_BYTES (64ull << 30)

/*
 * Pins a checkpoint, retrying while the owner checkpoints under it (or a
 * meta page it is writing names pages past the length read a moment
 * before), then makes the file private with both meta slots written there:
 * the pinned one, and a blank in place of the one the owner will write next,
 * which a backup must not copy.
 */
static int
reader_attach(struct store *s, const char *path)
{
        char *wal_path = NULL;
        uint8_t *blank = NULL;
        uint64_t reserve;
        uint32_t tries = 0;
        int rc = wal_path_of(path, &wal_path);

        while (rc == SOMBRA_OK) {
                rc = reader_try_pin(s, wal_path);
                if ((rc == SOMBRA_EAGAIN || rc == SOMBRA_ECORRUPT) && ++tries < READER_PIN_TRIES)
                        rc = SOMBRA_OK;
                else
                        break;
        }
        free(wal_path);
        if (rc != SOMBRA_OK)
                return rc == SOMBRA_EAGAIN ? SOMBRA_EBUSY : rc;
        reserve = 2 * s->meta.npages * s->meta.page_size;
        rc = io_make_private(&s->file,
                             reserve > STORE_PRIVATE_BYTES ? reserve : STORE_PRIVATE_BYTES);
        if (rc == SOMBRA_OK)
                rc = meta_write(s, &s->meta);
        if (rc == SOMBRA_OK && (blank = calloc(1, s->meta.page_size)) == NULL)
                rc = SOMBRA_ENOMEM;
        if (rc == SOMBRA_OK)
                rc = io_write(&s->file, blank, s->meta.page_size,
                              ((s->meta.gen + 1) % 2) * s->meta.page_size);
        free(blank);
        return rc;
}

/* The owner's open: the file, its lock, and its newest meta page, creating what is missing. */
static int
owner_attach(struct store *s, const char *path, bool *create)
{
        uint64_t size;
        int rc = io_open(&s->file, path, true);

        if (rc != SOMBRA_OK)
                return rc;
        s->file.faults = s->faults;
        s->file.kind = IO_FILE_DB;
        rc = io_lock(&s->file);
        if (rc == SOMBRA_OK)
                rc = io_size(&s->file, &size);
        if (rc != SOMBRA_OK)
                return rc;
        *create = size == 0;
        if (!*create)
                rc = meta_read(s, size, &s->meta, create);
        if (rc == SOMBRA_OK && *create) {
                s->old_format = false; /* the slots meta_read saw are not the file's */
                rc = db_create(s, path);
        }
        return rc;
}

int
store_open(const char *path, const struct sombra_config *cfg, struct io_faults *faults,
           struct store **out)
{
        struct store *s;
        bool create = false; /* a new file, or one whose creation a crash cut short */
        int rc;

        if (path == NULL || out == NULL)
                return SOMBRA_EINVAL;
        s = calloc(1, sizeof(*s));
        if (s == NULL)
                return SOMBRA_ENOMEM;
        s->file.fd = -1;
        s->wal.file.fd = s->wal.grow_file.fd = -1;
        s->autopublish = true;
        if (cfg != NULL)
                s->cfg = *cfg;
        else
                sombra_config_production(&s->cfg);
        s->faults = faults;
        /* A slot per pooled connection, plus a few for the engine's own readers. */
        s->nslots = s->cfg.max_connections + 8;
        s->slots = calloc(s->nslots, sizeof(*s->slots));
        if (s->slots == NULL) {
                rc = SOMBRA_ENOMEM;
                goto label_fail;
        }
        if (s->cfg.read_only) {
                rc = io_open_readonly(&s->file, path);
                s->file.kind = IO_FILE_DB;
                if (rc == SOMBRA_OK)
                        rc = reader_attach(s, path);
        } else {
                rc = owner_attach(s, path, &create);
                /* Without it, no note is written or believed: recovery replays the whole log. */
                if (rc == SOMBRA_OK && io_identity(&s->file, &s->identity) != SOMBRA_OK)
                        s->identity.boot = 0;
        }
        if (rc != SOMBRA_OK)
                goto label_fail;
        s->compact_keys = s->meta.version >= META_V5_VERSION;
        s->committed = s->meta.st;
        rc = pager_create(&s->file, s->meta.page_size, s->cfg.page_cache_size, s->cfg.checksums,
                          s->meta.npages, s->meta.ckpt_lsn, &s->pager);
        if (rc == SOMBRA_OK) {
                pager_set_leaf_cells(s->pager, meta_leaf_cells(&s->meta));
                readers_look(s); /* before the free list becomes reusable */
                rc = pager_freelist_load(s->pager, s->meta.free_head, s->meta.free_count,
                                         s->older_meta);
        }
        if (rc == SOMBRA_OK && !s->cfg.read_only)
                rc = wal_attach(s, path, create);
        if (rc == SOMBRA_OK)
                rc = recover(s);
        if (rc == SOMBRA_OK && s->old_format && !s->cfg.read_only)
                rc = meta_upgrade(s);
        if (rc != SOMBRA_OK)
                goto label_fail;
        *out = s;
        return SOMBRA_OK;
label_fail:
        /*
         * A database that failed to come into being goes back to the empty
         * file it was, so that the next open creates it again instead of
         * finding a half-written one corrupt. Nothing was ever committed to it.
         */
        if (create && s->file.fd >= 0)
                (void)io_truncate(&s->file, 0);
        if (create && s->wal.file.fd >= 0)
                (void)io_truncate(&s->wal.file, 0); /* open only if it was empty or ours */
        s->failed = rc; /* close must not checkpoint a store that never opened */
        store_close(s);
        return rc;
}

/*
 * The checkpoint at close, and the new log generation's header made
 * durable: an open that falls back to the older meta page then finds a log
 * that does not continue it and refuses, so the next open may reuse at once
 * the pages only that page reached (store_open: older_meta). No other thread
 * syncs the WAL any more.
 */
static int
close_checkpoint(struct store *s)
{
        int rc = store_checkpoint(s);

        return rc == SOMBRA_OK ? io_sync(&s->wal.file) : rc;
}

int
store_close(struct store *s)
{
        int rc = SOMBRA_OK;

        if (s == NULL)
                return SOMBRA_EINVAL;
        (void)store_publish_settle(s); /* the pages must not be written after this */
        store_rollback(s);
        (void)store_checkpoint_settle(s, true); /* nor the meta page; a failure is sticky */
        if (s->cfg.read_only)
                rc = SOMBRA_OK; /* nothing of it was ever to reach the files */
        else if (s->failed == SOMBRA_OK && s->pager != NULL)
                rc = close_checkpoint(s);
        else if (s->pager != NULL)
                rc = SOMBRA_EFAILED; /* the caller learns that close could not make it durable */
        if (io_is_open(&s->wal.file))
                wal_close(&s->wal);
        pager_destroy(s->pager);
        io_close(&s->file); /* releases the reader lock of a read-only store */
        buf_free(&s->rec);
        while (s->published != NULL) {
                struct store_snapshot *older = s->published->older;
                free(s->published);
                s->published = older;
        }
        free(s->slots);
        free(s);
        return rc;
}

/* ---- introspection ---- */

struct pager *
store_pager(struct store *s)
{
        return s->pager;
}

uint32_t
store_page_size(const struct store *s)
{
        return s->meta.page_size;
}

bool
store_compact_keys(const struct store *s)
{
        return s->compact_keys;
}

void
store_stats(const struct store *s, struct store_stats *out)
{
        *out = s->st;
        out->wal_size = wal_since_checkpoint(s);
        out->wal_syncs = __atomic_load_n(&s->wal.syncs, __ATOMIC_RELAXED);
        out->written_lsn = __atomic_load_n(&s->wal.written_lsn, __ATOMIC_ACQUIRE);
        out->durable_lsn = __atomic_load_n(&s->wal.synced_lsn, __ATOMIC_ACQUIRE);
        out->checkpoint_lsn = s->meta.ckpt_lsn;
        out->file_bytes = pager_npages(s->pager) * s->meta.page_size;
}

uint64_t
store_durable_lsn(const struct store *s)
{
        return __atomic_load_n(&s->wal.synced_lsn, __ATOMIC_ACQUIRE);
}

int
store_failure(const struct store *s)
{
        return __atomic_load_n(&s->failed, __ATOMIC_ACQUIRE);
}

pgno_t
store_freelist_head(const struct store *s)
{
        return s->meta.free_head;
}
