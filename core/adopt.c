/*
 * adopt.c - working out what taking over a noted state means for the pages
 * (see adopt.h).
 *
 * Copy-on-write makes the comparison cheap. A page written after the
 * checkpoint has a txn above ckpt_txn, and so has every page above it up to
 * the root, since changing a page copies its whole path. A page at or below
 * ckpt_txn is therefore unchanged since the checkpoint, and so is everything
 * under it. So the walk of the noted state goes down only through newer
 * pages and stops at the first older one of each path (a "shared" page).
 * The walk of the checkpoint's state then stops at those same shared pages:
 * every page it meets before them is one the noted state no longer uses.
 * Both walks cost what changed since the checkpoint, not the file's size.
 */
#include <stdlib.h>

#include "sombra.h"
#include "adopt.h"
#include "btree.h"

struct adopt_walk {
        struct adopt_plan *plan;
        struct idset shared; /* older pages the noted state points to; value 1 once met again */
        uint64_t ckpt_txn, lsn;
        size_t met; /* shared pages met again in the checkpoint's state */
};

static int
retired_push(struct adopt_plan *plan, pgno_t pgno)
{
        if (plan->nretired == plan->cap) {
                size_t cap = plan->cap ? plan->cap * 2 : 256;
                pgno_t *v = realloc(plan->retired, cap * sizeof(*v));
                if (v == NULL)
                        return SOMBRA_ENOMEM;
                plan->retired = v;
                plan->cap = cap;
        }
        plan->retired[plan->nretired++] = pgno;
        return SOMBRA_OK;
}

/* A page of the noted state: newer ones are its own, the first older one of a path is shared. */
static int
visit_noted(void *arg, const struct page *pg, bool *descend)
{
        struct adopt_walk *w = arg;
        uint64_t txn = page_txn(pg);
        bool added;
        int rc;

        if (txn <= w->ckpt_txn) {
                *descend = false;
                rc = idset_put(&w->shared, pg->pgno, 0, &added);
        } else if (txn > w->lsn) {
                return SOMBRA_ECORRUPT; /* written after the note: the noted page is gone */
        } else {
                rc = idset_put(&w->plan->reached, pg->pgno, 0, &added);
        }
        /* A page is in one place of one tree: met twice, the file is not that state. */
        return rc == SOMBRA_OK && !added ? SOMBRA_ECORRUPT : rc;
}

/* A page of the checkpoint's state: shared ones end the path, the others were left. */
static int
visit_checkpoint(void *arg, const struct page *pg, bool *descend)
{
        struct adopt_walk *w = arg;
        uint64_t met;

        if (idset_get(&w->shared, pg->pgno, &met)) {
                *descend = false;
                if (met)
                        return SOMBRA_ECORRUPT;
                w->met++;
                return idset_put(&w->shared, pg->pgno, 1, NULL);
        }
        /* The durable meta page reaches it, so nothing may have written over it since. */
        if (page_txn(pg) > w->ckpt_txn)
                return SOMBRA_ECORRUPT;
        return retired_push(w->plan, pg->pgno);
}

int
adopt_plan_make(struct pager *p, const pgno_t *ckpt_roots, uint64_t ckpt_txn, const pgno_t *roots,
                size_t ntrees, uint64_t lsn, struct adopt_plan *out)
{
        struct adopt_walk w = {out, IDSET_INIT, ckpt_txn, lsn, 0};
        int rc = SOMBRA_OK;

        rc = btree_walk(p, roots, ntrees, visit_noted, &w);
        if (rc == SOMBRA_OK)
                rc = btree_walk(p, ckpt_roots, ntrees, visit_checkpoint, &w);
        /* Every older page the noted state uses must be the checkpoint's. */
        if (rc == SOMBRA_OK && w.met != w.shared.count)
                rc = SOMBRA_ECORRUPT;
        idset_free(&w.shared);
        return rc;
}

void
adopt_plan_free(struct adopt_plan *plan)
{
        idset_free(&plan->reached);
        free(plan->retired);
        *plan = (struct adopt_plan)ADOPT_PLAN_INIT;
}
