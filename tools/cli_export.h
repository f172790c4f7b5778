/* cli_export.h - `sombra export`, and the JSON form of a node or edge it shares with `sombra get`.
 */
#ifndef SOMBRA_CLI_EXPORT_H
#define SOMBRA_CLI_EXPORT_H

#include <stdbool.h>

#include <jansson.h>

#include "sombra.h"

/*
 * {"id": ID, "labels": [...], "props": {...}} for a node, {"id": ID, "src":
 * SRC, "dst": DST, "type": T, "props": {...}} for an edge: one JSON Lines
 * row of the export. NULL when out of memory or a value has no JSON form.
 */
json_t *export_entity_json(const struct sombra_entity *e, bool edge);

#endif
