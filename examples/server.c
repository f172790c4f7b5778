/*
 * server.c - sombra-server: an HTTP front for one Sombra database, to copy
 * when embedding Sombra in a thread-pooled server.
 *
 * usage: sombra-server --db PATH [--port N] [--threads N] [--sync full|normal|off]
 *
 *   GET  /nodes/ID            the node: {"id", "labels", "props"}
 *   GET  /nodes/ID/neighbors  {"id", "neighbors": [{"edge", "node", "type", "dir"}]}
 *                             (?dir=out|in|both, default both)
 *   POST /nodes               {"labels": [...], "props": {...}}  -> 201 {"id"}
 *   POST /edges               {"src", "dst", "type", "props"}    -> 201 {"id"}
 *   GET  /metrics             sombra_metrics_prometheus, text format 0.0.4
 *
 * Errors are JSON too, {"error": "..."}: 400 for a bad id or body, 404 for an
 * unknown node or path, 405 for a wrong method, 413 for a body over 1 MiB,
 * 503 when no database connection is free, 500 otherwise.
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

#include "sombra.h"

#define MAX_BODY   (1u << 20)
#define MAX_PROPS  64u
#define MAX_LABELS 16u
#define JSON_TYPE  "application/json"
#define PROM_TYPE  "text/plain; version=0.0.4; charset=utf-8"

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

static json_t *
value_to_json(const struct sombra_value *v)
{
        switch (v->type) {
        case SOMBRA_BOOL:
                return json_boolean(v->u.b);
        case SOMBRA_INT:
                return json_integer(v->u.i);
        case SOMBRA_DOUBLE:
                return json_real(v->u.d);
        case SOMBRA_STRING:
                /* NULL (then JSON null) when the stored bytes are not UTF-8. */
                return json_stringn(v->u.s.ptr, v->u.s.len);
        default: /* SOMBRA_NULL, and SOMBRA_BYTES, which JSON cannot carry as they are */
                return json_null();
        }
}

/* JSON scalars only; false for arrays and objects. Strings point into `j`. */
static bool
value_from_json(json_t *j, struct sombra_value *v)
{
        switch (json_typeof(j)) {
        case JSON_STRING:
                *v = (struct sombra_value){.type = SOMBRA_STRING,
                                           .u.s = {json_string_value(j), json_string_length(j)}};
                return true;
        case JSON_INTEGER:
                *v = (struct sombra_value){.type = SOMBRA_INT, .u.i = json_integer_value(j)};
                return true;
        case JSON_REAL:
                *v = (struct sombra_value){.type = SOMBRA_DOUBLE, .u.d = json_real_value(j)};
                return true;
        case JSON_TRUE:
        case JSON_FALSE:
                *v = (struct sombra_value){.type = SOMBRA_BOOL, .u.b = json_is_true(j)};
                return true;
        case JSON_NULL:
                *v = (struct sombra_value){.type = SOMBRA_NULL};
                return true;
        default:
                return false;
        }
}

