/*
 * server.c - sombra-server: an HTTP front for one Sombra database, to copy
 * when embedding Sombra in a thread-pooled server.
 *
 * usage: sombra-server --db PATH [--port N] [--threads N] [--sync full|normal|off]
 *                      [--timeout S] [--max-connections N] [--max-per-ip N]
 *                      [--allow-host HOST[:PORT]]...
 *
 *   GET  /nodes/ID            the node: {"id", "labels", "props"}
 *   GET  /nodes/ID/neighbors  {"id", "neighbors": [{"edge", "node", "type", "dir"}]}
 *                             (?dir=out|in|both, default both)
 *   POST /nodes               {"labels": [...], "props": {...}}  -> 201 {"id"}
 *   POST /edges               {"src", "dst", "type", "props"}    -> 201 {"id"}
 *   GET  /metrics             sombra_metrics_prometheus, text format 0.0.4
 *
 * Property values are JSON scalars, and {"$bytes": "HEX"} for bytes, as in
 * the `sombra` tool's JSON Lines (tools/cli_value.c does both directions). A
 * stored value JSON cannot carry (a string that is not UTF-8, a NaN or an
 * infinity) makes GET a 500 naming the property, never a silent omission.
 *
 * Errors are JSON too, {"error": "..."}: 400 for a bad id or body, 404 for an
 * unknown node or path, 405 for a wrong method, 413 for a body over 1 MiB,
 * 415 for a POST whose Content-Type is not application/json, 421 for a Host
 * header that is not this server's, 503 when no database connection is
 * free, 500 otherwise.
 *
 * Browsers: a page elsewhere must not write here. A form can POST only
 * form or text bodies (415 here), and a script needs a CORS preflight that
 * this server never grants. DNS rebinding (a name of the attacker's that
 * turns into 127.0.0.1) keeps that name in the Host header: only
 * 127.0.0.1:PORT, localhost:PORT and the --allow-host values are served.
 *
 * Limits, so that slow or many clients cannot hold the workers: an idle
 * connection is closed after --timeout seconds (default 30), and at most
 * --max-connections (512) connections, --max-per-ip (64) from one address,
 * are accepted at once (libmicrohttpd closes the others at once).
 *
 * Threads: libmicrohttpd runs a pool of --threads workers, each polling its
 * share of the connections (MHD_USE_INTERNAL_POLLING_THREAD with
 * MHD_OPTION_THREAD_POOL_SIZE). One sombra_db is shared by all of them; each
 * request takes a pooled sombra_conn for the time of its handler and gives
 * it back, so the database's max_connections (64) bounds the workers, not
 * the clients. Reads run on the worker's thread; writes wait for their
 * commit as the sync mode promises (FULL by default).
 *
 * The server listens on 127.0.0.1 only. With --port 0 the kernel picks the
 * port; either way the first line on stdout is "listening on
 * http://127.0.0.1:PORT". SIGINT or SIGTERM stops it cleanly: the daemon
 * finishes its requests, then the database closes (exit status 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "cli_value.h"
#include "sombra.h"

#define MAX_BODY   (1u << 20)
#define MAX_PROPS  64u
#define MAX_LABELS 16u
#define MAX_HOSTS  8u /* --allow-host values */
#define JSON_TYPE  "application/json"
#define PROM_TYPE  "text/plain; version=0.0.4; charset=utf-8"

/* What every handler shares; set before the daemon starts, read-only after. */
struct server {
        sombra_db *db;
        const char *const *hosts; /* --allow-host values */
        size_t nhosts;
};

/* What one HTTP request carries between libmicrohttpd's calls: its body so far. */
struct request_ctx {
        char *body;
        size_t len;
        bool too_large;
};

/* A response about to be queued: status, content type, and malloc'd text (NULL: none). */
struct reply {
        unsigned int status;
        const char *type;
        char *text;
};

/* ---- replies ---- */

/* Takes the reference to `doc`. */
static struct reply
reply_json(unsigned int status, json_t *doc)
{
        struct reply r = {status, JSON_TYPE, NULL};

        if (doc != NULL)
                r.text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        if (r.text == NULL)
                r = (struct reply){MHD_HTTP_INTERNAL_SERVER_ERROR, JSON_TYPE, NULL};
        return r;
}

