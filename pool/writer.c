/*
 * writer.c - the writer thread: the only thread that changes the graph.
 *
 * Loop: take every request waiting in the connections' rings (one pass over
 * all of them is a group), apply each as its own transaction (sharing the
 * group's page copies: store_begin_shared), write the group's log records,
 * publish one snapshot for the group, then acknowledge: failed requests and
 * requests in modes that promise nothing more at once; FULL commits go to the
 * committer, which acknowledges them after the fdatasync that covers them.
 * The writer never waits for a sync. When more requests wait, the snapshot
 * and the acknowledgements are the publisher thread's: it writes the group's
 * pages to the file (a third of the writer's time per commit, measured) while
 * the writer applies the next group.
 *
 * An interactive transaction makes the writer serve only its connection
 * until commit or rollback, or until txn_timeout_ms have passed since begin:
 * then the writer rolls it back, marks the connection (`txn_lost`) and goes
 * back to everyone. Requests of other connections wait in their rings.
 */
#include <string.h>

#include "engine.h"
#include "futex.h"
#include "store.h"

/* A batch reference (SOMBRA_BATCH_REF) resolved to the node an earlier op made. */
static int
resolve_ref(const struct write_op *ops, const uint64_t *results, size_t at, uint64_t *id)
{
        uint64_t i;

        if (!(*id & (1ull << 63)))
                return SOMBRA_OK;
        i = *id & ~(1ull << 63);
        if (i >= at || ops[i].kind != OP_NODE_CREATE)
                return SOMBRA_EINVAL; /* forward, out of range, or not a node */
        *id = results[i];
        return SOMBRA_OK;
}

static int
apply_op(struct graph *g, const struct write_op *ops, uint64_t *results, size_t at)
{
        const struct write_op *op = &ops[at];
        uint64_t id = op->id, dst = op->dst;
        int rc = resolve_ref(ops, results, at, &id);

        if (rc == SOMBRA_OK)
                rc = resolve_ref(ops, results, at, &dst);
        if (rc != SOMBRA_OK)
                return rc;
        switch (op->kind) {
        case OP_NODE_CREATE:
                return graph_node_create(g, op->labels, op->nlabels, op->props, op->nprops,
                                         &results[at]);
        case OP_NODE_DELETE:
                return graph_node_delete(g, id);
        case OP_NODE_SET:
                return graph_node_set(g, id, op->name, op->value);
        case OP_NODE_UNSET:
                return graph_node_unset(g, id, op->name);
        case OP_LABEL_ADD:
                return graph_node_label_add(g, id, op->name);
        case OP_LABEL_REMOVE:
                return graph_node_label_remove(g, id, op->name);
        case OP_EDGE_CREATE:
                return graph_edge_create(g, id, dst, op->name, op->props, op->nprops, &results[at]);
        case OP_EDGE_DELETE:
                return graph_edge_delete(g, id);
        case OP_EDGE_SET:
                return graph_edge_set(g, id, op->name, op->value);
        case OP_EDGE_UNSET:
                return graph_edge_unset(g, id, op->name);
        case OP_INDEX_CREATE:
                return graph_index_create(g, op->name, op->key);
        case OP_INDEX_DROP:
                return graph_index_drop(g, op->name, op->key);
        }
        return SOMBRA_EINVAL;
}

/*
 * Applies ops in order up to the first failure; *applied gets how many
 * succeeded. A batch runs in the graph's bulk mode, which writes its index
 * entries sorted at the end; a failure there fails the batch after every
 * op applied.
 */
static int
apply_ops(struct sombra_db *db, const struct write_op *ops, uint64_t *results, size_t n,
          size_t *applied)
{
        bool bulk = n > 1;
        int rc = bulk ? graph_bulk_begin(db->g) : SOMBRA_OK;

        for (*applied = 0; rc == SOMBRA_OK && *applied < n; (*applied)++) {
                rc = apply_op(db->g, ops, results, *applied);
                if (rc != SOMBRA_OK)
                        break;
                if (db->cfg.metrics)
                        db->counters.ops[ops[*applied].kind]++;
        }
        if (bulk) {
                int ended = graph_bulk_end(db->g, rc == SOMBRA_OK);
                if (rc == SOMBRA_OK)
                        rc = ended;
        }
        return rc;
}

