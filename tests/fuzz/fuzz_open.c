/*
 * fuzz_open.c - libFuzzer target: opening an arbitrary database file.
 *
 * The input is the main file (no WAL). Both meta pages get their checksum
 * made right again first (meta 0 at offset 0, meta 1 one page further, the
 * page size read from meta 0 when it is a legal one, else 4096), so that the
 * fuzzer explores the meta fields, the free list and the B+tree pages behind
 * them; page checksums are not verified on read in this target, so damaged
 * pages meet the structural checks. Then open, verify, read, close.
 */
#include <unistd.h>

#include <xxhash.h>

#include "buf.h"
#include "fuzz_support.h"
#include "sombra.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/* store.c's meta page (version 3): 192 bytes of fields, then their XXH3-64 at 192. */
#define META_FIELDS 192u
#define META_SIZE   200u

static void
reseal(uint8_t *f, size_t len)
{
        uint32_t ps = len >= META_SIZE ? get_be32(f + 12) : 0;

        if (ps < SOMBRA_MIN_PAGESIZE || ps > SOMBRA_MAX_PAGESIZE || (ps & (ps - 1)) != 0)
                ps = 4096;
        if (len >= META_SIZE)
                put_be64(f + META_FIELDS, XXH3_64bits(f, META_FIELDS));
        if (len >= (size_t)ps + META_SIZE)
                put_be64(f + ps + META_FIELDS, XXH3_64bits(f + ps, META_FIELDS));
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
        fuzz_write_resealed(fuzz_db_path(), data, len, reseal);
        unlink(fuzz_wal_path());
        fuzz_open_and_read();
        return 0;
}
