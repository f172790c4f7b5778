/*
 * cli_value.h - property values as the import and export files write them:
 * typed text in CSV cells, JSON values in JSON Lines, and the memory that
 * holds one row's worth of decoded values.
 */
#ifndef SOMBRA_CLI_VALUE_H
#define SOMBRA_CLI_VALUE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "sombra.h"

/* Blocks that live until the next cv_arena_reset: one row's strings and bytes. */
struct cv_arena {
        void **blocks;
        size_t n, cap;
};

/* len bytes (plus a NUL after them), or NULL when out of memory. */
void *cv_arena_alloc(struct cv_arena *a, size_t len);
char *cv_arena_strndup(struct cv_arena *a, const char *s, size_t len);
void cv_arena_reset(struct cv_arena *a);
void cv_arena_free(struct cv_arena *a);

/* A growing string; `p` is NUL-terminated whenever len > 0. */
struct cv_text {
        char *p;
        size_t len, cap;
};

bool cv_text_add(struct cv_text *t, const char *s, size_t len);
void cv_text_free(struct cv_text *t);

/* "null", "bool", "int", "double", "string", "bytes". */
const char *cv_type_name(enum sombra_type t);
bool cv_type_parse(const char *name, enum sombra_type *out);

bool cv_utf8_valid(const char *s, size_t len);
/* A label, edge type or property key the database accepts: 1..255 bytes of UTF-8, no NUL. */
bool cv_name_valid(const char *s, size_t len);

/*
 * A CSV cell of type t (not null). Returns NULL when *out is set, otherwise
 * why the text is not such a value. Decoded bytes live in arena.
 */
const char *cv_from_text(enum sombra_type t, const char *s, size_t len, struct cv_arena *arena,
                         struct sombra_value *out);
/* The cell text of v (not null) appended to out; false when out of memory. */
bool cv_to_text(const struct sombra_value *v, struct cv_text *out);

/*
 * A JSON value: null, true/false, integer, real, string, or {"$bytes": HEX}.
 * Strings point into j (keep it alive); bytes live in arena.
 */
const char *cv_from_json(json_t *j, struct cv_arena *arena, struct sombra_value *out);
/* A new reference, or NULL (out of memory, or a double JSON cannot hold: NaN, infinity). */
json_t *cv_to_json(const struct sombra_value *v);

#endif
