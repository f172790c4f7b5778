/*
 * worker.h - a thread that sleeps on a condition until it has work or is
 * told to stop: the shape of the committer and the checkpointer. Their own
 * state is guarded by the worker's lock, as `stop` is.
 */
#ifndef SOMBRA_WORKER_H
#define SOMBRA_WORKER_H

#include <pthread.h>
#include <stdbool.h>

struct worker {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop; /* guarded by lock: finish what is left and return */
        bool started;
};

/*
 * Starts main(arg) on a new thread called name (at most 15 bytes: what ps,
 * top -H and perf show). SOMBRA_ENOMEM when it cannot be created.
 */
int worker_start(struct worker *w, void *(*main)(void *), void *arg, const char *name);
/* Names a thread (at most 15 bytes); a failure changes nothing else. */
void worker_name(pthread_t thread, const char *name);
/* Sets stop, wakes the thread and joins it. Nothing when it never started. */
void worker_stop(struct worker *w);

#endif
