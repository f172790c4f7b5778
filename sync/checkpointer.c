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
                while (c->job == NULL && !c->w.stop)
                        pthread_cond_wait(&c->w.cond, &c->w.lock);
                if (c->job == NULL)
                        break; /* stopping, and nothing left to write */
                job = c->job;
                c->job = NULL;
                pthread_mutex_unlock(&c->w.lock);
                store_checkpoint_write(c->store, job);
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
        return worker_start(&c->w, checkpointer_main, c);
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
