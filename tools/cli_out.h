/*
 * cli_out.h - command output: aligned plain-text tables for people, the same
 * data as JSON (--format json) for programs.
 */
#ifndef SOMBRA_CLI_OUT_H
#define SOMBRA_CLI_OUT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/*
 * Prints obj as a two-column table of its members (name, value) in
 * insertion order, or as one JSON object. Takes obj's reference (NULL, from a
 * failed json_* call, prints nothing and fails). CLI_OK or CLI_FAIL.
 */
int out_object(json_t *obj, bool json);
/*
 * Prints rows, an array of objects with the members cols, as a table with a
 * header line, or as a JSON array. Takes rows' reference.
 */
int out_rows(json_t *rows, const char *const *cols, size_t ncols, bool json);

#endif