/* Commits the open transaction; req->lsn gets its LSN (0: it changed nothing). */
static int
commit(struct sombra_db *db, struct request *req)
{
        uint64_t before = store_committed(graph_store(db->g))->lsn;
        int rc = graph_commit(db->g);

        if (rc == SOMBRA_OK && store_committed(graph_store(db->g))->lsn > before)
                req->lsn = store_committed(graph_store(db->g))->lsn;
        return rc;
}

static void
defer(struct sombra_db *db, struct request *req, int status)
{
        req->status = status;
        db->group[db->group_n++] = req;
}

static void
txn_end(struct sombra_db *db)
{
        db->txn_owner = NULL;
}

static void
serve(struct sombra_db *db, struct request *req)
{
        struct sombra_conn *c = req->conn;
        size_t applied;
        int rc;

        db->counters.requests++;
        switch (req->kind) {
        case REQ_WRITE:
                rc = graph_begin_shared(db->g);
                if (rc != SOMBRA_OK) {
                        defer(db, req, rc);
                        return;
                }
                rc = apply_ops(db, req->ops, req->results, req->nops, &applied);
                if (rc == SOMBRA_OK)
                        rc = commit(db, req);
                else
                        graph_rollback(db->g);
                defer(db, req, rc);
                return;
        case REQ_TXN_BEGIN:
                rc = graph_begin(db->g);
                if (rc == SOMBRA_OK) {
                        db->txn_owner = c;
                        db->txn_deadline_ns =
                            clock_now_ns() + (uint64_t)db->cfg.txn_timeout_ms * 1000000u;
                }
                engine_complete(req, rc);
                return;
        case REQ_TXN_WRITE:
        case REQ_TXN_READ:
        case REQ_TXN_COMMIT:
        case REQ_TXN_ROLLBACK:
                if (db->txn_owner != c) { /* timed out and rolled back meanwhile */
                        engine_complete(req, SOMBRA_ETIMEDOUT);
                        return;
                }
                break;
        case REQ_RUN:
                /*
                 * Checkpoints, verify and stats see committed pages only, not a
                 * group's, and no frame that the publisher is sealing.
                 */
                store_group_end(graph_store(db->g));
                /* Failures are sticky. A checkpoint under way owns the free list's pages. */
                (void)store_publish_settle(graph_store(db->g));
                (void)store_checkpoint_settle(graph_store(db->g), true);
                engine_complete(req, req->read_fn(graph_writer_reader(db->g), req->read_arg));
                return;
        }
        switch (req->kind) {
        case REQ_TXN_WRITE:
                /*
                 * A batch is atomic, and the ops it applied before one failed
                 * cannot be taken out of the txn alone: the txn may only roll back.
                 */
                rc = apply_ops(db, req->ops, req->results, req->nops, &applied);
                if (rc != SOMBRA_OK && applied > 0)
                        store_poison(graph_store(db->g), rc);
                engine_complete(req, rc);
                break;
        case REQ_TXN_READ:
                engine_complete(req, req->read_fn(graph_writer_reader(db->g), req->read_arg));
                break;
        case REQ_TXN_COMMIT:
                txn_end(db);
                defer(db, req, commit(db, req));
                break;
        default: /* REQ_TXN_ROLLBACK */
                txn_end(db);
                engine_complete(req, graph_rollback(db->g));
                break;
        }
}

/* The first ready connection at index `from` or after it; UINT32_MAX when none. */
static uint32_t
ready_from(const struct sombra_db *db, uint32_t from)
{
        uint32_t words = (db->nconns + 64) / 64;

        for (uint32_t w = from / 64; w < words; w++) {
                uint64_t bits = __atomic_load_n(&db->ready_conns[w], __ATOMIC_ACQUIRE);
                if (w == from / 64)
                        bits &= ~0ull << (from % 64);
                if (bits != 0)
                        return w * 64 + (uint32_t)__builtin_ctzll(bits);
        }
        return UINT32_MAX;
}

