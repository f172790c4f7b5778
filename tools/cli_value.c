/*
 * cli_value.c - property values in the import/export formats.
 *
 * CSV cells carry no type of their own: the column header does (`age:int`),
 * and the cell is the value's text: decimal for int, the shortest decimal
 * that reads back to the same double, `true`/`false`, the string itself,
 * lower-case hex for bytes. JSON values carry their type: an integer is an
 * int, a number with a fraction or exponent a double, and bytes are the
 * object {"$bytes": "HEX"}, the one object a property value may be.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_value.h"

void *
cv_arena_alloc(struct cv_arena *a, size_t len)
{
        char *p;

        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 16;
                void **v = realloc(a->blocks, cap * sizeof(*v));
                if (v == NULL)
                        return NULL;
                a->blocks = v;
                a->cap = cap;
        }
        p = malloc(len + 1);
        if (p == NULL)
                return NULL;
        p[len] = '\0';
        a->blocks[a->n++] = p;
        return p;
}

char *
cv_arena_strndup(struct cv_arena *a, const char *s, size_t len)
{
        char *p = cv_arena_alloc(a, len);

        if (p != NULL && len > 0)
                memcpy(p, s, len);
        return p;
}

void
cv_arena_reset(struct cv_arena *a)
{
        for (size_t i = 0; i < a->n; i++)
                free(a->blocks[i]);
        a->n = 0;
}

void
cv_arena_free(struct cv_arena *a)
{
        cv_arena_reset(a);
        free(a->blocks);
        a->blocks = NULL;
        a->cap = 0;
}

bool
cv_text_add(struct cv_text *t, const char *s, size_t len)
{
        if (t->len + len + 1 > t->cap) {
                size_t cap = t->cap ? t->cap : 64;
                char *p;
                while (cap < t->len + len + 1)
                        cap *= 2;
                p = realloc(t->p, cap);
                if (p == NULL)
                        return false;
                t->p = p;
                t->cap = cap;
        }
        if (len > 0)
                memcpy(t->p + t->len, s, len);
        t->len += len;
        t->p[t->len] = '\0';
        return true;
}

void
cv_text_free(struct cv_text *t)
{
        free(t->p);
        *t = (struct cv_text){0};
}

static const char *const type_names[] = {
    [SOMBRA_NULL] = "null",     [SOMBRA_BOOL] = "bool",     [SOMBRA_INT] = "int",
    [SOMBRA_DOUBLE] = "double", [SOMBRA_STRING] = "string", [SOMBRA_BYTES] = "bytes",
};

const char *
cv_type_name(enum sombra_type t)
{
        return (unsigned)t <= SOMBRA_BYTES ? type_names[t] : "unknown";
}

bool
cv_type_parse(const char *name, enum sombra_type *out)
{
        for (unsigned t = 0; t <= SOMBRA_BYTES; t++) {
                if (strcmp(name, type_names[t]) == 0) {
                        *out = (enum sombra_type)t;
                        return true;
                }
        }
        return false;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool
cv_utf8_valid(const char *s, size_t len)
{
        const unsigned char *p = (const unsigned char *)s, *end = p + len;

        while (p < end) {
                unsigned c = *p, n;
                uint32_t cp;
                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3;
                        cp = c & 0x07;
                } else {
                        return false;
                }
                if ((size_t)(end - p) <= n)
                        return false;
                for (unsigned i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                p += n + 1;
        }
        return true;
}

bool
cv_name_valid(const char *s, size_t len)
{
        return len >= 1 && len <= SOMBRA_MAX_NAME && memchr(s, '\0', len) == NULL &&
               cv_utf8_valid(s, len);
}

static int
hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static const char *
hex_decode(const char *s, size_t len, struct cv_arena *arena, struct sombra_value *out)
{
        unsigned char *p;

        if (len % 2 != 0)
                return "bytes: odd number of hex digits";
        if (len / 2 > SOMBRA_MAX_VALUE)
                return "bytes: longer than the 16 MiB limit";
        p = cv_arena_alloc(arena, len / 2);
        if (p == NULL)
                return "out of memory";
        for (size_t i = 0; i < len; i += 2) {
                int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
                if (hi < 0 || lo < 0)
                        return "bytes: not a hex digit";
                p[i / 2] = (unsigned char)(hi << 4 | lo);
        }
        out->type = SOMBRA_BYTES;
        out->u.s.ptr = p;
        out->u.s.len = len / 2;
        return NULL;
}

static const char *
string_value(const char *s, size_t len, struct sombra_value *out)
{
        if (len > SOMBRA_MAX_VALUE)
                return "string: longer than the 16 MiB limit";
        if (!cv_utf8_valid(s, len))
                return "string: invalid UTF-8";
        out->type = SOMBRA_STRING;
        out->u.s.ptr = s;
        out->u.s.len = len;
        return NULL;
}

const char *
cv_from_text(enum sombra_type t, const char *s, size_t len, struct cv_arena *arena,
             struct sombra_value *out)
{
        char *end;

        /* strtoll and strtod need a NUL and would skip leading blanks. */
        if (t == SOMBRA_INT || t == SOMBRA_DOUBLE) {
                if (len == 0 || isspace((unsigned char)s[0]) || strlen(s) != len)
                        return t == SOMBRA_INT ? "not an integer" : "not a number";
                errno = 0;
        }
        switch (t) {
        case SOMBRA_INT:
                out->u.i = strtoll(s, &end, 10);
                if (*end != '\0')
                        return "not an integer";
                if (errno == ERANGE)
                        return "integer out of range";
                out->type = SOMBRA_INT;
                return NULL;
        case SOMBRA_DOUBLE:
                out->u.d = strtod(s, &end);
                if (*end != '\0')
                        return "not a number";
                out->type = SOMBRA_DOUBLE;
                return NULL;
        case SOMBRA_BOOL:
                if (len == 4 && memcmp(s, "true", 4) == 0)
                        out->u.b = true;
                else if (len == 5 && memcmp(s, "false", 5) == 0)
                        out->u.b = false;
                else
                        return "not a bool (true or false)";
                out->type = SOMBRA_BOOL;
                return NULL;
        case SOMBRA_STRING:
                return string_value(s, len, out);
        case SOMBRA_BYTES:
                return hex_decode(s, len, arena, out);
        default:
                return "a CSV cell cannot hold null";
        }
}

