/*
 * futex.h - sleeping and waking on a 32-bit word, for the engine's waits: a
 * caller waiting for its completion, the writer waiting for requests or for a
 * publication, the committer waiting for commits to sync, the publisher
 * waiting for a group, a caller waiting for a connection.
 *
 * The pattern everywhere: read the word, check the condition, sleep only if
 * the word still holds what was read; the waker changes the word (atomically,
 * release) before waking. Spurious wake-ups are fine: every caller re-checks.
 */
#ifndef SOMBRA_FUTEX_H
#define SOMBRA_FUTEX_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Sleeps while *word == expected, at most timeout_ns (0: no limit). Returns
 * at once when the word differs. Any thread.
 */
void futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns);
/* Wakes up to n sleepers on word (INT32_MAX: all). */
void futex_wake(uint32_t *word, int n);

/*
 * A one-time completion on a word (a request's answer, a publication's
 * pages): FUTEX_ONCE_PENDING until it is done. The waiter moves the word to
 * FUTEX_ONCE_SLEEPER before it sleeps; futex_once_set swaps in
 * FUTEX_ONCE_DONE and makes the wake-up syscall only if it took the sleeper
 * mark away, so completions nobody sleeps on cost no syscall. The word may
 * be reused (set back to pending) once the waiter has seen it done: a stray
 * wake-up that arrives then is harmless.
 */
enum { FUTEX_ONCE_PENDING = 0, FUTEX_ONCE_DONE = 1, FUTEX_ONCE_SLEEPER = 2 };
/* Returns once *word is FUTEX_ONCE_DONE (acquire). */
void futex_once_wait(uint32_t *word);
/* Marks *word done (release) and wakes its waiter if it sleeps. */
void futex_once_set(uint32_t *word);
/* Whether *word is done (acquire), without waiting. */
static inline bool
futex_once_is_done(const uint32_t *word)
{
        return __atomic_load_n(word, __ATOMIC_ACQUIRE) == FUTEX_ONCE_DONE;
}

/*
 * Busy-waits while *word == expected, until deadline_ns (CLOCK_MONOTONIC).
 * Returns whether the word changed. Cheaper than a sleep and a wake-up when
 * the change is microseconds away and a core is free to wait on.
 */
bool spin_until(const uint32_t *word, uint32_t expected, uint64_t deadline_ns);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t clock_now_ns(void);

#endif