static bool
rings_empty(struct sombra_db *db)
{
        if (db->txn_owner != NULL)
                return ring_empty(&db->txn_owner->ring);
        for (uint32_t i = ready_from(db, 0); i != UINT32_MAX; i = ready_from(db, i + 1))
                if (!ring_empty(&db->conns[i].ring))
                        return false;
        return true;
}

/* One connection acquired in FULL and no request waiting in any ring. */
static bool
lone_full_caller(struct sombra_db *db)
{
        return db->cfg.sync_mode == SOMBRA_SYNC_FULL &&
               __atomic_load_n(&db->acquired, __ATOMIC_RELAXED) <= 1 && rings_empty(db);
}

/*
 * After the group's log write and snapshot: acknowledge, or hand to the
 * committer. FULL commits always wait for their sync. NORMAL commits are
 * acknowledged at once while at most sync_interval acknowledged commits lack
 * a sync; one further waits for the sync like a FULL one, so a power loss
 * costs at most sync_interval acknowledged commits, however long a sync takes
 * and however many commits a group holds. (The bound holds by LSN, so the
 * writer and the publisher may acknowledge groups side by side.) A caller
 * alone in FULL, with no other request waiting and no sync under way, gets
 * its sync on the writer (`on_writer`): handing it to the committer would add
 * a wake-up to the answer and overlap nothing.
 *
 * `written` is the status of the log write and the snapshot: when the log write failed, no
 * commit of the group reached the log; when the snapshot failed, they are in
 * the log but readers cannot see them, and the store has failed. Either way
 * none may be acknowledged: each caller gets the error. (After a failed
 * snapshot, a reopen replays them: an error from a commit means it is
 * whole or absent, not that it is absent.)
 */
static void
acknowledge(struct sombra_db *db, struct request *const *group, size_t n, int written,
            bool on_writer)
{
        uint64_t now = db->cfg.metrics ? clock_now_ns() : 0; /* one clock read for the group */
        uint64_t at_risk_limit = store_durable_lsn(graph_store(db->g)) + db->cfg.sync_interval;
        uint32_t normal = 0;
        struct commit_waiter *sync = NULL, *last = NULL; /* the group's commits awaiting a sync */

        for (size_t i = 0; i < n; i++) {
                struct request *req = group[i];
                if (req->status == SOMBRA_OK && req->lsn != 0 && written != SOMBRA_OK) {
                        engine_complete(req, written);
                } else if (req->status != SOMBRA_OK || req->lsn == 0) {
                        engine_ack(db, req, req->status, now);
                } else if (db->cfg.sync_mode == SOMBRA_SYNC_FULL ||
                           (db->cfg.sync_mode == SOMBRA_SYNC_NORMAL && req->lsn > at_risk_limit)) {
                        req->waiter.next = NULL;
                        if (last != NULL)
                                last->next = &req->waiter;
                        else
                                sync = &req->waiter;
                        last = &req->waiter;
                } else {
                        normal += db->cfg.sync_mode == SOMBRA_SYNC_NORMAL;
                        engine_ack(db, req, SOMBRA_OK, now);
                }
        }
        /* The chain goes before the NORMAL note, so a sync the note starts answers it too. */
        if (sync != NULL &&
            !(on_writer && lone_full_caller(db) && committer_sync_inline(&db->committer, sync)))
                committer_enqueue(&db->committer, sync, last);
        if (normal > 0)
                committer_note(&db->committer, normal);
}

/*
 * The publisher pays off when the writer has a backlog: a full group with
 * more requests waiting, which the writer applies while the group's pages are
 * written. Otherwise it would only add a thread's wake-up to the answers (64
 * callers of one commit at a time lost about a tenth of their rate when every
 * group with a request waiting went to it). A group whose pages are a large
 * share of the cache is published here too: they stay pinned until written,
 * and the next group needs frames.
 */
