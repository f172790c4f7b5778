/*
 * cli.h - what the commands of the `sombra` tool share: the parsed command
 * line, opening a database, and reporting errors.
 *
 * Conventions of every command: results on stdout, errors on stderr as
 * "sombra: ..." or "FILE:LINE: ...", exit status 0 on success, 1 when the
 * command failed (or, for verify, found the database unhealthy), 2 for a bad
 * command line.
 */
#ifndef SOMBRA_CLI_H
#define SOMBRA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sombra.h"

#define CLI_OK    0
#define CLI_FAIL  1
#define CLI_USAGE 2

/* The largest --batch: import keeps a pointer per operation of the batch in hand. */
#define CLI_MAX_BATCH 1000000u

/* Every option any command takes; each command says which it accepts. */
struct cli_args {
        const char *pos[3]; /* positional arguments, the database first */
        int npos;
        bool json;              /* --format json */
        bool edge;              /* get --edge */
        bool compact;           /* backup --compact */
        enum sombra_dir dir;    /* neighbors --in, --out, --both */
        const char *type;       /* neighbors --type */
        const char *nodes;      /* import --nodes FILE */
        const char *edges;      /* import --edges FILE */
        const char *format_in;  /* import --format-in csv|jsonl */
        const char *format_out; /* export --format-out csv|jsonl */
        const char *out_dir;    /* export --out DIR */
        const char *only;       /* export --only nodes|edges */
        bool skip_bad;          /* import --on-error skip */
        size_t batch;           /* import --batch N, 1 to CLI_MAX_BATCH */
        bool no_compact;        /* import --no-compact */
};

/* Prints "sombra: <message>\n" on stderr; returns CLI_FAIL for `return cli_fail(...)`. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, returning status (CLI_USAGE, or a SOMBRA_E* code inside a module). */
int cli_fail_as(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* How a command opens its database. */
enum cli_open_mode {
        CLI_OPEN_READ,   /* read-only, beside a writer in another process; changes no file */
        CLI_OPEN_WRITE,  /* as the owner; a missing file is an error, not a new database */
        CLI_OPEN_CREATE, /* as the owner, creating the database when missing */
};

/*
 * Opens the database at path and takes a connection. Prints the error and
 * returns CLI_FAIL on failure, leaving *db and *conn untouched.
 */
int cli_open(const char *path, enum cli_open_mode mode, sombra_db **db, sombra_conn **conn);
/* Releases the connection and closes; CLI_FAIL (printed) when closing fails. */
int cli_close(sombra_db *db, sombra_conn *conn);

/* A node or edge id in decimal, at least 1. false (and a message) otherwise. */
bool cli_parse_id(const char *text, uint64_t *id);
/*
 * The value of a numeric option: decimal digits only (no sign, blanks or
 * trailing text), from min to max. false (and a message naming option)
 * otherwise.
 */
bool cli_parse_count(const char *option, const char *text, uint64_t min, uint64_t max,
                     uint64_t *out);

/* The commands with modules of their own. */
int cli_import(const struct cli_args *a);
int cli_export(const struct cli_args *a);

#endif
