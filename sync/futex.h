/*
 * futex.h - sleeping and waking on a 32-bit word, for the engine's waits: a
 * caller waiting for its completion, the writer waiting for requests, the
 * committer waiting for commits to sync, a caller waiting for a connection.
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
 * Busy-waits while *word == expected, until deadline_ns (CLOCK_MONOTONIC).
 * Returns whether the word changed. Cheaper than a sleep and a wake-up when
 * the change is microseconds away and a core is free to wait on.
 */
bool spin_until(const uint32_t *word, uint32_t expected, uint64_t deadline_ns);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t clock_now_ns(void);

#endif
