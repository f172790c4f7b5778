/*
 * fuzz_wal.c - libFuzzer target: WAL replay, onto the template database.
 *
 * The input is a WAL file. Before it is written, its header becomes the
 * template WAL's (the database id and generation the template database
 * expects: mismatches are the unit tests' business) and its record
 * checksums are made right again (each chained to the one before, the first
 * seeded with the salt, walking the records by their length fields, as wal.h
 * lays them out), so that a mutated length, LSN, type or payload reaches the
 * replay and the store's decoding of transactions instead of stopping at a
 * checksum. Then the template database is opened on it, verified, read and
 * closed.
 */

#include <string.h>

#include <xxhash.h>

#include "buf.h"
#include "fuzz_support.h"
#include "wal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void
reseal(uint8_t *w, size_t len)
{
        struct fuzz_bytes db, wal;
        uint64_t chain;
        size_t at = WAL_HDR;

        fuzz_template(&db, &wal);
        if (len < WAL_HDR || wal.len < WAL_HDR)
                return;
        memcpy(w, wal.data, WAL_HDR);
        chain = get_be64(w + 16); /* the salt */
        while (len - at >= WAL_REC_HDR) {
                uint64_t plen = get_be32(w + at + 8);
                if (plen > len - at - WAL_REC_HDR)
                        break;
                chain = XXH3_64bits_withSeed(w + at + 8, WAL_REC_HDR - 8 + plen, chain);
                put_be64(w + at, chain);
                at += WAL_REC_HDR + plen;
        }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        return fuzz_template_initialize();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
        struct fuzz_bytes db, wal;

        fuzz_template(&db, &wal);
        fuzz_write(fuzz_db_path(), db.data, db.len);
        fuzz_write_resealed(fuzz_wal_path(), data, len, reseal);
        fuzz_open_and_read();
        return 0;
}
