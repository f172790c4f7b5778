/*
 * graph.h - the property graph on top of the store: nodes, edges, labels,
 * properties, adjacency, indexes, traversals and verify.
 *
 * This is the engine's internal API, driven by one thread (the writer, which
 * in the full engine also serves reads from that thread's own transaction).
 * Every write outside an explicit transaction is its own transaction
 * (autocommit). Reads see the open transaction's writes when one is open,
 * otherwise the last commit.
 *
 * Durability of graph_commit in this layer follows the sync mode directly:
 * FULL syncs the WAL before returning; NORMAL syncs every sync_interval
 * commits or sync_interval_ms; CHECKPOINT and OFF never sync the WAL (a
 * checkpoint or a clean close makes everything durable). The engine (pool/)
 * opens its graph with OFF and leaves syncing to its group-commit thread.
 */
#ifndef SOMBRA_GRAPH_H
#define SOMBRA_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sombra.h"
#include "buf.h"
#include "io.h"
#include "record.h"
#include "idset.h"

struct graph;
struct store;
struct store_reader;
struct store_state;
struct pager;
struct dict;

/* Opens or creates. `faults` is for fault-injection tests (NULL otherwise). */
int graph_open(const char *path, const struct sombra_config *cfg, struct io_faults *faults,
               struct graph **out);
/* Rolls back an open transaction, checkpoints, closes. The graph is freed even on error. */
int graph_close(struct graph *g);

int graph_begin(struct graph *g);
/* A transaction in the writer's group: store_begin_shared (store.h). */
int graph_begin_shared(struct graph *g);
int graph_commit(struct graph *g);
int graph_rollback(struct graph *g);
int graph_checkpoint(struct graph *g);

/*
 * Bulk mode, for a run of writes in one transaction (a batch): between
 * graph_bulk_begin and graph_bulk_end, the adjacency, label and property
 * index entries that writes make are held back, and written sorted by tree
 * and key before the next write that is not a create, at graph_bulk_end
 * (apply true) and at commit; apply false drops them, for a transaction that
 * will roll back. Reads through the writer's reader do not see held entries:
 * end the run first. Both return SOMBRA_EINVAL for a NULL graph;
 * graph_bulk_end returns what writing the entries returned (a failure poisons
 * the transaction, which can then only roll back).
 */
int graph_bulk_begin(struct graph *g);
int graph_bulk_end(struct graph *g, bool apply);

/* ---- writes ---- */

int graph_node_create(struct graph *g, const char *const *labels, size_t nlabels,
                      const struct sombra_prop *props, size_t nprops, uint64_t *id);
/* Deletes a node and every edge that touches it. */
int graph_node_delete(struct graph *g, uint64_t id);
int graph_node_set(struct graph *g, uint64_t id, const char *key, const struct sombra_value *v);
int graph_node_unset(struct graph *g, uint64_t id, const char *key);
int graph_node_label_add(struct graph *g, uint64_t id, const char *label);
int graph_node_label_remove(struct graph *g, uint64_t id, const char *label);

/* SOMBRA_ENOTFOUND when src or dst does not exist. */
int graph_edge_create(struct graph *g, uint64_t src, uint64_t dst, const char *type,
                      const struct sombra_prop *props, size_t nprops, uint64_t *id);
int graph_edge_delete(struct graph *g, uint64_t id);
int graph_edge_set(struct graph *g, uint64_t id, const char *key, const struct sombra_value *v);
int graph_edge_unset(struct graph *g, uint64_t id, const char *key);

/* An equality and range index on property `key` of nodes labelled `label`. */
int graph_index_create(struct graph *g, const char *label, const char *key);
int graph_index_drop(struct graph *g, const char *label, const char *key);

struct graph_adj {
        uint64_t edge;
        uint64_t node; /* the neighbour */
        uint32_t type; /* name id; graph_type_name turns it into text */
        enum sombra_dir dir;
};

struct graph_adjvec {
        struct graph_adj *v;
        size_t n, cap;
};

struct graph_ids {
        uint64_t *v;
        size_t n, cap;
};

/* ---- reads ---- */

/*
 * Reads go through a reader. graph_writer_reader is the writer thread's own:
 * it sees the open transaction's writes, otherwise the last commit. A reader
 * from graph_reader_open may be used by any one thread at a time and reads
 * the newest published commit, never waiting for the writer: each read pins
 * one state, and graph_read_begin / graph_read_end pin one state across many
 * reads (a read transaction; it delays only the reuse of old pages).
 * graph_reader_open: SOMBRA_EBUSY when max_connections + 8 readers are open.
 * Close every reader before the graph.
 */
struct graph_reader {
        /* private */
        struct graph *g;
        struct store_reader *sr; /* NULL for the writer's own reader */
        struct pager *pager;
        const struct store_state *st; /* the state of the read in progress */
        struct buf val, raw;
        struct rec rec;
        struct graph_adjvec adj;
        struct idset names; /* XXH3 of a name -> its id, for snapshot readers */
};

#define GRAPH_MAX_TYPE_FILTER 64

int graph_reader_open(struct graph *g, struct graph_reader **out);
void graph_reader_close(struct graph_reader *r);
struct graph_reader *graph_writer_reader(struct graph *g);
int graph_read_begin(struct graph_reader *r);
int graph_read_end(struct graph_reader *r);

