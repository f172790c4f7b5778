/*
 * adapter.h - what an engine under test offers the benchmark's workloads.
 *
 * sombra-bench runs every workload against every adapter on identical data
 * (bench/generator.h) in the same run. An adapter has one database shared by
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

#include "sombra.h"

/* A durability profile: the same promise asked of every engine. */
struct bench_profile {
        const char *name; /* throughput, balanced, production, durability */
        enum sombra_sync_mode
            mode; /* SQLite: OFF -> synchronous=OFF, NORMAL -> NORMAL, FULL -> FULL */
        bool checksums;
        const char *crash_loses; /* what a crash may take, in words */
};

/*
 * A node of the social network: label "User", properties name (string),
 * age (int), joined (int, days since 2000), score (double). An edge: type
 * FRIENDS_WITH, property since (int). ids are the engine's own, as returned.
 */
struct bench_node {
        char name[24];
        int64_t age, joined;
        double score;
};

struct bench_edge {
        uint64_t src, dst; /* engine ids */
        int64_t since;
};

struct adapter {
        const char *name; /* "sombra" or "sqlite" */
        /*
         * Opens the database in directory dir, creating it when missing; the
         * harness reopens one database under each profile.
         */
        int (*open)(const char *dir, const struct bench_profile *p, void **db);
        void (*close)(void *db);
        int (*conn_open)(void *db, void **conn);
        void (*conn_close)(void *conn);
        /* One transaction: n nodes; ids[i] gets node i's id. */
        int (*insert_nodes)(void *conn, const struct bench_node *nodes, size_t n, uint64_t *ids);
        /* One transaction: n edges. */
        int (*insert_edges)(void *conn, const struct bench_edge *edges, size_t n);
        /* An index for property_lookup: User.age. */
        int (*index_age)(void *conn);
        /* Reads: each answers with what it found, so work cannot be skipped. */
        int (*get_node)(void *conn, uint64_t id, size_t *nprops);    /* all properties */
        int (*neighbors_out)(void *conn, uint64_t id, size_t *n);    /* edge and neighbour ids */
        int (*two_hop)(void *conn, uint64_t id, uint64_t *distinct); /* distinct 2-hop, out */
        int (*bfs3)(void *conn, uint64_t id, uint64_t *reached);     /* out, depth <= 3 */
        int (*shortest_path)(void *conn, uint64_t from, uint64_t to,
                             size_t *hops);                         /* out; 0 = none */
        int (*label_scan)(void *conn, size_t *n);                   /* every User */
        int (*property_lookup)(void *conn, int64_t age, size_t *n); /* User.age == age */
        /* long_read: a read transaction that sees one state until read_hold_end. */
        int (*read_hold_begin)(void *conn);
        int (*read_hold_end)(void *conn);
        /*
         * long_write: a write transaction that makes one node and stays open
         * for `seconds` without committing, then rolls back; the engine may
         * end it sooner (Sombra's txn_timeout_ms), which is not an error here.
         */
        int (*write_hold)(void *conn, double seconds);
        /* Optional (NULL): durable commits acknowledged and fdatasyncs made so far. */
        int (*sync_counts)(void *db, uint64_t *commits, uint64_t *syncs);
};

extern const struct adapter sombra_adapter;
extern const struct adapter sqlite_adapter;

#endif
