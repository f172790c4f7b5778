/*
 * status.h - what core/status.c gives the rest of the library besides the
 * public functions: the copying of the caller-allocated structs whose size
 * may differ from the library's (struct sombra_config, sombra_stats,
 * sombra_metrics; see "Sizes" in sombra.h).
 */
#ifndef SOMBRA_STATUS_H
#define SOMBRA_STATUS_H

#include <stddef.h>

#include "sombra.h"

/*
 * Writes the library's struct src (src_len bytes) into the caller's dst of
 * dst_len bytes: its first dst_len bytes when the caller's header is older
 * (smaller), all of it and zeros after when newer. Never past dst_len.
 */
void status_copy_sized(void *dst, size_t dst_len, const void *src, size_t src_len);

/*
 * The caller's config (NULL: production) as the library's whole struct in
 * *out: the first config->size bytes of it, production defaults for fields
 * the caller's header did not have, and out->size set to the library's size.
 * SOMBRA_EINVAL, *out untouched, when config->size is below
 * SOMBRA_CONFIG_SIZE_MIN.
 */
int status_config_read(const struct sombra_config *config, struct sombra_config *out);

#endif
