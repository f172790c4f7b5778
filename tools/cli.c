/* cli.c - opening databases, parsing ids and reporting errors for every command. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void
say(const char *fmt, va_list ap)
{
        fputs("sombra: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
}

int
cli_fail(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        say(fmt, ap);
        va_end(ap);
        return CLI_FAIL;
}

int
cli_fail_as(int status, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        say(fmt, ap);
        va_end(ap);
        return status;
}

int
cli_open(const char *path, enum cli_open_mode mode, sombra_db **db, sombra_conn **conn)
{
        struct sombra_config cfg;
        struct stat st;
        sombra_db *d;
        sombra_conn *c;
        int rc;

        /* sombra_open would make an empty database: a typo must not. */
        if (mode == CLI_OPEN_WRITE && stat(path, &st) != 0)
                return cli_fail("%s: %s", path, strerror(errno));
        sombra_config_production(&cfg);
        cfg.read_only = mode == CLI_OPEN_READ;
        rc = sombra_open(path, &cfg, &d);
        if (rc != SOMBRA_OK)
                return cli_fail("%s: %s", path, sombra_strerror(rc));
        rc = sombra_conn_acquire(d, &c);
        if (rc != SOMBRA_OK) {
                sombra_close(d);
                return cli_fail("%s: %s", path, sombra_strerror(rc));
        }
        *db = d;
        *conn = c;
        return CLI_OK;
}

int
cli_close(sombra_db *db, sombra_conn *conn)
{
        int rc = conn != NULL ? sombra_conn_release(conn) : SOMBRA_OK;

        if (rc == SOMBRA_OK)
                rc = sombra_close(db);
        return rc == SOMBRA_OK ? CLI_OK : cli_fail("close: %s", sombra_strerror(rc));
}

/* A decimal number, digits only: strtoull alone would take blanks, a sign ("-1" wraps) and a tail.
 */
static bool
parse_decimal(const char *text, uint64_t *out)
{
        char *end;

        if (text[0] < '0' || text[0] > '9')
                return false;
        errno = 0;
        *out = strtoull(text, &end, 10);
        return errno == 0 && *end == '\0';
}

bool
cli_parse_id(const char *text, uint64_t *id)
{
        uint64_t v;

        if (!parse_decimal(text, &v) || v == 0) {
                cli_fail("not an id (a whole number from 1): '%s'", text);
                return false;
        }
        *id = v;
        return true;
}

bool
cli_parse_count(const char *option, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
        uint64_t v;

        if (!parse_decimal(text, &v) || v < min || v > max) {
                cli_fail("%s: a whole number from %" PRIu64 " to %" PRIu64 ", not '%s'", option,
                         min, max, text);
                return false;
        }
        *out = v;
        return true;
}
