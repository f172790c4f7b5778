/*
 * adopt.h - recovery's shortcut after a crash of the process alone.
 *
 * Every published state is in the database file (page cache included)
 * before readers get it, and a WAL note records each one (store.c). When the
 * process dies but the kernel lives on, the file still holds the last noted
 * state, so recovery can take it over instead of applying the whole log to
 * the checkpoint: it needs only to know which pages that state uses and
 * which pages of the checkpoint it no longer does. adopt_plan_make works
 * that out by walking the two states where they differ, and checks on the
 * way that the file really holds the noted state; pager_adopt applies it.
 */
#ifndef SOMBRA_ADOPT_H
#define SOMBRA_ADOPT_H

#include <stddef.h>
#include <stdint.h>

#include "idset.h"
#include "pager.h"

struct adopt_plan {
        struct idset reached; /* pages of the noted state written after the checkpoint */
        pgno_t *retired;      /* pages of the checkpoint's state that the noted one left */
        size_t nretired, cap;
};

#define ADOPT_PLAN_INIT                                                                            \
        {                                                                                          \
                IDSET_INIT, NULL, 0, 0                                                             \
        }

/*
 * Compares the noted state (ntrees roots, its last commit `lsn`) with the
 * checkpoint's (ckpt_roots, made by commits up to ckpt_txn), both read
 * through p, which pager_adopt_begin lets read the noted state's pages.
 * Pages of the noted state are taken as the file holds them: each must pass
 * pager_get's checks and bear a txn in (ckpt_txn, lsn], and every older
 * page it points to must belong to the checkpoint's state, whose own pages
 * must be no newer than ckpt_txn. Any other finding is SOMBRA_ECORRUPT: the
 * file does not hold that state (it was overwritten after the note, or
 * restored from elsewhere), and recovery replays the log instead. Also
 * SOMBRA_ENOMEM, SOMBRA_EIO.
 */
int adopt_plan_make(struct pager *p, const pgno_t *ckpt_roots, uint64_t ckpt_txn,
                    const pgno_t *roots, size_t ntrees, uint64_t lsn, struct adopt_plan *out);
void adopt_plan_free(struct adopt_plan *plan);

#endif