/* The shortest %g form that strtod reads back as exactly d. */
static int
double_text(double d, char *buf, size_t len)
{
        int n = 0;

        for (int prec = 15; prec <= 17; prec++) {
                n = snprintf(buf, len, "%.*g", prec, d);
                if (strtod(buf, NULL) == d)
                        break;
        }
        return n;
}

bool
cv_to_text(const struct sombra_value *v, struct cv_text *out)
{
        static const char hex[] = "0123456789abcdef";
        char buf[64];
        int n;

        switch (v->type) {
        case SOMBRA_BOOL:
                return v->u.b ? cv_text_add(out, "true", 4) : cv_text_add(out, "false", 5);
        case SOMBRA_INT:
                n = snprintf(buf, sizeof(buf), "%" PRId64, v->u.i);
                return cv_text_add(out, buf, (size_t)n);
        case SOMBRA_DOUBLE:
                n = double_text(v->u.d, buf, sizeof(buf));
                return cv_text_add(out, buf, (size_t)n);
        case SOMBRA_STRING:
                return cv_text_add(out, v->u.s.ptr, v->u.s.len);
        case SOMBRA_BYTES:
                for (size_t i = 0; i < v->u.s.len; i++) {
                        unsigned char c = ((const unsigned char *)v->u.s.ptr)[i];
                        char pair[2] = {hex[c >> 4], hex[c & 15]};
                        if (!cv_text_add(out, pair, 2))
                                return false;
                }
                return cv_text_add(out, "", 0);
        default:
                return cv_text_add(out, "", 0);
        }
}

const char *
cv_from_json(json_t *j, struct cv_arena *arena, struct sombra_value *out)
{
        json_t *hex;

        switch (json_typeof(j)) {
        case JSON_NULL:
                out->type = SOMBRA_NULL;
                return NULL;
        case JSON_TRUE:
        case JSON_FALSE:
                out->type = SOMBRA_BOOL;
                out->u.b = json_is_true(j);
                return NULL;
        case JSON_INTEGER:
                out->type = SOMBRA_INT;
                out->u.i = json_integer_value(j);
                return NULL;
        case JSON_REAL:
                out->type = SOMBRA_DOUBLE;
                out->u.d = json_real_value(j);
                return NULL;
        case JSON_STRING:
                return string_value(json_string_value(j), json_string_length(j), out);
        case JSON_OBJECT:
                hex = json_object_get(j, "$bytes");
                if (json_object_size(j) != 1 || !json_is_string(hex))
                        return "an object value must be {\"$bytes\": \"HEX\"}";
                return hex_decode(json_string_value(hex), json_string_length(hex), arena, out);
        default:
                return "an array is not a property value";
        }
}

json_t *
cv_to_json(const struct sombra_value *v)
{
        struct cv_text hex = {0};
        json_t *j;

        switch (v->type) {
        case SOMBRA_BOOL:
                return json_boolean(v->u.b);
        case SOMBRA_INT:
                return json_integer(v->u.i);
        case SOMBRA_DOUBLE:
                return isfinite(v->u.d) ? json_real(v->u.d) : NULL;
        case SOMBRA_STRING:
                return json_stringn(v->u.s.ptr, v->u.s.len);
        case SOMBRA_BYTES:
                if (!cv_to_text(v, &hex))
                        return NULL;
                j = json_pack("{s:s}", "$bytes", hex.p);
                cv_text_free(&hex);
                return j;
        default:
                return json_null();
        }
}
