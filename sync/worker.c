/*
 * worker.c - a thread with a lock, a condition and a stop flag (see worker.h).
 */
#include "worker.h"
#include "sombra.h"

int
worker_start(struct worker *w, void *(*main)(void *), void *arg)
{
        w->stop = false;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        if (pthread_create(&w->thread, NULL, main, arg) != 0) {
                pthread_mutex_destroy(&w->lock);
                pthread_cond_destroy(&w->cond);
                return SOMBRA_ENOMEM;
        }
        w->started = true;
        return SOMBRA_OK;
}

void
worker_stop(struct worker *w)
{
        if (!w->started)
                return;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        w->started = false;
}
