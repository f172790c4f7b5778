/*
 * zpages.c - zeroed tables in pages of their own (see zpages.h).
 */
#include "zpages.h"

#include <stdint.h>
#include <sys/mman.h>

void *
zpages_alloc(size_t n, size_t size)
{
        void *p;

        if (n == 0 || size == 0 || n > SIZE_MAX / size)
                return NULL;
        p = mmap(NULL, n * size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

void
zpages_free(void *p, size_t n, size_t size)
{
        if (p != NULL)
                munmap(p, n * size);
}