static bool
publish_elsewhere(struct sombra_db *db, const struct store_publication *pub)
{
        /* An open interactive txn changes its fresh pages in place, and the take has them too. */
        return db->group_n == ENGINE_GROUP_MAX && db->txn_owner == NULL &&
               pub->n <= pager_cache_pages(store_pager(graph_store(db->g))) / 4 && !rings_empty(db);
}

static bool publisher_ready(struct sombra_db *db);

static void
publisher_post(struct sombra_db *db, struct store_publication *pub)
{
        struct publish_job *job = &db->publisher.jobs[db->publisher.posted & 1];

        job->pub = pub;
        job->n = db->group_n;
        memcpy(job->group, db->group, db->group_n * sizeof(*job->group));
        __atomic_add_fetch(&db->publisher.posted, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&db->publisher.bell, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&db->publisher.sleeping, __ATOMIC_SEQ_CST))
                futex_wake(&db->publisher.bell, 1);
}

/*
 * Deferred publication. Readers take pages from the file, so publishing a
 * group writes every page it dirtied, and most of them are copied again by
 * a later group before long: of the pages a publication wrote, a later one
 * retired 51-82% within 16 groups in durable_commit_async and 96% in a bulk
 * load (bench/README). Publishing only for readers that look saves those
 * writes. So while no reader has asked for a fresh snapshot for
 * READER_RECENT_NS, a group is answered unpublished, and the
 * PUBLISH_DEFER_GROUPS-th group in a row is published (which bounds the
 * log a reopen after a kill replays past the last note, and a reader's
 * first wait). 32, not 16: durable_commit_async ran 10-15% faster after
 * the other workloads and the median reopen after a kill did not move
 * (bench/README, "The deferral cap, 16 groups against 32"). There the
 * replay's bound, 31 groups of 256 one-edge commits, is about 670 KiB of
 * log; a power loss may replay checkpoint_threshold (16 MiB).
 * A reader that finds an answered commit unpublished asks (publish_wanted)
 * and waits; the writer then publishes at once, and for every group while
 * readers keep coming. Commits stay as durable as before: durability is
 * the log's, not the pages'.
 */
#define PUBLISH_DEFER_GROUPS 32u
#define PUBLISH_HELD_SHARE   8u
#define PUBLISH_DIRTY_SHARE  2u
#define READER_RECENT_NS     100000000ull

/*
 * Takes a reader's ask (publish_wanted), noting when. A load first: the
 * writer looks once a loop, and readers ask seldom.
 */
static bool
reader_asked(struct sombra_db *db)
{
        if (!__atomic_load_n(&db->publish_wanted, __ATOMIC_SEQ_CST) ||
            !__atomic_exchange_n(&db->publish_wanted, 0, __ATOMIC_SEQ_CST))
                return false;
        db->reader_asked_ns = clock_now_ns();
        return true;
}

/*
 * Whether readers hold so many pages that a run of deferred groups must end.
 * The skip frees the pages the deferred groups copied from the published
 * state, unless a reader that began earlier holds that state; what readers
 * hold waits, and the file grows by it, so past 1/PUBLISH_HELD_SHARE of the
 * file the group is published. Only what a skip would leave counts
 * (store_held_pages): counted with the pages the skip frees, the bound took
 * a group of random edges, which copies more than an eighth of a small
 * file, and durable_commit_async deferred no group at all.
 */
static bool
held_too_many(struct sombra_db *db)
{
        struct store *s = graph_store(db->g);
        uint64_t held;

        return store_held_pages(s, &held) != SOMBRA_OK ||
               held * PUBLISH_HELD_SHARE > pager_npages(store_pager(s));
}

/*
 * Whether the group just committed may be answered unpublished. A run of
 * deferred groups ends when readers hold too many pages (held_too_many),
 * and when the pages dirtied since the last publication pass
 * 1/PUBLISH_DIRTY_SHARE of the cache: a clean page becomes writable by
 * taking a new number in its frame, a dirty one by a copy, and past the
 * cache's room dirty pages go out one by one as spills. Without this bound
 * the bulk loads, whose every batch dirties most of the hot pages, lost
 * what the skipped write-backs saved (bench/README). Half, not a quarter:
 * single random edges dirty a page or two each, and once the graph had
 * grown a quarter ended most runs after four groups (the loads and their
 * files were the same with either).
 */
