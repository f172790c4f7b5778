/*
 * fuzz_import.c - libFuzzer target: the import parsers of `sombra import`
 * (CSV through libcsv, JSON Lines through jansson, and the typed values and
 * checks around them), end to end into a scratch database.
 *
 * The input's first byte picks the format (bit 0: CSV or JSON Lines) and
 * the error mode (bit 1: skip bad rows or abort); the rest is a nodes file,
 * then a NUL byte, then an edges file. Bad rows are what the fuzzer is for:
 * they must be reported, never crash, leak or hang, and an aborted import
 * must leave no database behind. scripts/fuzz.sh runs it with
 * -close_fd_mask=2, so that the bad-row reports do not flood the terminal
 * (libFuzzer keeps its own copy of stderr for what it has to say).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "fuzz_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static char nodes_path[128], edges_path[128];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
        const char *ext;
        const uint8_t *cut;
        struct cli_args a = {0};

        if (len == 0)
                return 0;
        ext = data[0] & 1 ? "jsonl" : "csv";
        snprintf(nodes_path, sizeof(nodes_path), "%s.nodes.%s", fuzz_db_path(), ext);
        snprintf(edges_path, sizeof(edges_path), "%s.edges.%s", fuzz_db_path(), ext);
        cut = memchr(data + 1, 0, len - 1);
        fuzz_write(nodes_path, data + 1, cut ? (size_t)(cut - data - 1) : len - 1);
        fuzz_write(edges_path, cut ? cut + 1 : data, cut ? len - (size_t)(cut + 1 - data) : 0);
        unlink(fuzz_db_path());
        unlink(fuzz_wal_path());
        a.pos[0] = fuzz_db_path();
        a.npos = 1;
        a.nodes = nodes_path;
        a.edges = edges_path;
        a.skip_bad = data[0] & 2;
        a.batch = 3; /* small: the flushes between batches get exercised too */
        (void)cli_import(&a);
        unlink(nodes_path);
        unlink(edges_path);
        return 0;
}