static struct reply
reply_error(unsigned int status, const char *message)
{
        return reply_json(status, json_pack("{s:s}", "error", message));
}

/* A Sombra status as an HTTP error. */
static struct reply
reply_status(int rc)
{
        switch (rc) {
        case SOMBRA_ENOTFOUND:
                return reply_error(MHD_HTTP_NOT_FOUND, sombra_strerror(rc));
        case SOMBRA_EINVAL:
        case SOMBRA_ETOOBIG:
        case SOMBRA_ETYPE:
                return reply_error(MHD_HTTP_BAD_REQUEST, sombra_strerror(rc));
        case SOMBRA_EBUSY:
                return reply_error(MHD_HTTP_SERVICE_UNAVAILABLE, sombra_strerror(rc));
        default:
                return reply_error(MHD_HTTP_INTERNAL_SERVER_ERROR, sombra_strerror(rc));
        }
}

static enum MHD_Result
reply_send(struct MHD_Connection *connection, struct reply r)
{
        static const char empty[] = "";
        struct MHD_Response *resp;
        enum MHD_Result ret;

        if (r.text != NULL)
                resp =
                    MHD_create_response_from_buffer(strlen(r.text), r.text, MHD_RESPMEM_MUST_FREE);
        else
                resp = MHD_create_response_from_buffer(0, (void *)empty, MHD_RESPMEM_PERSISTENT);
        if (resp == NULL) {
                free(r.text);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.type);
        ret = MHD_queue_response(connection, r.status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* ---- values between JSON and Sombra ---- */

/*
 * "props": an optional object of values (cv_from_json: scalars and
 * {"$bytes": HEX}), into props[MAX_PROPS]; *n of them. Bytes live in arena.
 * false with why filled when the object is not such.
 */
static bool
props_from_json(json_t *obj, struct cv_arena *arena, struct sombra_prop *props, size_t *n,
                char *why, size_t why_len)
{
        const char *key, *fault;
        json_t *val;

        *n = 0;
        if (obj == NULL)
                return true;
        if (!json_is_object(obj) || json_object_size(obj) > MAX_PROPS) {
                snprintf(why, why_len, "props is an object of at most %u values", MAX_PROPS);
                return false;
        }
        json_object_foreach(obj, key, val)
        {
                fault = cv_from_json(val, arena, &props[*n].value);
                if (fault != NULL) {
                        snprintf(why, why_len, "props.%s: %s", key, fault);
                        return false;
                }
                props[(*n)++].key = key;
        }
        return true;
}

/* A node id: a JSON integer, not negative. */
static bool
id_from_json(json_t *j, uint64_t *id)
{
        if (!json_is_integer(j) || json_integer_value(j) < 0)
                return false;
        *id = (uint64_t)json_integer_value(j);
        return true;
}

/* ---- handlers, each with a connection of the pool ---- */

static struct reply
node_get(sombra_conn *c, uint64_t id)
{
        const struct sombra_entity *e;
        json_t *labels, *props;
        char why[512];
        int rc = sombra_node_get(c, id, &e);

        if (rc != SOMBRA_OK)
                return reply_status(rc);
        labels = json_array();
        props = json_object();
        for (size_t i = 0; i < e->nlabels; i++)
                json_array_append_new(labels, json_string(e->labels[i]));
        for (size_t i = 0; i < e->nprops; i++) {
                if (json_object_set_new(props, e->props[i].key, cv_to_json(&e->props[i].value)) ==
                    0)
                        continue;
                /* Leaving the property out would tell the client it is not there. */
                snprintf(why, sizeof(why),
                         "node %" PRIu64 ": property '%s' holds a value JSON cannot carry (a "
                         "string that is not UTF-8, NaN or an infinity)",
                         id, e->props[i].key);
                json_decref(labels);
                json_decref(props);
                return reply_error(MHD_HTTP_INTERNAL_SERVER_ERROR, why);
        }
        return reply_json(MHD_HTTP_OK, json_pack("{s:I,s:o,s:o}", "id", (json_int_t)e->id, "labels",
                                                 labels, "props", props));
}

static struct reply
node_neighbors(sombra_conn *c, uint64_t id, const char *dir_arg)
{
        static const char *const dir_names[] = {
            [SOMBRA_OUT] = "out", [SOMBRA_IN] = "in", [SOMBRA_BOTH] = "both"};
        enum sombra_dir dir = SOMBRA_BOTH;
        const struct sombra_neighbor *nb;
        json_t *list;
        size_t n;
        int rc;

        if (dir_arg != NULL && strcmp(dir_arg, "out") == 0)
                dir = SOMBRA_OUT;
        else if (dir_arg != NULL && strcmp(dir_arg, "in") == 0)
                dir = SOMBRA_IN;
        else if (dir_arg != NULL && strcmp(dir_arg, "both") != 0)
                return reply_error(MHD_HTTP_BAD_REQUEST, "dir is out, in or both");
        rc = sombra_neighbors(c, id, dir, NULL, 0, &nb, &n);
        if (rc != SOMBRA_OK)
                return reply_status(rc);
        list = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(list,
                                      json_pack("{s:I,s:I,s:s,s:s}", "edge", (json_int_t)nb[i].edge,
                                                "node", (json_int_t)nb[i].node, "type", nb[i].type,
                                                "dir", dir_names[nb[i].dir]));
        return reply_json(MHD_HTTP_OK,
                          json_pack("{s:I,s:o}", "id", (json_int_t)id, "neighbors", list));
}

/* After a create: its id, or its error. (The status first: id is set only by the call.) */
static struct reply
reply_created(int rc, const uint64_t *id)
{
        if (rc != SOMBRA_OK)
                return reply_status(rc);
        return reply_json(MHD_HTTP_CREATED, json_pack("{s:I}", "id", (json_int_t)*id));
}

static struct reply
node_create(sombra_conn *c, json_t *body, struct cv_arena *arena)
{
        const char *labels[MAX_LABELS];
        struct sombra_prop props[MAX_PROPS];
        json_t *jl = json_object_get(body, "labels"), *item;
        size_t nlabels = 0, nprops, i;
        uint64_t id = 0;
        char why[512];

        if (jl != NULL && (!json_is_array(jl) || json_array_size(jl) > MAX_LABELS))
                return reply_error(MHD_HTTP_BAD_REQUEST, "labels is an array of strings");
        json_array_foreach(jl, i, item)
        {
                if (!json_is_string(item))
                        return reply_error(MHD_HTTP_BAD_REQUEST, "labels is an array of strings");
                labels[nlabels++] = json_string_value(item);
        }
        if (!props_from_json(json_object_get(body, "props"), arena, props, &nprops, why,
                             sizeof(why)))
                return reply_error(MHD_HTTP_BAD_REQUEST, why);
        return reply_created(sombra_node_create(c, labels, nlabels, props, nprops, &id), &id);
}

static struct reply
edge_create(sombra_conn *c, json_t *body, struct cv_arena *arena)
{
        struct sombra_prop props[MAX_PROPS];
        json_t *type = json_object_get(body, "type");
        uint64_t src, dst, id = 0;
        size_t nprops;
        char why[512];

        if (!id_from_json(json_object_get(body, "src"), &src) ||
            !id_from_json(json_object_get(body, "dst"), &dst) || !json_is_string(type))
                return reply_error(MHD_HTTP_BAD_REQUEST, "src and dst are ids, type a string");
        if (!props_from_json(json_object_get(body, "props"), arena, props, &nprops, why,
                             sizeof(why)))
                return reply_error(MHD_HTTP_BAD_REQUEST, why);
        return reply_created(
            sombra_edge_create(c, src, dst, json_string_value(type), props, nprops, &id), &id);
}

static struct reply
metrics(sombra_db *db)
{
        size_t len = 16384, needed = 0;
        struct reply r = {MHD_HTTP_OK, PROM_TYPE, NULL};
        int rc;

        /* Twice at most: the first answer says how much the text needs. */
        for (int attempt = 0; attempt < 2; attempt++) {
                char *buf = malloc(len);
                if (buf == NULL)
                        return reply_status(SOMBRA_ENOMEM);
                rc = sombra_metrics_prometheus(db, buf, len, &needed);
                if (rc == SOMBRA_OK) {
                        r.text = buf;
                        return r;
                }
                free(buf);
                if (rc != SOMBRA_ETOOBIG)
                        break;
                len = needed + 4096;
        }
        return reply_status(rc);
}

/* ---- routing ---- */

/* "/nodes/ID" or "/nodes/ID/neighbors": the id and whether it is the latter; false otherwise. */
static bool
parse_node_path(const char *url, uint64_t *id, bool *neighbors)
{
        const char *p = url + strlen("/nodes/");
        char *end;

        if (strncmp(url, "/nodes/", strlen("/nodes/")) != 0 || *p < '0' || *p > '9')
                return false;
        errno = 0;
        *id = strtoull(p, &end, 10);
        if (errno != 0)
                return false;
        *neighbors = strcmp(end, "/neighbors") == 0;
        return *end == '\0' || *neighbors;
}

static struct reply
route_with_conn(sombra_conn *c, struct MHD_Connection *connection, const char *url, bool post,
                json_t *body)
{
        struct cv_arena arena = {0};
        struct reply r;
        uint64_t id;
        bool neighbors;

        if (post && strcmp(url, "/nodes") == 0)
                r = node_create(c, body, &arena);
        else if (post && strcmp(url, "/edges") == 0)
                r = edge_create(c, body, &arena);
        else if (!parse_node_path(url, &id, &neighbors))
                r = reply_error(MHD_HTTP_NOT_FOUND, "no such path");
        else if (neighbors)
                r = node_neighbors(
                    c, id, MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "dir"));
        else
                r = node_get(c, id);
        cv_arena_free(&arena);
        return r;
}

static bool
known_path(const char *url, bool post)
{
        uint64_t id;
        bool neighbors;

        if (strcmp(url, "/nodes") == 0 || strcmp(url, "/edges") == 0)
                return post;
        if (strcmp(url, "/metrics") == 0 || parse_node_path(url, &id, &neighbors))
                return !post;
        return true; /* unknown paths are a 404, whatever the method */
}

/* The port the daemon is bound to (with --port 0, the kernel's choice); 0 if unknown. */
static unsigned
bound_port(struct MHD_Connection *connection)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_DAEMON);
        const union MHD_DaemonInfo *di =
            ci != NULL ? MHD_get_daemon_info(ci->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;

        return di != NULL ? di->port : 0;
}

