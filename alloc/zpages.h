/*
 * zpages.h - zeroed tables in pages of their own, faulted in where touched.
 *
 * For a large table of which a database uses the start: a bit for every
 * page the file map can hold, a slot for every connection the pool may
 * hand out. calloc clears such a table at once when its memory comes from
 * the heap (glibc serves large blocks from it once one has been freed), a
 * page fault for every 4 KiB; on a virtual machine each fault is an exit
 * to the hypervisor, and a reopen spent about a millisecond in them.
 * Anonymous pages read as zeros until written, and cost a fault only then.
 */
#ifndef SOMBRA_ZPAGES_H
#define SOMBRA_ZPAGES_H

#include <stddef.h>

/* n * size bytes of zeros; NULL when they cannot be mapped (or n * size overflows). */
void *zpages_alloc(size_t n, size_t size);
/* Unmaps what zpages_alloc(n, size) returned; nothing for NULL. */
void zpages_free(void *p, size_t n, size_t size);

#endif
