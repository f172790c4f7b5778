/*
 * status.c - sombra_strerror, sombra_version and the configuration presets:
 * the small public functions that belong to no engine module, and the copying
 * of structs whose size the caller's header decides.
 */
#include <string.h>

#include "status.h"

const char *
sombra_strerror(int status)
{
        switch (status) {
        case SOMBRA_OK:
                return "success";
        case SOMBRA_EINVAL:
                return "invalid argument";
        case SOMBRA_ENOTFOUND:
                return "not found";
        case SOMBRA_ENOMEM:
                return "out of memory";
        case SOMBRA_EIO:
                return "I/O error";
        case SOMBRA_ECORRUPT:
                return "database file or WAL is corrupt";
        case SOMBRA_ENOTDB:
                return "file is not a Sombra database of a supported version";
        case SOMBRA_ELOCKED:
                return "database is open in another process";
        case SOMBRA_ETOOBIG:
                return "name, value, record or batch exceeds its size limit";
        case SOMBRA_EEXIST:
                return "already exists";
        case SOMBRA_EBUSY:
                return "busy: no free connection or a transaction is already open";
        case SOMBRA_EAGAIN:
                return "operation would block";
        case SOMBRA_ETIMEDOUT:
                return "timed out";
        case SOMBRA_ECLOSED:
                return "database or handle is closed";
        case SOMBRA_EFAILED:
                return "an earlier I/O failure made the database refuse writes; reopen it";
        case SOMBRA_ENOSPC:
                return "no space left on device";
        case SOMBRA_ENOTXN:
                return "no transaction is open";
        case SOMBRA_ETYPE:
                return "value has the wrong type";
        case SOMBRA_EPERM:
                return "permission denied";
        case SOMBRA_EWAL:
                return "the -wal file beside the database is not its write-ahead log "
                       "(another database's, or not a log); move it away";
        case SOMBRA_EREADONLY:
                return "the database was opened read-only";
        default:
                return "unknown status code";
        }
}

void
status_copy_sized(void *dst, size_t dst_len, const void *src, size_t src_len)
{
        size_t n = dst_len < src_len ? dst_len : src_len;

        memcpy(dst, src, n);
        memset((char *)dst + n, 0, dst_len - n);
}

static void
config_defaults(struct sombra_config *c)
{
        memset(c, 0, sizeof(*c));
        c->size = sizeof(*c);
        c->page_size = SOMBRA_DEFAULT_PAGESIZE;
        c->sync_interval = 100;
        c->sync_interval_ms = 100;
        c->group_commit_delay_us = 0;
        /*
         * The bound on recovery: a reopen replays the log after the last
         * checkpoint's place, 5-10 ms per MiB here. A smaller one costs
         * throughput, since each checkpoint's sync writes every page changed
         * since the one before: durable_commit_async lost about 5% at 8 MiB,
         * 20% at 4 MiB and a third at 1 MiB (bench/README.md, "Checkpoints
         * beside the writer").
         */
        c->checkpoint_threshold = 16u << 20;
        c->page_cache_size = 8192; /* 64 MiB of 8 KiB pages */
        c->max_connections = 64;
        c->ring_capacity = 256;
        c->txn_timeout_ms = 5000;
        c->checksums = true;
        c->metrics = true;
}

/* A preset into the caller's config of size bytes, which it then says it has. */
static int
config_preset(struct sombra_config *config, size_t size, enum sombra_sync_mode mode)
{
        struct sombra_config c;

        if (config == NULL || size < SOMBRA_CONFIG_SIZE_MIN || size > UINT32_MAX)
                return SOMBRA_EINVAL;
        config_defaults(&c);
        c.sync_mode = mode;
        c.checksums = mode != SOMBRA_SYNC_OFF;
        c.size = (uint32_t)size;
        status_copy_sized(config, size, &c, sizeof(c));
        return SOMBRA_OK;
}

int
sombra_config_production_sized(struct sombra_config *config, size_t size)
{
        return config_preset(config, size, SOMBRA_SYNC_FULL);
}

int
sombra_config_balanced_sized(struct sombra_config *config, size_t size)
{
        return config_preset(config, size, SOMBRA_SYNC_NORMAL);
}

int
sombra_config_benchmark_sized(struct sombra_config *config, size_t size)
{
        return config_preset(config, size, SOMBRA_SYNC_OFF);
}

int
status_config_read(const struct sombra_config *config, struct sombra_config *out)
{
        struct sombra_config c;

        (void)config_preset(&c, sizeof(c), SOMBRA_SYNC_FULL);
        if (config != NULL) {
                if (config->size < SOMBRA_CONFIG_SIZE_MIN)
                        return SOMBRA_EINVAL;
                memcpy(&c, config, config->size < sizeof(c) ? config->size : sizeof(c));
                c.size = sizeof(c);
        }
        *out = c;
        return SOMBRA_OK;
}

const char *
sombra_version(void)
{
        return SOMBRA_BUILD_VERSION;
}
