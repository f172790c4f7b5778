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

        pthread_mutex_lock(&c->lock);
        for (;;) {
                struct store_ckpt *job;
                while (c->job == NULL && !c->stop)
                        pthread_cond_wait(&c->cond, &c->lock);
                if (c->job == NULL)
                        break; /* stopping, and nothing left to write */
                job = c->job;
                c->job = NULL;
                pthread_mutex_unlock(&c->lock);
                store_checkpoint_write(c->store, job);
                pthread_mutex_lock(&c->lock);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

int
checkpointer_start(struct checkpointer *c, struct store *s)
{
        c->store = s;
        c->job = NULL;
        c->stop = false;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        if (pthread_create(&c->thread, NULL, checkpointer_main, c) != 0) {
                pthread_mutex_destroy(&c->lock);
                pthread_cond_destroy(&c->cond);
                return SOMBRA_ENOMEM;
        }
        c->started = true;
        return SOMBRA_OK;
}

void
checkpointer_stop(struct checkpointer *c)
{
        if (!c->started)
                return;
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        c->started = false;
}

void
checkpointer_post(struct checkpointer *c, struct store_ckpt *job)
{
        pthread_mutex_lock(&c->lock);
        c->job = job;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
}