/* "props": an optional object of scalars, into props[MAX_PROPS]; *n of them. */
static bool
props_from_json(json_t *obj, struct sombra_prop *props, size_t *n)
{
        const char *key;
        json_t *val;

        *n = 0;
        if (obj == NULL)
                return true;
        if (!json_is_object(obj) || json_object_size(obj) > MAX_PROPS)
                return false;
        json_object_foreach(obj, key, val)
        {
                props[*n].key = key;
                if (!value_from_json(val, &props[*n].value))
                        return false;
                (*n)++;
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
        int rc = sombra_node_get(c, id, &e);

        if (rc != SOMBRA_OK)
                return reply_status(rc);
        labels = json_array();
        props = json_object();
        for (size_t i = 0; i < e->nlabels; i++)
                json_array_append_new(labels, json_string(e->labels[i]));
        for (size_t i = 0; i < e->nprops; i++)
                json_object_set_new(props, e->props[i].key, value_to_json(&e->props[i].value));
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
node_create(sombra_conn *c, json_t *body)
{
        const char *labels[MAX_LABELS];
        struct sombra_prop props[MAX_PROPS];
        json_t *jl = json_object_get(body, "labels"), *item;
        size_t nlabels = 0, nprops, i;
        uint64_t id = 0;

        if (jl != NULL && (!json_is_array(jl) || json_array_size(jl) > MAX_LABELS))
                return reply_error(MHD_HTTP_BAD_REQUEST, "labels is an array of strings");
        json_array_foreach(jl, i, item)
        {
                if (!json_is_string(item))
                        return reply_error(MHD_HTTP_BAD_REQUEST, "labels is an array of strings");
                labels[nlabels++] = json_string_value(item);
        }
        if (!props_from_json(json_object_get(body, "props"), props, &nprops))
                return reply_error(MHD_HTTP_BAD_REQUEST, "props is an object of scalars");
        return reply_created(sombra_node_create(c, labels, nlabels, props, nprops, &id), &id);
}

static struct reply
edge_create(sombra_conn *c, json_t *body)
{
        struct sombra_prop props[MAX_PROPS];
        json_t *type = json_object_get(body, "type");
        uint64_t src, dst, id = 0;
        size_t nprops;

        if (!id_from_json(json_object_get(body, "src"), &src) ||
            !id_from_json(json_object_get(body, "dst"), &dst) || !json_is_string(type))
                return reply_error(MHD_HTTP_BAD_REQUEST, "src and dst are ids, type a string");
        if (!props_from_json(json_object_get(body, "props"), props, &nprops))
                return reply_error(MHD_HTTP_BAD_REQUEST, "props is an object of scalars");
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
        uint64_t id;
        bool neighbors;

        if (post && strcmp(url, "/nodes") == 0)
                return node_create(c, body);
        if (post && strcmp(url, "/edges") == 0)
                return edge_create(c, body);
        if (!parse_node_path(url, &id, &neighbors))
                return reply_error(MHD_HTTP_NOT_FOUND, "no such path");
        if (neighbors)
                return node_neighbors(
                    c, id, MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "dir"));
        return node_get(c, id);
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

static struct reply
route(sombra_db *db, struct MHD_Connection *connection, const char *url, const char *method,
      struct request_ctx *ctx)
{
        bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
        json_t *body = NULL;
        json_error_t err;
        sombra_conn *c;
        struct reply r;
        int rc;

        if (!post && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
                return reply_error(MHD_HTTP_METHOD_NOT_ALLOWED, "GET or POST");
        if (!known_path(url, post))
                return reply_error(MHD_HTTP_METHOD_NOT_ALLOWED, "wrong method for this path");
        if (strcmp(url, "/metrics") == 0)
                return metrics(db);
        if (post) {
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
        enum sombra_sync_mode sync;
};

static const char usage[] =
    "usage: sombra-server --db PATH [--port N] [--threads N] [--sync full|normal|off]\n";

/* 0 to run, 1 after --help, -1 on a bad option. */
static int
parse(int argc, char **argv, struct options *o)
{
        static const struct option longs[] = {
            {"db", required_argument, NULL, 'd'},      {"port", required_argument, NULL, 'p'},
            {"threads", required_argument, NULL, 't'}, {"sync", required_argument, NULL, 's'},
            {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
        int c;

        while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
                switch (c) {
                case 'd':
                        o->db = optarg;
                        break;
                case 'p':
                        o->port = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 't':
                        o->threads = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 's':
                        if (strcmp(optarg, "full") == 0)
                                o->sync = SOMBRA_SYNC_FULL;
                        else if (strcmp(optarg, "normal") == 0)
                                o->sync = SOMBRA_SYNC_NORMAL;
                        else if (strcmp(optarg, "off") == 0)
                                o->sync = SOMBRA_SYNC_OFF;
                        else
                                return -1;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 1;
                default:
                        return -1;
                }
        }
        if (optind != argc || o->db == NULL || o->port > 65535 || o->threads == 0 ||
            o->threads > 64)
                return -1;
        return 0;
}

int
main(int argc, char **argv)
{
        struct options o = {.threads = 4, .sync = SOMBRA_SYNC_FULL};
        struct sockaddr_in addr = {.sin_family = AF_INET};
        struct sombra_config cfg;
        const union MHD_DaemonInfo *info;
        struct MHD_Daemon *daemon;
        sombra_db *db;
        sigset_t stop;
        int rc = parse(argc, argv, &o), sig;

        if (rc != 0) {
                if (rc < 0)
                        fputs(usage, stderr);
                return rc < 0 ? 2 : 0;
        }
        sombra_config_production(&cfg);
        cfg.sync_mode = o.sync;
        rc = sombra_open(o.db, &cfg, &db);
        if (rc != SOMBRA_OK) {
                fprintf(stderr, "sombra-server: %s: %s\n", o.db, sombra_strerror(rc));
                return 1;
        }
        /* Blocked before the workers start, so that they inherit the mask and sigwait gets them. */
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &stop, NULL);
        addr.sin_port = htons((uint16_t)o.port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
                                  NULL, handle, db, MHD_OPTION_THREAD_POOL_SIZE,
                                  (unsigned int)o.threads, MHD_OPTION_SOCK_ADDR, &addr,
                                  MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
        if (daemon == NULL) {
                fprintf(stderr, "sombra-server: cannot listen on 127.0.0.1:%u\n", o.port);
                sombra_close(db);
                return 1;
        }
        info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
        printf("listening on http://127.0.0.1:%u\n", info != NULL ? info->port : o.port);
        fflush(stdout);
        sigwait(&stop, &sig);
        MHD_stop_daemon(daemon);
        rc = sombra_close(db);
        if (rc != SOMBRA_OK) {
                fprintf(stderr, "sombra-server: close: %s\n", sombra_strerror(rc));
                return 1;
        }
        return 0;
}
