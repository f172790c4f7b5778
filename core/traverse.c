/*
 * traverse.c - breadth-first traversals over graph_neighbors: BFS to a
 * depth, unweighted shortest path, and the distinct two-hop count.
 *
 * Each keeps its visited set in an idset and reads adjacency one node at a
 * time, so memory grows with the nodes reached, not with the graph. Each pins
 * one state for the whole walk (graph_read_begin), so a walk never mixes two
 * commits.
 */
#include <string.h>

#include "graph.h"
#include "idset.h"

/*
 * The direction and type filter a walk passes to graph_neighbors, checked
 * up front: a walk that ends before its first expansion (depth 0, from == to)
 * must refuse them all the same.
 */
static int
walk_check(enum sombra_dir dir, const char *const *types, size_t ntypes)
{
        if (dir < SOMBRA_OUT || dir > SOMBRA_BOTH || (ntypes > 0 && types == NULL))
                return SOMBRA_EINVAL;
        return ntypes > GRAPH_MAX_TYPE_FILTER ? SOMBRA_ETOOBIG : SOMBRA_OK;
}

int
graph_bfs(struct graph_reader *r, uint64_t start, enum sombra_dir dir, const char *const *types,
          size_t ntypes, uint32_t max_depth, struct graph_ids *out)
{
        struct graph_adjvec adj = {0};
        struct idset seen = IDSET_INIT;
        size_t level_end, head = 0;
        uint32_t depth = 0;
        int rc;

        if (r == NULL || out == NULL)
                return SOMBRA_EINVAL;
        rc = walk_check(dir, types, ntypes);
        if (rc != SOMBRA_OK)
                return rc;
        rc = graph_read_begin(r); /* one state for the whole walk */
        out->n = 0;
        if (rc == SOMBRA_OK)
                rc = graph_node_exists(r, start);
        if (rc == SOMBRA_OK)
                rc = idset_put(&seen, start, 0, NULL);
        if (rc == SOMBRA_OK)
                rc = graph_ids_push(out, start);
        level_end = out->n;
        /* out doubles as the queue: [head, level_end) is the level being expanded. */
        while (rc == SOMBRA_OK && head < out->n && depth < max_depth) {
                uint64_t node = out->v[head++];
                rc = graph_neighbors(r, node, dir, types, ntypes, &adj);
                for (size_t i = 0; rc == SOMBRA_OK && i < adj.n; i++) {
                        bool added;
                        rc = idset_put(&seen, adj.v[i].node, 0, &added);
                        if (rc == SOMBRA_OK && added)
                                rc = graph_ids_push(out, adj.v[i].node);
                }
                if (head == level_end) {
                        depth++;
                        level_end = out->n;
                }
        }
        graph_adjvec_free(&adj);
        idset_free(&seen);
        graph_read_end(r);
        return rc;
}

int
graph_shortest_path(struct graph_reader *r, uint64_t from, uint64_t to, enum sombra_dir dir,
                    const char *const *types, size_t ntypes, struct graph_ids *path)
{
        struct graph_adjvec adj = {0};
        struct graph_ids queue = {0};
        struct idset parent = IDSET_INIT; /* node -> the node it was reached from */
        bool found = from == to;
        int rc;

        if (r == NULL || path == NULL)
                return SOMBRA_EINVAL;
        rc = walk_check(dir, types, ntypes);
        if (rc != SOMBRA_OK)
                return rc;
        rc = graph_read_begin(r); /* one state for the whole walk */
        path->n = 0;
        if (rc == SOMBRA_OK)
                rc = graph_node_exists(r, from);
        if (rc == SOMBRA_OK)
                rc = graph_node_exists(r, to);
        if (rc == SOMBRA_OK)
                rc = idset_put(&parent, from, from, NULL);
        if (rc == SOMBRA_OK)
                rc = graph_ids_push(&queue, from);
        for (size_t head = 0; rc == SOMBRA_OK && !found && head < queue.n; head++) {
                rc = graph_neighbors(r, queue.v[head], dir, types, ntypes, &adj);
                for (size_t i = 0; rc == SOMBRA_OK && !found && i < adj.n; i++) {
                        bool added = false;
                        /* First visit only: a later one must not rewrite the parent (cycles). */
                        if (!idset_get(&parent, adj.v[i].node, NULL))
                                rc = idset_put(&parent, adj.v[i].node, queue.v[head], &added);
                        if (rc == SOMBRA_OK && added) {
                                found = adj.v[i].node == to;
                                rc = graph_ids_push(&queue, adj.v[i].node);
                        }
                }
        }
        if (rc == SOMBRA_OK && !found)
                rc = SOMBRA_ENOTFOUND;
        /* Walk the parents back from `to`, then reverse. */
        for (uint64_t n = to; rc == SOMBRA_OK;) {
                uint64_t p;
                rc = graph_ids_push(path, n);
                if (n == from || rc != SOMBRA_OK)
                        break;
                idset_get(&parent, n, &p);
                n = p;
        }
        for (size_t i = 0; rc == SOMBRA_OK && i < path->n / 2; i++) {
                uint64_t t = path->v[i];
                path->v[i] = path->v[path->n - 1 - i];
                path->v[path->n - 1 - i] = t;
        }
        if (rc != SOMBRA_OK)
                path->n = 0;
        graph_adjvec_free(&adj);
        graph_ids_free(&queue);
        idset_free(&parent);
        graph_read_end(r);
        return rc;
}

int
graph_two_hop_count(struct graph_reader *r, uint64_t node, enum sombra_dir dir,
                    const char *const *types, size_t ntypes, uint64_t *count)
{
        struct graph_adjvec first = {0}, second = {0};
        struct idset seen = IDSET_INIT;
        int rc;

        if (r == NULL || count == NULL)
                return SOMBRA_EINVAL;
        rc = graph_read_begin(r); /* one state for the whole walk */
        if (rc == SOMBRA_OK)
                rc = graph_neighbors(r, node, dir, types, ntypes, &first);
        for (size_t i = 0; rc == SOMBRA_OK && i < first.n; i++) {
                rc = graph_neighbors(r, first.v[i].node, dir, types, ntypes, &second);
                for (size_t j = 0; rc == SOMBRA_OK && j < second.n; j++)
                        if (second.v[j].node != node)
                                rc = idset_put(&seen, second.v[j].node, 0, NULL);
        }
        if (rc == SOMBRA_OK)
                *count = seen.count;
        graph_adjvec_free(&first);
        graph_adjvec_free(&second);
        idset_free(&seen);
        graph_read_end(r);
        return rc;
}