/*
 * The Host header names this server: 127.0.0.1 or localhost with the bound
 * port (which a browser leaves out for 80), or an --allow-host value as it
 * is. A rebound DNS name of someone else's does not.
 */
static bool
host_allowed(const struct server *srv, struct MHD_Connection *connection)
{
        const char *host =
            MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
        const char *colon = host != NULL ? strrchr(host, ':') : NULL;
        size_t name_len = colon != NULL ? (size_t)(colon - host) : host != NULL ? strlen(host) : 0;
        char port[16];

        if (host == NULL)
                return false;
        for (size_t i = 0; i < srv->nhosts; i++)
                if (strcasecmp(host, srv->hosts[i]) == 0)
                        return true;
        snprintf(port, sizeof(port), "%u", bound_port(connection));
        if (colon != NULL ? strcmp(colon + 1, port) != 0 : strcmp(port, "80") != 0)
                return false;
        return (name_len == strlen("127.0.0.1") && strncmp(host, "127.0.0.1", name_len) == 0) ||
               (name_len == strlen("localhost") && strncasecmp(host, "localhost", name_len) == 0);
}

/* application/json, parameters (charset) allowed: what no HTML form can send. */
static bool
body_is_json(struct MHD_Connection *connection)
{
        const char *type =
            MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        size_t n = strlen(JSON_TYPE);

        return type != NULL && strncasecmp(type, JSON_TYPE, n) == 0 &&
               (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
}

static struct reply
route(struct server *srv, struct MHD_Connection *connection, const char *url, const char *method,
      struct request_ctx *ctx)
{
        bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
        sombra_db *db = srv->db;
        json_t *body = NULL;
        json_error_t err;
        sombra_conn *c;
        struct reply r;
        int rc;

        if (!host_allowed(srv, connection))
                return reply_error(MHD_HTTP_MISDIRECTED_REQUEST,
                                   "the Host header does not name this server (--allow-host)");
        if (!post && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
                return reply_error(MHD_HTTP_METHOD_NOT_ALLOWED, "GET or POST");
        if (!known_path(url, post))
                return reply_error(MHD_HTTP_METHOD_NOT_ALLOWED, "wrong method for this path");
        if (strcmp(url, "/metrics") == 0)
                return metrics(db);
        if (post) {
                if (!body_is_json(connection))
                        return reply_error(MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                           "the body must be Content-Type: application/json");
                if (ctx->too_large)
                        return reply_error(MHD_HTTP_CONTENT_TOO_LARGE, "body over 1 MiB");
                body = json_loadb(ctx->body ? ctx->body : "", ctx->len, 0, &err);
                if (body == NULL)
                        return reply_error(MHD_HTTP_BAD_REQUEST, err.text);
                if (!json_is_object(body)) {
                        json_decref(body);
                        return reply_error(MHD_HTTP_BAD_REQUEST, "the body is a JSON object");
                }
        }
        /* A short wait: a pool this size is exhausted only when something is stuck. */
        rc = sombra_conn_acquire_timeout(db, 1000, &c);
        if (rc != SOMBRA_OK) {
                json_decref(body);
                return reply_status(rc);
        }
        r = route_with_conn(c, connection, url, post, body);
        sombra_conn_release(c);
        json_decref(body);
        return r;
}

/* libmicrohttpd's handler: first call makes the context, then the body arrives, then we answer. */
static enum MHD_Result
handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
       const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
        struct request_ctx *ctx = *con_cls;
        char *grown;

        (void)version;
        if (ctx == NULL) {
                ctx = calloc(1, sizeof(*ctx));
                *con_cls = ctx;
                return ctx != NULL ? MHD_YES : MHD_NO;
        }
        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (ctx->too_large || ctx->len + n > MAX_BODY) {
                        ctx->too_large = true;
                        return MHD_YES;
                }
                grown = realloc(ctx->body, ctx->len + n);
                if (grown == NULL)
                        return MHD_NO;
                memcpy(grown + ctx->len, upload_data, n);
                ctx->body = grown;
                ctx->len += n;
                return MHD_YES;
        }
        return reply_send(connection, route(cls, connection, url, method, ctx));
}

