/*
 * committer.c - the group-commit thread (see committer.h).
 *
 * Invariant: a waiter is enqueued only after its WAL record was written, and
 * the committer reads the WAL's written LSN before it calls fdatasync
 * (wal_sync), so a sync that starts after a waiter was taken covers it.
 */
#include <errno.h>
#include <time.h>

#include "committer.h"
#include "futex.h"
#include "store.h"

static bool
normal_due(struct committer *c, uint64_t last_sync_ns)
{
        return c->unsynced > 0 &&
               (c->unsynced >= c->cfg.sync_interval ||
                clock_now_ns() - last_sync_ns >= (uint64_t)c->cfg.sync_interval_ms * 1000000u);
}

/* Sleeps until signalled; with NORMAL commits outstanding, at most until the interval ends. */
static void
wait_for_work(struct committer *c)
{
        struct timespec until;
        uint64_t ms = c->cfg.sync_interval_ms ? c->cfg.sync_interval_ms : 1;

        if (c->unsynced == 0) {
                pthread_cond_wait(&c->w.cond, &c->w.lock);
                return;
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(ms % 1000) * 1000000;
        until.tv_sec += (time_t)(ms / 1000) + until.tv_nsec / 1000000000;
        until.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&c->w.cond, &c->w.lock, &until);
}

/*
 * One fdatasync covering every record written so far, then each waiter of
 * `group` hears back. Runs on the committer, or on the writer for a caller
 * alone (committer_sync_inline); the counters are atomic for that reason.
 * Returns when the sync ended.
 */
static uint64_t
sync_and_complete(struct committer *c, struct commit_waiter *group)
{
        uint64_t started_ns = clock_now_ns(), ended_ns, n = 0;
        uint64_t max = __atomic_load_n(&c->max_group, __ATOMIC_RELAXED);
        int rc = store_sync(c->store);

        ended_ns = clock_now_ns();
        for (struct commit_waiter *w = group; w != NULL; w = w->next)
                n++;
        if (c->cfg.metrics) {
                hist_record(&c->sync_latency, ended_ns - started_ns);
                if (n > 0) /* NORMAL's syncs acknowledge nobody */
                        hist_record(&c->sync_group, n);
        }
        /* Counted before anyone hears back, so a caller's stats include its own sync. */
        __atomic_add_fetch(&c->syncs, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&c->synced_commits, n, __ATOMIC_RELAXED);
        while (n > max && !__atomic_compare_exchange_n(&c->max_group, &max, n, true,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                ;
        while (group != NULL) {
                struct commit_waiter *next = group->next;
                c->complete(group, rc, c->cfg.metrics ? ended_ns : 0);
                group = next;
        }
        return ended_ns;
}

static void *
committer_main(void *arg)
{
        struct committer *c = arg;
        uint64_t last_sync_ns = clock_now_ns();

        pthread_mutex_lock(&c->w.lock);
        for (;;) {
                struct commit_waiter *group;
                while (c->head == NULL && !normal_due(c, last_sync_ns) && !c->w.stop)
                        wait_for_work(c);
                if (c->w.stop && c->head == NULL && c->unsynced == 0)
                        break;
                if (c->cfg.group_commit_delay_us > 0 && c->head != NULL) {
                        /* Let the group grow a little before paying for the sync. */
                        struct timespec d = {0, (long)c->cfg.group_commit_delay_us * 1000};
                        pthread_mutex_unlock(&c->w.lock);
                        nanosleep(&d, NULL);
                        pthread_mutex_lock(&c->w.lock);
                }
                while (c->syncing) /* the writer's inline sync, which signals when done */
                        pthread_cond_wait(&c->w.cond, &c->w.lock);
                group = c->head;
                c->head = c->tail = NULL;
                c->unsynced = 0;
                c->syncing = true;
                pthread_mutex_unlock(&c->w.lock);

                last_sync_ns = sync_and_complete(c, group);
                pthread_mutex_lock(&c->w.lock);
                c->syncing = false;
        }
        pthread_mutex_unlock(&c->w.lock);
        return NULL;
}

int
committer_start(struct committer *c, struct store *s, const struct sombra_config *cfg,
                void (*complete)(struct commit_waiter *w, int status, uint64_t now_ns))
{
        c->store = s;
        c->cfg = *cfg;
        c->complete = complete;
        c->head = c->tail = NULL;
        c->syncing = false;
        return worker_start(&c->w, committer_main, c, "sombra-commit");
}

void
committer_stop(struct committer *c)
{
        worker_stop(&c->w);
}

void
committer_enqueue(struct committer *c, struct commit_waiter *first, struct commit_waiter *last)
{
        last->next = NULL;
        pthread_mutex_lock(&c->w.lock);
        if (c->tail != NULL)
                c->tail->next = first;
        else
                c->head = first;
        c->tail = last;
        pthread_cond_signal(&c->w.cond);
        pthread_mutex_unlock(&c->w.lock);
}

bool
committer_sync_inline(struct committer *c, struct commit_waiter *group)
{
        pthread_mutex_lock(&c->w.lock);
        if (c->syncing || c->head != NULL) {
                pthread_mutex_unlock(&c->w.lock);
                return false;
        }
        c->syncing = true;
        pthread_mutex_unlock(&c->w.lock);

        (void)sync_and_complete(c, group);
        pthread_mutex_lock(&c->w.lock);
        c->syncing = false;
        pthread_cond_signal(&c->w.cond);
        pthread_mutex_unlock(&c->w.lock);
        return true;
}

void
committer_note(struct committer *c, uint32_t n)
{
        pthread_mutex_lock(&c->w.lock);
        /*
         * The first unsynced commit also wakes the committer, whose untimed
         * sleep must become a wait of sync_interval_ms at most.
         */
        if (c->unsynced == 0 || c->unsynced + n >= c->cfg.sync_interval)
                pthread_cond_signal(&c->w.cond);
        c->unsynced += n;
        pthread_mutex_unlock(&c->w.lock);
}
