/*
 * checkpointer.c - the checkpoint thread (see checkpointer.h).
 */
#include "checkpointer.h"
#include "sombra.h"
#include "store.h"

static void *
checkpointer_main(void *arg)
{
        struct checkpointer *c = arg;

        pthread_mutex_lock(&c->w.lock);
        for (;;) {
                struct store_ckpt *job;
                uint64_t grow_to;
                while (c->job == NULL && c->grow_to == 0 && !c->w.stop)
                        pthread_cond_wait(&c->w.cond, &c->w.lock);
                if (c->job == NULL && c->grow_to == 0)
                        break; /* stopping, and nothing left to do */
                job = c->job;
                /* Stopping: close starts the log anew, in the room there is. */
                grow_to = c->w.stop ? 0 : c->grow_to;
                c->job = NULL;
                c->grow_to = 0;
                pthread_mutex_unlock(&c->w.lock);
                if (job != NULL)
                        store_checkpoint_write(c->store, job);
                if (grow_to != 0)
                        store_log_grow(c->store, grow_to);
                pthread_mutex_lock(&c->w.lock);
        }
        pthread_mutex_unlock(&c->w.lock);
        return NULL;
}

int
checkpointer_start(struct checkpointer *c, struct store *s)
{
        if (c->w.started)
                return SOMBRA_OK;
        c->store = s;
        c->job = NULL;
        c->grow_to = 0;
        return worker_start(&c->w, checkpointer_main, c, "sombra-ckpt");
}

void
checkpointer_stop(struct checkpointer *c)
{
        worker_stop(&c->w);
}

void
checkpointer_post(struct checkpointer *c, struct store_ckpt *job)
{
        pthread_mutex_lock(&c->w.lock);
        c->job = job;
        pthread_cond_signal(&c->w.cond);
        pthread_mutex_unlock(&c->w.lock);
}

void
checkpointer_grow(struct checkpointer *c, uint64_t to)
{
        pthread_mutex_lock(&c->w.lock);
        if (to > c->grow_to)
                c->grow_to = to;
        pthread_cond_signal(&c->w.cond);
        pthread_mutex_unlock(&c->w.lock);
}