/*
 * A node or an edge as read. Reusable: pass the same struct to many gets and
 * free it once. Strings point into the struct (or the dict) and stay valid
 * until the next get with it.
 */
struct graph_entity {
        uint64_t id;
        uint64_t src, dst; /* edges */
        const char *type;  /* edges */
        size_t nlabels;
        const char **labels;
        size_t nprops;
        struct sombra_prop *props;
        /* private */
        struct rec rec;
        struct buf raw;
        size_t labels_cap, props_cap;
};

void graph_entity_free(struct graph_entity *e);
int graph_node_get(struct graph_reader *r, uint64_t id, struct graph_entity *out);
int graph_edge_get(struct graph_reader *r, uint64_t id, struct graph_entity *out);
/* SOMBRA_OK when the node exists, SOMBRA_ENOTFOUND otherwise. */
int graph_node_exists(struct graph_reader *r, uint64_t id);

void graph_adjvec_free(struct graph_adjvec *a);
int graph_adjvec_push(struct graph_adjvec *a, const struct graph_adj *x);
void graph_ids_free(struct graph_ids *ids);
int graph_ids_push(struct graph_ids *ids, uint64_t id);

/*
 * Neighbours of node in direction dir, only over edges of the given types
 * (ntypes 0: any type). Replaces out's contents. Unknown type names match
 * nothing. SOMBRA_ENOTFOUND when the node does not exist.
 */
int graph_neighbors(struct graph_reader *r, uint64_t node, enum sombra_dir dir,
                    const char *const *types, size_t ntypes, struct graph_adjvec *out);
int graph_degree(struct graph_reader *r, uint64_t node, enum sombra_dir dir,
                 const char *const *types, size_t ntypes, uint64_t *degree);
const char *graph_type_name(struct graph_reader *r, uint32_t type);

/* Node ids carrying a label, ascending. Replaces out's contents. */
int graph_nodes_by_label(struct graph_reader *r, const char *label, struct graph_ids *out);
/*
 * Node ids with label whose property key equals v (graph_nodes_by_prop) or
 * lies within [lo, hi] (either may be NULL for unbounded; both ends
 * inclusive; values of other types never match). Needs an index on
 * (label, key): SOMBRA_ENOTFOUND otherwise.
 */
int graph_nodes_by_prop(struct graph_reader *r, const char *label, const char *key,
                        const struct sombra_value *v, struct graph_ids *out);
int graph_nodes_by_range(struct graph_reader *r, const char *label, const char *key,
                         const struct sombra_value *lo, const struct sombra_value *hi,
                         struct graph_ids *out);
int graph_counts(struct graph_reader *r, uint64_t *nodes, uint64_t *edges);
/* At most max node (or edge) ids above `after`, ascending. Replaces out's contents. */
int graph_ids_after(struct graph_reader *r, bool edges, uint64_t after, size_t max,
                    struct graph_ids *out);

/* ---- traversals (traverse.c) ---- */

/* Nodes reachable from start within max_depth hops, in BFS order, start first. */
int graph_bfs(struct graph_reader *r, uint64_t start, enum sombra_dir dir, const char *const *types,
              size_t ntypes, uint32_t max_depth, struct graph_ids *out);
/* A shortest path from `from` to `to`, both included. SOMBRA_ENOTFOUND when there is none. */
int graph_shortest_path(struct graph_reader *r, uint64_t from, uint64_t to, enum sombra_dir dir,
                        const char *const *types, size_t ntypes, struct graph_ids *path);
/* Distinct nodes at the end of a two-edge path from node, node itself excluded. */
int graph_two_hop_count(struct graph_reader *r, uint64_t node, enum sombra_dir dir,
                        const char *const *types, size_t ntypes, uint64_t *count);

/* ---- verify (verify.c) ---- */

struct graph_verify_report {
        uint64_t pages;      /* pages in the file */
        uint64_t tree_pages; /* reachable from the trees */
        uint64_t free_pages; /* free, retired or free-list pages */
        uint64_t nodes, edges, adj_entries, label_entries, index_entries, names;
        int status;        /* SOMBRA_OK or the first problem's code */
        char problem[256]; /* the first problem, in words */
};

/*
 * Checks the committed state: every tree's structure and checksums, that
 * every page is used exactly once or free, adjacency symmetry, label and
 * property index entries against the records, and the counters. Returns
 * SOMBRA_OK when healthy, SOMBRA_ECORRUPT (with report->problem) when not.
 * SOMBRA_EBUSY inside a transaction.
 */
int graph_verify(struct graph *g, struct graph_verify_report *report);

/* ---- internals for query.c, traverse.c, verify.c and tests ---- */
struct store *graph_store(struct graph *g);
struct dict *graph_dict(struct graph *g);
/* One record, all adjacency of a node, or all nodes of a label id, in one pinned state. */
int graph_read_record(struct graph_reader *r, bool edge, uint64_t id, struct buf *raw,
                      struct rec *rec);
int graph_read_adjacent(struct graph_reader *r, uint64_t node, struct graph_adjvec *out);
int graph_read_label(struct graph_reader *r, uint32_t label, struct graph_ids *out);
/* Frees a reader's scratch memory (the writer's reader, at close). */
void graph_reader_release(struct graph_reader *r);

#endif
