/*
 * status.c - sombra_strerror and the configuration presets: the small public
 * functions that belong to no engine module.
 */
#include <string.h>

#include "sombra.h"

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
        default:
                return "unknown status code";
        }
}

static void
config_defaults(struct sombra_config *c)
{
        memset(c, 0, sizeof(*c));
        c->page_size = SOMBRA_DEFAULT_PAGESIZE;
        c->sync_interval = 100;
        c->sync_interval_ms = 100;
        c->group_commit_delay_us = 0;
        c->checkpoint_threshold = 64u << 20;
        c->page_cache_size = 8192; /* 64 MiB of 8 KiB pages */
        c->max_connections = 64;
        c->ring_capacity = 256;
        c->txn_timeout_ms = 5000;
        c->checksums = true;
        c->metrics = true;
}

int
sombra_config_production(struct sombra_config *config)
{
        if (config == NULL)
                return SOMBRA_EINVAL;
        config_defaults(config);
        config->sync_mode = SOMBRA_SYNC_FULL;
        return SOMBRA_OK;
}

int
sombra_config_balanced(struct sombra_config *config)
{
        if (config == NULL)
                return SOMBRA_EINVAL;
        config_defaults(config);
        config->sync_mode = SOMBRA_SYNC_NORMAL;
        return SOMBRA_OK;
}

int
sombra_config_benchmark(struct sombra_config *config)
{
        if (config == NULL)
                return SOMBRA_EINVAL;
        config_defaults(config);
        config->sync_mode = SOMBRA_SYNC_OFF;
        config->checksums = false;
        return SOMBRA_OK;
}
