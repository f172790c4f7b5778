/*
 * sombra.h - the one public header of libsombra, an embedded property graph
 * database for multi-threaded programs that share one database file.
 *
 * Conventions
 *   Every function returns an int status: SOMBRA_OK (0) or a negative
 *   SOMBRA_E* code; sombra_strerror() turns one into a sentence. Results come
 *   back through out parameters, which are left untouched on error.
 *
 * Status of this header
 *   This revision defines the status codes, the value model and the
 *   configuration that the storage core (core/) already honours. The
 *   connection pool, the writer thread and the handle-based API built on them
 *   are described in pool/README.md and sync/README.md and land next; until
 *   then the core is driven through core/graph.h by one thread.
 */
#ifndef SOMBRA_H
#define SOMBRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Status codes. Negative, in a range of their own so that they never collide
 * with errno values a caller may also be juggling.
 */
enum sombra_status {
        SOMBRA_OK = 0,
        SOMBRA_EINVAL = -30001,    /* an argument is NULL, empty or out of range */
        SOMBRA_ENOTFOUND = -30002, /* no node, edge, property or index with that id/name */
        SOMBRA_ENOMEM = -30003,    /* out of memory */
        SOMBRA_EIO = -30004,       /* the operating system failed a read, write or sync */
        SOMBRA_ECORRUPT = -30005,  /* a page, meta page or WAL record failed its checks */
        SOMBRA_ENOTDB = -30006,    /* the file is not a Sombra database (or another version) */
        SOMBRA_ELOCKED = -30007,   /* another process has the database open */
        SOMBRA_ETOOBIG = -30008,   /* a name, value, record or batch exceeds its limit */
        SOMBRA_EEXIST = -30009,    /* it already exists (an index, for example) */
        SOMBRA_EBUSY = -30010,     /* no connection free, or a transaction is in progress */
        SOMBRA_EAGAIN = -30011,    /* would block and the caller asked not to */
        SOMBRA_ETIMEDOUT = -30012, /* a wait or a transaction ran past its time limit */
        SOMBRA_ECLOSED = -30013,   /* the database or handle was closed */
        SOMBRA_EFAILED = -30014,   /* an earlier I/O failure made the database read-only */
        SOMBRA_ENOSPC = -30015,    /* the disk is full */
        SOMBRA_ENOTXN = -30016,    /* the call needs a transaction and none is open */
        SOMBRA_ETYPE = -30017,     /* a value has the wrong type for the operation */
        SOMBRA_EPERM = -30018      /* the file cannot be opened for reading and writing */
};

/*
 * Returns a static, human-readable sentence for a status code. Never NULL;
 * unknown codes get a generic sentence. Any thread; never blocks.
 */
const char *sombra_strerror(int status);

/* Limits. Names are labels, edge types and property keys. */
#define SOMBRA_MAX_NAME         255u               /* bytes in a name, at least 1 */
#define SOMBRA_MAX_VALUE        (16u << 20)        /* bytes in one string or bytes value */
#define SOMBRA_MAX_RECORD       (32u << 20)        /* bytes in one encoded node or edge */
#define SOMBRA_MAX_LABELS       256u               /* labels on one node */
#define SOMBRA_MAX_PROPS        4096u              /* properties on one node or edge */
#define SOMBRA_DEFAULT_PAGESIZE 8192u
#define SOMBRA_MIN_PAGESIZE     4096u
#define SOMBRA_MAX_PAGESIZE     65536u
#define SOMBRA_MIN_CACHE_PAGES  64u

/* Property values. Strings are UTF-8 by convention but stored as given. */
enum sombra_type {
        SOMBRA_NULL = 0,
        SOMBRA_BOOL = 1,
        SOMBRA_INT = 2,
        SOMBRA_DOUBLE = 3,
        SOMBRA_STRING = 4,
        SOMBRA_BYTES = 5
};

struct sombra_value {
        enum sombra_type type;
        union {
                bool b;
                int64_t i;
                double d;
                struct {
                        const void *ptr; /* may be NULL only when len is 0 */
                        size_t len;
                } s; /* SOMBRA_STRING and SOMBRA_BYTES */
        } u;
};

struct sombra_prop {
        const char *key; /* NUL-terminated name */
        struct sombra_value value;
};

/* Edge directions, for neighbour queries and traversals. */
enum sombra_dir { SOMBRA_OUT = 1, SOMBRA_IN = 2, SOMBRA_BOTH = 3 };

/*
 * Durability. What a crash can take away:
 *   FULL        nothing that was acknowledged;
 *   NORMAL      at most the last sync_interval commits / sync_interval_ms;
 *   CHECKPOINT  everything since the last checkpoint;
 *   OFF         everything not checkpointed (the WAL is never synced).
 */
enum sombra_sync_mode {
        SOMBRA_SYNC_FULL = 0,
        SOMBRA_SYNC_NORMAL = 1,
        SOMBRA_SYNC_CHECKPOINT = 2,
        SOMBRA_SYNC_OFF = 3
};

struct sombra_config {
        uint32_t page_size;             /* bytes, power of two; used only when creating */
        enum sombra_sync_mode sync_mode;
        uint32_t sync_interval;         /* NORMAL: sync after this many commits */
        uint32_t sync_interval_ms;      /* NORMAL: ... or after this many milliseconds */
        uint32_t group_commit_delay_us; /* how long the fsync thread may wait to grow a group */
        uint64_t checkpoint_threshold;  /* WAL bytes that trigger an automatic checkpoint */
        uint32_t page_cache_size;       /* pages kept in memory, at least SOMBRA_MIN_CACHE_PAGES */
        uint32_t max_connections;       /* pooled handles */
        uint32_t ring_capacity;         /* requests in flight per handle, power of two */
        uint32_t txn_timeout_ms;        /* how long an interactive write txn may hold the writer */
        bool checksums;                 /* verify page checksums on every read */
};

/*
 * Presets. Each fills *config completely; change any field afterwards.
 * production: FULL. balanced: NORMAL, sync every 100 commits or 100 ms.
 * benchmark: OFF. Return SOMBRA_EINVAL when config is NULL. Any thread.
 */
int sombra_config_production(struct sombra_config *config);
int sombra_config_balanced(struct sombra_config *config);
int sombra_config_benchmark(struct sombra_config *config);

#ifdef __cplusplus
}
#endif

#endif /* SOMBRA_H */