static bool
publish_defer(struct sombra_db *db, int written)
{
        struct pager *p = store_pager(graph_store(db->g));

        /* First, whatever the rest says: this group's publication serves a reader that asked. */
        if (reader_asked(db) || written != SOMBRA_OK || db->cfg.publish_every_group ||
            db->deferred + 1 >= PUBLISH_DEFER_GROUPS ||
            pager_dirty_listed(p) * PUBLISH_DIRTY_SHARE > pager_cache_pages(p))
                return false;
        if (db->reader_asked_ns != 0 && clock_now_ns() - db->reader_asked_ns < READER_RECENT_NS)
                return false;
        return !held_too_many(db);
}

/*
 * Publishes the committed state now. Once the store has failed, only what
 * was answered may be published, and the waiting readers are told that
 * nothing more comes.
 */
static void
publish_now(struct sombra_db *db)
{
        struct store *s = graph_store(db->g);

        db->deferred = 0;
        if (store_failure(s) == SOMBRA_OK && store_publish_or_fail(s) == SOMBRA_OK)
                return;
        store_publish_last(s);
}

/* A reader asked while no group was ending: it gets the committed state now. */
static void
publish_for_reader(struct sombra_db *db)
{
        if (reader_asked(db))
                publish_now(db);
}

/*
 * After the group's log write (`written`): its snapshot, by the publisher or
 * here, or none yet (publish_defer), then the acknowledgements. The slot the
 * post fills was freed before store_publish_begin returned: it settles the
 * publication before, and the publisher takes jobs in order.
 */
static void
group_finish(struct sombra_db *db, int written)
{
        struct store *s = graph_store(db->g);
        struct store_publication *pub = NULL;

        /* Before any answer: readers it reaches wait for the group. */
        if (publish_defer(db, written) && store_publish_skip(s) == SOMBRA_OK) {
                db->deferred++;
                db->counters.unpublished++;
                acknowledge(db, db->group, db->group_n, written, true);
                db->group_n = 0;
                return;
        }
        db->deferred = 0;
        if (written == SOMBRA_OK && store_publish_begin(s, &pub) != SOMBRA_OK)
                written = store_publish_or_fail(s); /* the older state stays settled */
        if (pub != NULL && publish_elsewhere(db, pub) && publisher_ready(db)) {
                publisher_post(db, pub);
        } else {
                if (pub != NULL) {
                        (void)store_publish_write(s, pub, true);
                        written = store_publish_settle(s);
                }
                acknowledge(db, db->group, db->group_n, written, true);
        }
        db->group_n = 0;
}

static void *
publisher_main(void *arg)
{
        struct sombra_db *db = arg;
        uint32_t done = 0;

        for (;;) {
                uint32_t bell = __atomic_load_n(&db->publisher.bell, __ATOMIC_SEQ_CST);
                if (done != __atomic_load_n(&db->publisher.posted, __ATOMIC_SEQ_CST)) {
                        struct publish_job *job = &db->publisher.jobs[done & 1];
                        /*
                         * A store failure after the begin (the writer's next log write,
                         * say) does not touch this group: its commits are in the log,
                         * and once its pages are written readers see them, so they are
                         * answered as the writer would have answered them.
                         */
                        int written = store_publish_write(graph_store(db->g), job->pub, true);
                        /* Counted before the answers: a caller they wake sees it in the stats. */
                        __atomic_add_fetch(&db->publisher.groups, 1, __ATOMIC_RELAXED);
                        acknowledge(db, job->group, job->n, written, false);
                        done++;
                        continue;
                }
                if (__atomic_load_n(&db->publisher.stop, __ATOMIC_SEQ_CST))
                        return NULL;
                __atomic_store_n(&db->publisher.sleeping, 1, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&db->publisher.bell, __ATOMIC_SEQ_CST) == bell)
                        futex_wait(&db->publisher.bell, bell, 0);
                __atomic_store_n(&db->publisher.sleeping, 0, __ATOMIC_SEQ_CST);
        }
}

