// The records behind identity.hpp, shared by identity.cpp (adding, finding
// and retiring them), identity_read.cpp (read-opens and access of a pending
// path) and identity_exec.cpp (passing them across execve). See identity.cpp
// for the locking: readers take none (a seqlock on `gen`), writers hold
// g_write.
#pragma once

#include "handlers.hpp"

#include <wrap_lockfile/wrap_lockfile.h>

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace wrap_lockfile::shim {

// More pending replacements at once than this get no identity (they behave
// as before: the path shows the old file until the commit).
constexpr int kRecords = 128;

struct Record {
    std::atomic<uint32_t> gen;    // 0: free; else equal to *live while valid
    std::atomic<uint32_t> *live;  // this record's word in its opener's page (null: see still_the_temp)
    std::atomic<int> fd;
    pid_t owner;  // the process whose replacement it is
    const wlf_file *file;
    dev_t dev;  // the temp's
    ino_t ino;
    Shown shown;
    uint16_t target_base, opened_base;  // offsets of the last components
    char target[WLF_PATH_MAX];          // normalized final target
    char opened[WLF_PATH_MAX];          // normalized path opened, if not the target; else ""
};

extern constinit Record g_records[kRecords];
extern constinit std::atomic<int> g_high;  // records at and above this index are free
extern pthread_mutex_t g_write;

struct WriteGuard {
    WriteGuard() { pthread_mutex_lock(&g_write); }
    ~WriteGuard() { pthread_mutex_unlock(&g_write); }
};

// Whether a record copied at generation `gen` still stands for a pending
// replacement.
bool valid(const Record &r, uint32_t gen);

// Fills and publishes a free record (callers hold g_write); with_page: its
// validity is told by this process's page, else by its descriptor.
void add_record(const wlf_file *f, pid_t owner, int fd, dev_t dev, ino_t ino, Shown shown, const char *target,
                const char *opened, bool with_page);

}  // namespace wrap_lockfile::shim