static void
request_done(void *cls, struct MHD_Connection *connection, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
        struct request_ctx *ctx = *con_cls;

        (void)cls;
        (void)connection;
        (void)toe;
        if (ctx != NULL)
                free(ctx->body);
        free(ctx);
        *con_cls = NULL;
}

/* ---- main ---- */

struct options {
        const char *db;
        unsigned port, threads;
        unsigned timeout;    /* seconds a connection may stay idle */
        unsigned max_conns;  /* connections at once */
        unsigned max_per_ip; /* connections at once from one address */
        const char *hosts[MAX_HOSTS];
        unsigned nhosts;
        enum sombra_sync_mode sync;
};

static const char usage[] =
    "usage: sombra-server --db PATH [--port N] [--threads N] [--sync full|normal|off]\n"
    "                     [--timeout SECONDS] [--max-connections N] [--max-per-ip N]\n"
    "                     [--allow-host HOST[:PORT]]...\n";

/* A numeric option's value, digits only and in range; false (said why) otherwise. */
static bool
option_number(const char *name, unsigned min, unsigned max, unsigned *out)
{
        uint64_t v;

        if (!cli_parse_count(name, optarg, min, max, &v))
                return false;
        *out = (unsigned)v;
        return true;
}

static bool
option_sync(enum sombra_sync_mode *sync)
{
        static const char *const names[] = {[SOMBRA_SYNC_FULL] = "full",
                                            [SOMBRA_SYNC_NORMAL] = "normal",
                                            [SOMBRA_SYNC_OFF] = "off"};

        for (size_t m = 0; m < sizeof(names) / sizeof(names[0]); m++) {
                if (names[m] != NULL && strcmp(optarg, names[m]) == 0) {
                        *sync = (enum sombra_sync_mode)m;
                        return true;
                }
        }
        return false;
}

