/*
 * dict.h - names (labels, edge types, property keys) and their ids.
 *
 * Records store 32-bit name ids; the TREE_NAMES and TREE_NAME_IDS trees map
 * both ways on disk. The dict keeps every name in memory as well, loaded at
 * open: an array by id for decoding records, and a hash table by name for the
 * writer. Ids start at 1, are never reused, and names never change, so the
 * array only grows; it is chunked so that growing never moves a name that a
 * reader on another thread may be looking at.
 */
#ifndef SOMBRA_DICT_H
#define SOMBRA_DICT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define DICT_CHUNK  1024u
#define DICT_CHUNKS 4096u /* room for 4 M names */
#define DICT_RECENT 16u   /* names the writer interned last, looked at first */
#define DICT_MEMO   16u   /* callers' name pointers the writer remembers (dict_intern) */

struct dict_name {
        uint32_t len;
        char text[]; /* NUL-terminated */
};

/* A caller's pointer and the id of the name it held last (dict_intern). */
struct dict_memo {
        const char *ptr;
        uint32_t id;
};

struct dict {
        /*
         * DICT_CHUNKS slots, made at the first name: zero pages (zpages) that
         * fault in only where written, where 32 KiB inline in the graph were
         * cleared by its calloc at every open (8 page faults).
         */
        struct dict_name ***chunks;
        uint32_t count;  /* names are ids 1..count */
        uint32_t *table; /* open addressing: slot -> id, 0 empty */
        uint32_t table_cap;
        /*
         * Names forgotten by dict_truncate, freed only by dict_free: a read in
         * the rolled-back transaction may still hold a pointer to one.
         */
        struct dict_name **dead;
        size_t ndead, dead_cap;
        uint32_t recent[DICT_RECENT];     /* ids, 0 empty; the writer's alone */
        uint32_t recent_next;             /* the slot the next miss fills */
        struct dict_memo memo[DICT_MEMO]; /* by the pointer's address; the writer's alone */
};

/* Loads every name of the committed state. SOMBRA_ECORRUPT for ids out of sequence. */
int dict_load(struct dict *d, struct store *s);
void dict_free(struct dict *d);

/* SOMBRA_EINVAL unless 1..SOMBRA_MAX_NAME bytes without NUL. */
int dict_name_check(const char *name, size_t *len);

/* Finds a name's id; SOMBRA_ENOTFOUND when it was never used. */
int dict_lookup(const struct dict *d, const char *name, size_t len, uint32_t *id);

/*
 * Finds or creates (inside the open transaction) a name's id; the name is
 * checked as dict_name_check does. A name created by a transaction that
 * rolls back must be forgotten with dict_truncate. The writer's alone.
 */
int dict_intern(struct dict *d, struct store *s, const char *name, uint32_t *id);

/* The name of an id, or NULL for an unknown id. */
const struct dict_name *dict_get(const struct dict *d, uint32_t id);

/*
 * Forgets every name with an id above count (after a rollback). Their text
 * stays allocated until dict_free, so pointers handed out stay valid.
 */
void dict_truncate(struct dict *d, uint32_t count);

#endif