/*
 * Writer: whether the publisher runs, starting it at the first group that
 * needs it (most databases never fill a group). When it cannot be started,
 * the writer publishes the group itself.
 */
static bool
publisher_ready(struct sombra_db *db)
{
        if (!db->publisher.started &&
            pthread_create(&db->publisher.thread, NULL, publisher_main, db) == 0) {
                worker_name(db->publisher.thread, "sombra-publish");
                db->publisher.started = true;
        }
        return db->publisher.started;
}

/* Once the writer has stopped: the publisher finishes every job posted, then ends. */
void
publisher_stop(struct sombra_db *db)
{
        if (!db->publisher.started)
                return;
        __atomic_store_n(&db->publisher.stop, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&db->publisher.bell, 1, __ATOMIC_SEQ_CST);
        futex_wake(&db->publisher.bell, 1);
        pthread_join(db->publisher.thread, NULL);
        db->publisher.started = false;
}

/*
 * Between groups: a checkpoint that finished is settled (its meta page
 * becomes the store's, and the pages only the older one reached go free),
 * and one that is due begins, its syncs on the checkpointer. Failures are
 * sticky in the store.
 */
static void
checkpoint_step(struct sombra_db *db)
{
        struct store *s = graph_store(db->g);
        struct store_ckpt *job;

        (void)store_checkpoint_settle(s, false);
        if (store_checkpoint_begin(s, &job) != SOMBRA_OK || job == NULL)
                return;
        /* Started at the first checkpoint; without it, the writer makes this one durable itself. */
        if (checkpointer_start(&db->checkpointer, s) == SOMBRA_OK)
                checkpointer_post(&db->checkpointer, job);
        else
                store_checkpoint_write(s, job);
}

/*
 * After a group's log write: room past the log, when it runs short, grown by
 * the checkpointer. Only where commits wait for syncs (FULL, NORMAL).
 */
static void
log_room_step(struct sombra_db *db)
{
        struct store *s = graph_store(db->g);
        uint64_t to;

        if (db->cfg.sync_mode != SOMBRA_SYNC_FULL && db->cfg.sync_mode != SOMBRA_SYNC_NORMAL)
                return;
        to = store_log_room(s);
        if (to != 0 && checkpointer_start(&db->checkpointer, s) == SOMBRA_OK)
                checkpointer_grow(&db->checkpointer, to);
}

/* Takes from one connection's ring, freeing room for a producer that waits. */
static struct request *
take(struct sombra_conn *c)
{
        struct request *req = ring_pop(&c->ring);

        if (req != NULL) {
                __atomic_add_fetch(&c->space, 1, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&c->space_wait, __ATOMIC_SEQ_CST)) /* a wake is a syscall */
                        futex_wake(&c->space, 1);
        }
        return req;
}

/*
 * One pass over the rings (only the owner's during an interactive txn);
 * returns requests served. A pass that fills the group ends early, and the
 * next one begins with the ring after the last it took from: a connection
 * that keeps its ring full cannot keep the others waiting.
 */
/* Serves what waits in c's ring, up to a full group or a txn begun on another connection. */
static size_t
drain_ring(struct sombra_db *db, struct sombra_conn *c)
{
        struct request *req;
        size_t served = 0;

        while (db->group_n < ENGINE_GROUP_MAX && (req = take(c)) != NULL) {
                serve(db, req);
                served++;
                if (db->txn_owner != NULL && db->txn_owner != c)
                        break; /* a txn began: serve only its connection now */
        }
        return served;
}

static size_t
drain(struct sombra_db *db)
{
        uint32_t rings = db->nconns + 1, start = db->drain_at;
        size_t served = 0;

        if (db->txn_owner != NULL) {
                served = drain_ring(db, db->txn_owner);
                if (db->txn_owner != NULL || db->group_n == ENGINE_GROUP_MAX)
                        return served;
                /* The txn ended: the group goes on with everyone's requests. */
        }
        /* The ready rings from drain_at to the last, then from the first to drain_at. */
        for (int pass = 0; pass < 2; pass++) {
                uint32_t to = pass == 0 ? rings : start;
                for (uint32_t i = ready_from(db, pass == 0 ? start : 0); i < to;
                     i = ready_from(db, i + 1)) {
                        served += drain_ring(db, &db->conns[i]);
                        if (db->group_n == ENGINE_GROUP_MAX) {
                                db->drain_at = (i + 1) % rings;
                                return served;
                        }
                        if (db->txn_owner != NULL)
                                return served;
                }
        }
        return served;
}