/* 0 to run, 1 after --help, -1 on a bad option. */
static int
parse(int argc, char **argv, struct options *o)
{
        static const struct option longs[] = {{"db", required_argument, NULL, 'd'},
                                              {"port", required_argument, NULL, 'p'},
                                              {"threads", required_argument, NULL, 't'},
                                              {"sync", required_argument, NULL, 's'},
                                              {"timeout", required_argument, NULL, 'T'},
                                              {"max-connections", required_argument, NULL, 'C'},
                                              {"max-per-ip", required_argument, NULL, 'P'},
                                              {"allow-host", required_argument, NULL, 'H'},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
        bool ok = true;
        int c;

        while (ok && (c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
                switch (c) {
                case 'd':
                        o->db = optarg;
                        break;
                case 'p':
                        ok = option_number("--port", 0, 65535, &o->port);
                        break;
                case 't':
                        ok = option_number("--threads", 1, 64, &o->threads);
                        break;
                case 's':
                        ok = option_sync(&o->sync);
                        break;
                case 'T':
                        ok = option_number("--timeout", 1, 86400, &o->timeout);
                        break;
                case 'C':
                        ok = option_number("--max-connections", 1, 65536, &o->max_conns);
                        break;
                case 'P':
                        ok = option_number("--max-per-ip", 1, 65536, &o->max_per_ip);
                        break;
                case 'H':
                        ok = o->nhosts < MAX_HOSTS;
                        if (ok)
                                o->hosts[o->nhosts++] = optarg;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 1;
                default:
                        ok = false;
                }
        }
        /* libmicrohttpd shares the connection limit out among the pool's threads. */
        if (!ok || optind != argc || o->db == NULL || o->max_conns < o->threads)
                return -1;
        return 0;
}

static struct MHD_Daemon *
server_start(struct server *srv, const struct options *o)
{
        struct sockaddr_in addr = {.sin_family = AF_INET};

        addr.sin_port = htons((uint16_t)o->port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                handle, srv, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)o->threads,
                                MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned int)o->timeout, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned int)o->max_conns, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                (unsigned int)o->max_per_ip, MHD_OPTION_NOTIFY_COMPLETED,
                                request_done, NULL, MHD_OPTION_END);
}

