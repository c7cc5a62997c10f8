/* The self-checking content the shared-fs replacement tests write: a header
 * line with a sequence number, the body's length and its FNV-1a hash, then
 * the body. A reader that gets anything else saw a torn (mixed, truncated or
 * empty) file. Shared by the library client (C++) and the plain client (C). */
#ifndef WLF_SHAREDFS_RECORD_H
#define WLF_SHAREDFS_RECORD_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RECORD_MAX (64 * 1024)

static inline uint64_t record_hash(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Writes the record for `seq` into buf (RECORD_MAX bytes); returns its size.
 * Sizes vary with seq (4 to 40 KiB), so a reader that mixes two versions or
 * sees a short file fails the length or hash check. */
static inline size_t record_make(char *buf, unsigned long long seq, const char *writer) {
    char body[RECORD_MAX];
    size_t len = 4096 + (size_t)(seq % 10) * 4000;
    for (size_t i = 0; i < len; ++i) body[i] = (char)('a' + (seq + i / 64) % 26);
    body[len - 1] = '\n';
    int h = snprintf(buf, RECORD_MAX, "seq=%010llu writer=%-24.24s len=%06zu sum=%016llx\n", seq, writer, len,
                     (unsigned long long)record_hash(body, len));
    memcpy(buf + h, body, len);
    return (size_t)h + len;
}

/* 0 and *seq when buf[0..n) is one whole record, -1 when it is torn. */
static inline int record_check(const char *buf, size_t n, unsigned long long *seq) {
    char writer[32];
    size_t len;
    unsigned long long sum;
    int h = 0;
    if (n < 16 || memchr(buf, '\n', n < 128 ? n : 128) == NULL) return -1;
    char head[128];
    size_t hl = (size_t)((const char *)memchr(buf, '\n', n < 128 ? n : 128) - buf) + 1;
    memcpy(head, buf, hl);
    head[hl] = '\0';
    if (sscanf(head, "seq=%llu writer=%31s len=%zu sum=%llx\n%n", seq, writer, &len, &sum, &h) != 4) return -1;
    if (hl + len != n) return -1;
    if (record_hash(buf + hl, len) != (uint64_t)sum) return -1;
    return 0;
}

#endif
