/*
 * adapter.h - what an engine under test offers the benchmark's workloads.
 *
 * sombra-bench runs every workload against every adapter on identical data
 * (generator.h) in the same run. An adapter has one database shared by
 * every thread and one connection per thread; each insert call is exactly one
 * transaction, committed with the durability of the profile before it returns.
 * Every call returns 0 or a negative status (SOMBRA_* codes; an adapter maps
 * its engine's errors onto them).
 */
#ifndef SOMBRA_BENCH_ADAPTER_H
#define SOMBRA_BENCH_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "generator.h"
#include "sombra.h"

/* A durability profile: the same promise asked of every engine. */
struct bench_profile {
        const char *name; /* throughput, balanced, production, durability */
        enum sombra_sync_mode
            mode; /* SQLite: OFF -> synchronous=OFF, NORMAL -> NORMAL, FULL -> FULL */
        bool checksums;
        const char *crash_loses; /* what a crash may take, in words */
        bool no_metrics;         /* Sombra: config.metrics off (--no-metrics); others ignore it */
};

struct adapter {
        const char *name; /* "sombra" or "sqlite" */
        /*
         * Opens the database in directory dir, creating it when missing; the
         * harness reopens one database under each profile. The schema names
         * the dataset's property keys and query targets.
         */
        int (*open)(const char *dir, const struct bench_profile *p,
                    const struct bench_schema *schema, void **db);
        void (*close)(void *db);
        int (*conn_open)(void *db, void **conn);
        void (*conn_close)(void *conn);
        /* One transaction: n nodes; ids[i] gets node i's id. */
        int (*insert_nodes)(void *conn, const struct bench_node *nodes, size_t n, uint64_t *ids);
        /* One transaction: n edges. */
        int (*insert_edges)(void *conn, const struct bench_edge *edges, size_t n);
        /* The index property_lookup uses: scan_label.int_keys[0]. */
        int (*index_lookup)(void *conn);
        /* Reads: each answers with what it found, so work cannot be skipped. */
        int (*get_node)(void *conn, uint64_t id, size_t *nprops);    /* all properties */
        int (*neighbors_out)(void *conn, uint64_t id, size_t *n);    /* any type: edge, neighbour */
        int (*two_hop)(void *conn, uint64_t id, uint64_t *distinct); /* distinct 2-hop, out */
        int (*bfs3)(void *conn, uint64_t id, uint64_t *reached);     /* out, depth <= 3 */
        int (*shortest_path)(void *conn, uint64_t from, uint64_t to,
                             size_t *hops);                       /* out; 0 = none */
        int (*label_scan)(void *conn, size_t *n);                 /* every scan_label node */
        int (*property_lookup)(void *conn, int64_t v, size_t *n); /* ... with int_keys[0] == v */
        /* long_read: a read transaction that sees one state until read_hold_end. */
        int (*read_hold_begin)(void *conn);
        int (*read_hold_end)(void *conn);
        /*
         * long_write: a write transaction that makes one node and stays open
         * for `seconds` without committing, then rolls back; the engine may
         * end it sooner (Sombra's txn_timeout_ms), which is not an error here.
         */
        int (*write_hold)(void *conn, double seconds);
        /*
         * Optional (NULL when the engine cannot pipeline commits): submits a
         * one-edge transaction without waiting, keeping at most `window` in
         * flight on this connection; a full window first waits for the
         * oldest. *acked_ns gets the submit-to-acknowledgement time of the
         * transaction waited for, or 0 when none was. conn_close waits for
         * whatever is still in flight.
         */
        int (*insert_edge_async)(void *conn, const struct bench_edge *e, unsigned window,
                                 uint64_t *acked_ns);
        /* Optional (NULL): durable commits acknowledged and fdatasyncs made so far. */
        int (*sync_counts)(void *db, uint64_t *commits, uint64_t *syncs);
        /*
         * Checkpoints the log into the database file, then *bytes gets the
         * file's size and *free_bytes how much of it is free pages.
         */
        int (*file_size)(void *db, uint64_t *bytes, uint64_t *free_bytes);
        /*
         * Optional (NULL): *bytes gets the size of a compacted copy of the
         * database as it is now (Sombra: sombra_backup_compact; SQLite:
         * VACUUM INTO), made beside it and removed again.
         */
        int (*compact_size)(void *db, uint64_t *bytes);
};

extern const struct adapter sombra_adapter;
extern const struct adapter sqlite_adapter;

#endif
