/*
 * worker.c - a thread with a lock, a condition and a stop flag (see worker.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np */
#endif
#include "worker.h"
#include "sombra.h"

void
worker_name(pthread_t thread, const char *name)
{
        (void)pthread_setname_np(thread, name); /* for ps, top -H, gdb and perf only */
}

int
worker_start(struct worker *w, void *(*main)(void *), void *arg, const char *name)
{
        w->stop = false;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        if (pthread_create(&w->thread, NULL, main, arg) != 0) {
                pthread_mutex_destroy(&w->lock);
                pthread_cond_destroy(&w->cond);
                return SOMBRA_ENOMEM;
        }
        worker_name(w->thread, name);
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
