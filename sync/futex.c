/*
 * futex.c - the two futex calls and the one-time completion (see futex.h). Private futexes: the
 * words live in one process.
 */
#include <ck_pr.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"

void
futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
        struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};

        /* EAGAIN (the word moved), EINTR and ETIMEDOUT all mean: look again. */
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout_ns ? &ts : NULL, NULL, 0);
}

void
futex_wake(uint32_t *word, int n)
{
        syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void
futex_once_wait(uint32_t *word)
{
        uint32_t seen;

        while ((seen = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != FUTEX_ONCE_DONE) {
                if (seen == FUTEX_ONCE_PENDING &&
                    !__atomic_compare_exchange_n(word, &seen, FUTEX_ONCE_SLEEPER, false,
                                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                        continue; /* done meanwhile */
                futex_wait(word, FUTEX_ONCE_SLEEPER, 0);
        }
}

void
futex_once_set(uint32_t *word)
{
        /* The waiter may be gone as soon as it sees the word done; a stray wake is harmless. */
        if (__atomic_exchange_n(word, FUTEX_ONCE_DONE, __ATOMIC_ACQ_REL) == FUTEX_ONCE_SLEEPER)
                futex_wake(word, 1);
}

bool
spin_until(const uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
        do {
                /* A few probes between clock reads: a clock read costs more than a probe. */
                for (int i = 0; i < 64; i++) {
                        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected)
                                return true;
                        ck_pr_stall();
                }
        } while (clock_now_ns() < deadline_ns);
        return false;
}

uint64_t
clock_now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