/* An interactive txn past its time: roll it back and tell its connection. */
static void
txn_expire(struct sombra_db *db)
{
        struct sombra_conn *c = db->txn_owner;

        if (c == NULL || clock_now_ns() < db->txn_deadline_ns)
                return;
        graph_rollback(db->g);
        __atomic_store_n(&c->txn_lost, 1, __ATOMIC_RELEASE);
        db->counters.txn_timeouts++;
        txn_end(db);
}

/*
 * Sleeps until a producer bumps writer_seq. While one caller works alone,
 * the writer first spins a while: that caller's next request is usually a
 * few microseconds away, and being woken costs more. With more callers the
 * writer is rarely idle, and spinning would take a core from them.
 */
static void
sleep_until_work(struct sombra_db *db)
{
        uint32_t seq = __atomic_load_n(&db->writer_seq, __ATOMIC_SEQ_CST);
        uint64_t timeout = 0;

        if (engine_alone(db) && spin_until(&db->writer_seq, seq, clock_now_ns() + LONE_SPIN_NS))
                return;

        __atomic_store_n(&db->writer_sleeping, 1, __ATOMIC_SEQ_CST);
        /*
         * A reader's ask may have bumped writer_seq before we read it: it sets
         * publish_wanted first and reads writer_sleeping after, so one of us
         * sees the other.
         */
        if (rings_empty(db) && !__atomic_load_n(&db->stopping, __ATOMIC_SEQ_CST) &&
            !__atomic_load_n(&db->publish_wanted, __ATOMIC_SEQ_CST)) {
                if (db->txn_owner != NULL) {
                        uint64_t now = clock_now_ns();
                        timeout = db->txn_deadline_ns > now ? db->txn_deadline_ns - now : 1;
                }
                futex_wait(&db->writer_seq, seq, timeout);
        }
        __atomic_store_n(&db->writer_sleeping, 0, __ATOMIC_SEQ_CST);
}

/*
 * The group's log write. A store that failed meanwhile fails it too: a log
 * write made for a stats or verify request in mid-group (store_publish_settle
 * writes a note) or a checkpoint may have failed and dropped the group's
 * records, and then this write finds nothing left to write.
 */
static int
group_written(struct store *s)
{
        int rc = store_flush_log(s);

        return rc == SOMBRA_OK && store_failure(s) != SOMBRA_OK ? SOMBRA_EFAILED : rc;
}

void *
writer_main(void *arg)
{
        struct sombra_db *db = arg;

        for (;;) {
                size_t served = drain(db);
                if (db->group_n > 0) {
                        /*
                         * One pager txn, one log write and one snapshot for the group,
                         * before anyone hears back.
                         */
                        store_group_end(graph_store(db->g));
                        db->counters.groups++;
                        if (db->cfg.metrics)
                                hist_record(&db->writer_group, db->group_n);
                        group_finish(db, group_written(graph_store(db->g)));
                        log_room_step(db);
                        checkpoint_step(db);
                }
                publish_for_reader(db);
                txn_expire(db);
                if (served > 0)
                        continue;
                if (__atomic_load_n(&db->stopping, __ATOMIC_SEQ_CST) && rings_empty(db)) {
                        if (db->txn_owner != NULL) {
                                graph_rollback(db->g);
                                txn_end(db);
                        }
                        /* No reader may wait for a writer that is gone. */
                        publish_now(db);
                        break;
                }
                /*
                 * Idle: the publication under way gives its frames back, and what
                 * it retires becomes reusable, now rather than at the next group.
                 */
                (void)store_publish_settle(graph_store(db->g)); /* a failure is sticky */
                sleep_until_work(db);
        }
        return NULL;
}