int
main(int argc, char **argv)
{
        struct options o = {.threads = 4,
                            .sync = SOMBRA_SYNC_FULL,
                            .timeout = 30,
                            .max_conns = 512,
                            .max_per_ip = 64};
        struct server srv = {0};
        struct sombra_config cfg;
        const union MHD_DaemonInfo *info;
        struct MHD_Daemon *daemon;
        sigset_t stop;
        int rc = parse(argc, argv, &o), sig;

        if (rc != 0) {
                if (rc < 0)
                        fputs(usage, stderr);
                return rc < 0 ? 2 : 0;
        }
        /*
         * Blocked before any thread starts (the engine's own at sombra_open, then the
         * workers), so that all inherit the mask and only sigwait takes them: a thread
         * without the mask would take SIGTERM's default action and kill the process.
         */
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &stop, NULL);
        sombra_config_production(&cfg);
        cfg.sync_mode = o.sync;
        rc = sombra_open(o.db, &cfg, &srv.db);
        if (rc != SOMBRA_OK) {
                fprintf(stderr, "sombra-server: %s: %s\n", o.db, sombra_strerror(rc));
                return 1;
        }
        srv.hosts = o.hosts;
        srv.nhosts = o.nhosts;
        daemon = server_start(&srv, &o);
        info = daemon != NULL ? MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
        if (info == NULL) {
                fprintf(stderr, "sombra-server: cannot listen on 127.0.0.1:%u\n", o.port);
                if (daemon != NULL)
                        MHD_stop_daemon(daemon);
                sombra_close(srv.db);
                return 1;
        }
        printf("listening on http://127.0.0.1:%u\n", info->port);
        fflush(stdout);
        sigwait(&stop, &sig);
        MHD_stop_daemon(daemon);
        rc = sombra_close(srv.db);
        if (rc != SOMBRA_OK) {
                fprintf(stderr, "sombra-server: close: %s\n", sombra_strerror(rc));
                return 1;
        }
        return 0;
}
