// faultfs: a passthrough FUSE file system over a backing directory that
// records every operation and injects faults, for the fault suite.
//
//   faultfs BACKING_DIR MOUNTPOINT [FUSE OPTIONS]   (the tests pass -f -s)
//
// Control file at the mount root, /.faultfs-control (not listed by readdir):
// each written line takes effect before write(2) returns:
//   fault OP GLOB ERRNO [nth=N] [count=N] [for=MS] [after] [short=N] [delay=MS] [kill] [drop]
//       OP: an operation name below, "setattr" (chmod/chown/truncate/utimens),
//       "getattr" (every lookup and stat: the error is returned, nothing
//       logged; "*" does not include it) or "*"; GLOB: fnmatch(3) without flags on the path relative to the
//       mount ("." for the root; for rename either name); ERRNO: EIO, 5 or OK.
//       The rule fires on its nth match (default 1) and then for count
//       matches (default: every one); with for=MS only during the MS
//       milliseconds after the rule was set (as a cache's stale answer
//       lasts until the cache times out). By default the operation is not done,
//       so a failing fsync does not sync; with "after" it is done and the
//       error returned anyway. short=N makes a write store at most N bytes
//       and report that count (ERRNO OK).
//       delay=MS sleeps MS milliseconds before the operation, without
//       holding faultfs's lock (mount without -s for others to proceed), and
//       logs a "delay" line when the sleep starts; with ERRNO OK the
//       operation is then done normally.
//       kill sends SIGKILL to the calling process (its thread id from
//       fuse_get_context(); the whole process dies). The operation is not
//       done (reply EINTR or ERRNO), or with "after" done and then killed.
//       The process dies when faultfs replies: FUSE waits for a request it
//       has handed out.
//       drop (fsync, fsyncdir only): the sync is not done; the reply is
//       ERRNO, so with OK the file system lies. Logged fault=dropped: the
//       crash checker treats it as no sync and the file's unsynced changes
//       as lost for good (a later fsync does not make them durable either).
//   clear | reset-log | mark LABEL
// Reading it returns the log as of open(2), one line per operation:
//   SEQ OP path=P [path2=P] ino=N [fh=N] [off=N] [len=N] [size=N] [mode=O]
//       [flags=X] [datasync=N] res=N [err=NAME]
//       [fault=injected|after|short|delayed|killed|killed-after|dropped]
//       [data=HEX]
//   SEQ delay path=P op=OP ms=N        (a delay starts; the operation's own
//                                       line follows when it ends)
// Paths are percent-encoded; ino is the backing inode, the file's identity.
// Operations on an open file give the path FUSE passes, or (renamed or
// unlinked since) the one it was opened by.
// Queries (getattr, readdir, access, statfs, getxattr, listxattr) are not
// logged; write data is logged in full up to kMaxLoggedData bytes.
#define FUSE_USE_VERSION 31

#include <fuse.h>

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr const char *kControl = "/.faultfs-control";
constexpr size_t kMaxLoggedData = 1 << 16;

struct Rule {
    std::string op;
    std::string glob;
    int error = 0;
    long nth = 1;
    long count = -1;  // < 0: unlimited
    std::chrono::steady_clock::time_point until{};  // for=MS: the end; default: none
    bool after = false;
    long short_len = -1;
    long delay_ms = -1;
    bool kill = false;
    bool drop = false;
    long seen = 0;
};

struct Handle {
    int fd = -1;
    ino_t ino = 0;
    std::string path;  // as opened, for logging and matching when FUSE gives no path
    bool control = false;
    std::string snapshot;  // control file: the log as of open
    std::string pending;   // control file: an incomplete written line
};

struct DirHandle {
    DIR *dir = nullptr;
    ino_t ino = 0;
    std::string path;
};

// -s makes FUSE single-threaded, but the mutex keeps this correct without it.
std::mutex g_mutex;
int g_backing = -1;
std::vector<Rule> g_rules;
std::string g_log;
unsigned long g_seq = 0;

const std::map<std::string_view, int> kErrnos = {
    {"OK", 0},         {"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EACCES", EACCES},
    {"EPERM", EPERM},  {"EBUSY", EBUSY},   {"EXDEV", EXDEV},   {"EROFS", EROFS},   {"ENOENT", ENOENT},
    {"EEXIST", EEXIST}, {"EFBIG", EFBIG},  {"EINTR", EINTR},   {"ENOMEM", ENOMEM}, {"EAGAIN", EAGAIN},
    {"ENOLCK", ENOLCK}, {"EMFILE", EMFILE}, {"ENAMETOOLONG", ENAMETOOLONG}, {"EINVAL", EINVAL},
    {"ESTALE", ESTALE}, {"EBADFD", EBADFD},
};

std::string errno_name(int e) {
    for (const auto &[name, value] : kErrnos)
        if (value == e && e != 0) return std::string(name);
    return std::to_string(e);
}

// Relative to the backing directory: "." for the root.
std::string rel(const char *path) {
    if (!path) return "";
    while (*path == '/') ++path;
    return *path ? path : ".";
}

std::string encode(std::string_view s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (c > 0x20 && c < 0x7f && c != '%' && c != '=') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out.empty() ? "%00" : out;
}

ino_t ino_of(const std::string &r) {
    struct stat st;
    return fstatat(g_backing, r.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_ino : 0;
}

ino_t ino_of_fd(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// One log line under construction; fields are appended in a fixed order by
// the callers, so the log is stable for the same sequence of calls.
struct Entry {
    std::string line;
    std::string data_hex;  // last on the line, after the result
    // The sequence number is given when the line is logged (finish), so the
    // log stays in order when a delayed operation lets others pass.
    Entry(const char *op, const std::string &path) { line = std::string(op) + " path=" + encode(path); }
    Entry &num(const char *key, long long v) {
        line += std::string(" ") + key + "=" + std::to_string(v);
        return *this;
    }
    Entry &str(const char *key, const std::string &v) {
        line += std::string(" ") + key + "=" + v;
        return *this;
    }
    Entry &oct(const char *key, unsigned v) {
        char buf[32];
        snprintf(buf, sizeof buf, " %s=0%o", key, v);
        line += buf;
        return *this;
    }
    Entry &hex(const char *key, unsigned v) {
        char buf[32];
        snprintf(buf, sizeof buf, " %s=0x%x", key, v);
        line += buf;
        return *this;
    }
    Entry &data(const char *buf, size_t n) {
        static const char digits[] = "0123456789abcdef";
        if (n > kMaxLoggedData) return *this;
        data_hex = " data=";
        for (size_t i = 0; i < n; ++i) {
            data_hex += digits[static_cast<unsigned char>(buf[i]) >> 4];
            data_hex += digits[static_cast<unsigned char>(buf[i]) & 15];
        }
        return *this;
    }
};

// What a matching rule asks for.
struct Fault {
    bool fire = false;
    int error = 0;
    bool after = false;
    long short_len = -1;
    bool kill = false;
    bool drop = false;
    // The operation is not done: an injected error, a kill before it, a drop.
    bool skip() const { return fire && !after && short_len < 0 && (error != 0 || kill || drop); }
};

Fault match(const char *op, const std::string &path, const std::string &path2 = {}) {
    static const char *const setattr_ops[] = {"chmod", "chown", "truncate", "utimens"};
    for (Rule &r : g_rules) {
        // "*" leaves getattr alone: every step looks its files up.
        bool op_ok = (r.op == "*" && strcmp(op, "getattr") != 0) || r.op == op;
        if (r.op == "setattr")
            for (const char *s : setattr_ops) op_ok = op_ok || strcmp(s, op) == 0;
        if (!op_ok) continue;
        bool path_ok = fnmatch(r.glob.c_str(), path.c_str(), 0) == 0 ||
                       (!path2.empty() && fnmatch(r.glob.c_str(), path2.c_str(), 0) == 0);
        if (!path_ok) continue;
        if (r.until != std::chrono::steady_clock::time_point{} && std::chrono::steady_clock::now() >= r.until)
            continue;
        ++r.seen;
        if (r.seen < r.nth || (r.count >= 0 && r.seen >= r.nth + r.count)) continue;
        Fault f{true, r.error, r.after, r.short_len, r.kill, r.drop};
        if (r.delay_ms > 0) {
            // The caller holds g_mutex (a lock_guard): let the other threads
            // (and the control file) run while this request sleeps. r may be
            // gone when we wake; f is a copy.
            long ms = r.delay_ms;
            g_log += std::to_string(++g_seq) + " delay path=" + encode(path) + " op=" + op + " ms=" +
                     std::to_string(ms) + "\n";
            g_mutex.unlock();
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            g_mutex.lock();
        }
        return f;
    }
    return {};
}

// Ends an operation: result res (>= 0 or -errno), overridden by the fault.
// With kill, the caller is sent SIGKILL here; it dies when the reply
// reaches the kernel (before the operation's effect if it was skipped).
int finish(Entry &e, int res, const Fault &f) {
    const char *tag = nullptr;
    if (f.fire && f.short_len >= 0) {
        tag = "short";
    } else if (f.fire) {
        bool done = !f.skip() && res >= 0;  // done, and succeeded
        if (f.drop) {
            res = -f.error;
            tag = "dropped";
        } else if (f.kill) {
            if (!f.after) res = f.error ? -f.error : -EINTR;
            else if (f.error && done) res = -f.error;
            tag = done ? "killed-after" : "killed";
        } else if (f.error && (done || !f.after)) {
            res = -f.error;
            tag = f.after ? "after" : "injected";
        } else if (!f.error) {
            tag = "delayed";
        }
    }
    e.num("res", res);
    if (res < 0) e.str("err", errno_name(-res));
    if (tag) e.str("fault", tag);
    g_log += std::to_string(++g_seq) + " " + e.line + e.data_hex + "\n";
    if (f.fire && f.kill) {
        pid_t pid = fuse_get_context()->pid;
        if (pid > 0) kill(pid, SIGKILL);
    }
    return res;
}

// Runs the real operation unless the fault says not to; -errno on failure.
template <class Fn>
int perform(const Fault &f, Fn &&fn) {
    if (f.skip()) return 0;
    return fn() < 0 ? -errno : 0;
}

Handle *handle(fuse_file_info *fi) { return reinterpret_cast<Handle *>(fi->fh); }

// ---- control file ----

int parse_long(std::string_view v, long *out) {
    std::string s(v);
    char *end;
    errno = 0;
    long n = strtol(s.c_str(), &end, 10);
    if (s.empty() || *end || errno) return -EINVAL;
    *out = n;
    return 0;
}

int parse_errno(const std::string &s, int *out) {
    auto it = kErrnos.find(s);
    if (it != kErrnos.end()) {
        *out = it->second;
        return 0;
    }
    long n;
    if (parse_long(s, &n) != 0 || n < 0 || n > 4095) return -EINVAL;
    *out = static_cast<int>(n);
    return 0;
}

int control_line(const std::string &line) {
    std::vector<std::string> words;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
        if (j > i) words.emplace_back(line.substr(i, j - i));
        i = j;
    }
    if (words.empty()) return 0;
    if (words[0] == "clear" && words.size() == 1) {
        g_rules.clear();
        return 0;
    }
    if (words[0] == "reset-log" && words.size() == 1) {
        g_log.clear();
        g_seq = 0;
        return 0;
    }
    if (words[0] == "mark" && words.size() == 2) {
        g_log += std::to_string(++g_seq) + " mark label=" + encode(words[1]) + "\n";
        return 0;
    }
    if (words[0] != "fault" || words.size() < 4) return -EINVAL;
    Rule r;
    r.op = words[1];
    r.glob = words[2];
    if (parse_errno(words[3], &r.error) != 0) return -EINVAL;
    for (size_t k = 4; k < words.size(); ++k) {
        std::string_view w = words[k];
        if (w == "after") {
            r.after = true;
        } else if (w.starts_with("nth=")) {
            if (parse_long(w.substr(4), &r.nth) != 0 || r.nth < 1) return -EINVAL;
        } else if (w.starts_with("count=")) {
            if (parse_long(w.substr(6), &r.count) != 0 || r.count < 0) return -EINVAL;
        } else if (w.starts_with("for=")) {
            long ms = 0;
            if (parse_long(w.substr(4), &ms) != 0 || ms < 1) return -EINVAL;
            r.until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        } else if (w.starts_with("short=")) {
            if (parse_long(w.substr(6), &r.short_len) != 0 || r.short_len < 0) return -EINVAL;
        } else if (w.starts_with("delay=")) {
            if (parse_long(w.substr(6), &r.delay_ms) != 0 || r.delay_ms < 1) return -EINVAL;
        } else if (w == "kill") {
            r.kill = true;
        } else if (w == "drop") {
            r.drop = true;
        } else {
            return -EINVAL;
        }
    }
    // A short write reports success with fewer bytes; an errno would contradict it.
    if (r.short_len >= 0 && (r.op != "write" || r.error != 0 || r.after || r.kill || r.drop)) return -EINVAL;
    // A drop is a sync not done: only for the syncs, and never "after".
    if (r.drop && ((r.op != "fsync" && r.op != "fsyncdir") || r.after || r.kill)) return -EINVAL;
    // OK alone would be no fault at all.
    if (r.short_len < 0 && r.error == 0 && r.delay_ms < 0 && !r.kill && !r.drop) return -EINVAL;
    g_rules.push_back(r);
    return 0;
}

int control_write(Handle *h, const char *buf, size_t size) {
    h->pending.append(buf, size);
    size_t nl;
    while ((nl = h->pending.find('\n')) != std::string::npos) {
        std::string line = h->pending.substr(0, nl);
        h->pending.erase(0, nl + 1);
        if (int rc = control_line(line)) {
            fprintf(stderr, "faultfs: bad control line: %s\n", line.c_str());
            return rc;
        }
    }
    return static_cast<int>(size);
}

// ---- operations ----

void *ffs_init(fuse_conn_info *, fuse_config *cfg) {
    // Every write and fsync must reach us, and every path lookup must be
    // fresh, or the log would miss operations the kernel absorbed.
    cfg->use_ino = 1;
    cfg->nullpath_ok = 1;
    cfg->direct_io = 1;
    cfg->kernel_cache = 0;
    cfg->hard_remove = 1;
    cfg->attr_timeout = 0;
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    return nullptr;
}

int ffs_getattr(const char *path, struct stat *st, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    if ((fi && handle(fi)->control) || (path && strcmp(path, kControl) == 0)) {
        memset(st, 0, sizeof *st);
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        st->st_uid = getuid();
        st->st_gid = getgid();
        return 0;
    }
    if (Fault f = match("getattr", path ? rel(path) : handle(fi)->path); f.fire && f.error) return -f.error;
    int rc = fi ? fstat(handle(fi)->fd, st) : fstatat(g_backing, rel(path).c_str(), st, AT_SYMLINK_NOFOLLOW);
    return rc == 0 ? 0 : -errno;
}

int ffs_readlink(const char *path, char *buf, size_t size) {
    std::lock_guard lock(g_mutex);
    ssize_t n = readlinkat(g_backing, rel(path).c_str(), buf, size - 1);
    if (n < 0) return -errno;
    buf[n] = '\0';
    return 0;
}

int open_common(const char *op, const char *path, mode_t mode, fuse_file_info *fi, bool create) {
    std::string r = rel(path);
    if (strcmp(path, kControl) == 0) {
        auto *h = new Handle;
        h->control = true;
        h->snapshot = g_log;
        fi->fh = reinterpret_cast<uint64_t>(h);
        fi->direct_io = 1;
        return 0;
    }
    Entry e(op, r);
    Fault f = match(op, r);
    // The kernel sends append writes with explicit offsets; O_APPEND on the
    // backing descriptor would make pwrite ignore them.
    int flags = (fi->flags & ~O_APPEND) | O_CLOEXEC | O_NOFOLLOW;
    int fd = -1;
    int res = 0;
    if (!f.skip()) {
        fd = create ? openat(g_backing, r.c_str(), flags | O_CREAT, mode) : openat(g_backing, r.c_str(), flags);
        if (fd < 0) res = -errno;
    }
    ino_t ino = fd >= 0 ? ino_of_fd(fd) : ino_of(r);
    e.num("ino", static_cast<long long>(ino));
    if (create) e.oct("mode", mode);
    e.hex("flags", static_cast<unsigned>(fi->flags));
    Handle *h = nullptr;
    if (fd >= 0) {
        h = new Handle;
        h->fd = fd;
        h->ino = ino;
        h->path = r;
        e.num("fh", fd);
    }
    res = finish(e, res, f);
    if (res < 0) {
        if (h) {
            close(h->fd);
            delete h;
        }
        return res;
    }
    fi->fh = reinterpret_cast<uint64_t>(h);
    fi->direct_io = 1;
    return 0;
}

int ffs_open(const char *path, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    return open_common("open", path, 0, fi, false);
}

int ffs_create(const char *path, mode_t mode, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    return open_common("create", path, mode, fi, true);
}

int ffs_read(const char *path, char *buf, size_t size, off_t off, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    Handle *h = handle(fi);
    if (h->control) {
        if (static_cast<size_t>(off) >= h->snapshot.size()) return 0;
        size_t n = std::min(size, h->snapshot.size() - static_cast<size_t>(off));
        memcpy(buf, h->snapshot.data() + off, n);
        return static_cast<int>(n);
    }
    std::string r = path ? rel(path) : h->path;
    Entry e("read", r);
    e.num("ino", static_cast<long long>(h->ino)).num("fh", h->fd).num("off", off);
    e.num("len", static_cast<long long>(size));
    Fault f = match("read", r);
    int res = 0;
    if (!f.skip()) {
        ssize_t n = pread(h->fd, buf, size, off);
        res = n < 0 ? -errno : static_cast<int>(n);
    }
    return finish(e, res, f);
}

int ffs_write(const char *path, const char *buf, size_t size, off_t off, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    Handle *h = handle(fi);
    if (h->control) return control_write(h, buf, size);
    std::string r = path ? rel(path) : h->path;
    Fault f = match("write", r);
    size_t n = size;
    if (f.fire && f.short_len >= 0) n = std::min(size, static_cast<size_t>(f.short_len));
    Entry e("write", r);
    e.num("ino", static_cast<long long>(h->ino)).num("fh", h->fd).num("off", off).num("len", static_cast<long long>(n));
    int res = 0;
    if (!f.skip()) {
        ssize_t w = pwrite(h->fd, buf, n, off);
        res = w < 0 ? -errno : static_cast<int>(w);
        // Only what reached the backing file is data the crash model may see.
        if (w > 0) e.data(buf, static_cast<size_t>(w));
    }
    return finish(e, res, f);
}

int ffs_flush(const char *path, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    Handle *h = handle(fi);
    if (h->control) return 0;
    std::string r = path ? rel(path) : h->path;
    Entry e("flush", r);
    e.num("ino", static_cast<long long>(h->ino)).num("fh", h->fd);
    Fault f = match("flush", r);
    return finish(e, 0, f);
}

int ffs_release(const char *path, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    Handle *h = handle(fi);
    if (!h->control) {
        std::string r = path ? rel(path) : h->path;
        Entry e("release", r);
        e.num("ino", static_cast<long long>(h->ino)).num("fh", h->fd);
        int res = close(h->fd) == 0 ? 0 : -errno;
        finish(e, res, Fault{});
    }
    delete h;
    return 0;
}

int ffs_fsync(const char *path, int datasync, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    Handle *h = handle(fi);
    if (h->control) return 0;
    std::string r = path ? rel(path) : h->path;
    Entry e("fsync", r);
    e.num("ino", static_cast<long long>(h->ino)).num("fh", h->fd).num("datasync", datasync);
    Fault f = match("fsync", r);
    int res = perform(f, [&] { return datasync ? fdatasync(h->fd) : fsync(h->fd); });
    return finish(e, res, f);
}

int ffs_opendir(const char *path, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    std::string r = rel(path);
    Entry e("opendir", r);
    Fault f = match("opendir", r);
    int fd = -1;
    int res = 0;
    if (!f.skip()) {
        fd = openat(g_backing, r.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) res = -errno;
    }
    e.num("ino", static_cast<long long>(fd >= 0 ? ino_of_fd(fd) : ino_of(r)));
    DIR *dir = nullptr;
    if (fd >= 0) {
        dir = fdopendir(fd);
        if (!dir) {
            res = -errno;
            close(fd);
        }
    }
    res = finish(e, res, f);
    if (res < 0) {
        if (dir) closedir(dir);
        return res;
    }
    auto *d = new DirHandle{dir, ino_of_fd(dirfd(dir)), r};
    fi->fh = reinterpret_cast<uint64_t>(d);
    return 0;
}

int ffs_readdir(const char *, void *buf, fuse_fill_dir_t fill, off_t off, fuse_file_info *fi, fuse_readdir_flags) {
    std::lock_guard lock(g_mutex);
    auto *d = reinterpret_cast<DirHandle *>(fi->fh);
    seekdir(d->dir, off);
    errno = 0;
    while (dirent *de = readdir(d->dir)) {
        struct stat st{};
        st.st_ino = de->d_ino;
        st.st_mode = static_cast<mode_t>(DTTOIF(de->d_type));
        if (fill(buf, de->d_name, &st, telldir(d->dir), static_cast<fuse_fill_dir_flags>(0))) return 0;
        errno = 0;
    }
    return errno ? -errno : 0;
}

int ffs_releasedir(const char *, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    auto *d = reinterpret_cast<DirHandle *>(fi->fh);
    Entry e("releasedir", d->path);
    e.num("ino", static_cast<long long>(d->ino));
    finish(e, closedir(d->dir) == 0 ? 0 : -errno, Fault{});
    delete d;
    return 0;
}

int ffs_fsyncdir(const char *path, int datasync, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    auto *d = reinterpret_cast<DirHandle *>(fi->fh);
    std::string r = path ? rel(path) : d->path;
    Entry e("fsyncdir", r);
    e.num("ino", static_cast<long long>(d->ino)).num("datasync", datasync);
    Fault f = match("fsyncdir", r);
    int res = perform(f, [&] { return fsync(dirfd(d->dir)); });
    return finish(e, res, f);
}

// Path-only operations that change one name.
int ffs_mkdir(const char *path, mode_t mode) {
    std::lock_guard lock(g_mutex);
    std::string r = rel(path);
    Fault f = match("mkdir", r);
    int res = perform(f, [&] { return mkdirat(g_backing, r.c_str(), mode); });
    Entry e("mkdir", r);
    e.num("ino", static_cast<long long>(ino_of(r))).oct("mode", mode);
    return finish(e, res, f);
}

int ffs_mknod(const char *path, mode_t mode, dev_t rdev) {
    std::lock_guard lock(g_mutex);
    std::string r = rel(path);
    Fault f = match("mknod", r);
    int res = perform(f, [&] { return mknodat(g_backing, r.c_str(), mode, rdev); });
    Entry e("mknod", r);
    e.num("ino", static_cast<long long>(ino_of(r))).oct("mode", mode);
    return finish(e, res, f);
}

int ffs_unlink(const char *path) {
    std::lock_guard lock(g_mutex);
    std::string r = rel(path);
    Entry e("unlink", r);
    e.num("ino", static_cast<long long>(ino_of(r)));
    Fault f = match("unlink", r);
    int res = perform(f, [&] { return unlinkat(g_backing, r.c_str(), 0); });
    return finish(e, res, f);
}

int ffs_rmdir(const char *path) {
    std::lock_guard lock(g_mutex);
    std::string r = rel(path);
    Entry e("rmdir", r);
    e.num("ino", static_cast<long long>(ino_of(r)));
    Fault f = match("rmdir", r);
    int res = perform(f, [&] { return unlinkat(g_backing, r.c_str(), AT_REMOVEDIR); });
    return finish(e, res, f);
}

int ffs_symlink(const char *target, const char *path) {
    std::lock_guard lock(g_mutex);
    std::string r = rel(path);
    Fault f = match("symlink", r);
    int res = perform(f, [&] { return symlinkat(target, g_backing, r.c_str()); });
    Entry e("symlink", r);
    e.str("path2", encode(target)).num("ino", static_cast<long long>(ino_of(r)));
    return finish(e, res, f);
}

int ffs_rename(const char *from, const char *to, unsigned int flags) {
    std::lock_guard lock(g_mutex);
    std::string a = rel(from), b = rel(to);
    Entry e("rename", a);
    e.str("path2", encode(b)).num("ino", static_cast<long long>(ino_of(a))).hex("flags", flags);
    Fault f = match("rename", a, b);
    int res = perform(f, [&] { return renameat2(g_backing, a.c_str(), g_backing, b.c_str(), flags); });
    return finish(e, res, f);
}

int ffs_link(const char *from, const char *to) {
    std::lock_guard lock(g_mutex);
    std::string a = rel(from), b = rel(to);
    Entry e("link", a);
    e.str("path2", encode(b)).num("ino", static_cast<long long>(ino_of(a)));
    Fault f = match("link", a, b);
    int res = perform(f, [&] { return linkat(g_backing, a.c_str(), g_backing, b.c_str(), 0); });
    return finish(e, res, f);
}

// Metadata changes: on the open descriptor when FUSE gives one (the file may
// have no name any more), else on the path.
struct Target {
    std::string r;
    int fd = -1;
    ino_t ino = 0;
};

Target target_of(const char *path, fuse_file_info *fi) {
    Target t;
    if (fi && !handle(fi)->control) {
        t.fd = handle(fi)->fd;
        t.ino = handle(fi)->ino;
        t.r = path ? rel(path) : handle(fi)->path;
    } else {
        t.r = rel(path);
        t.ino = ino_of(t.r);
    }
    return t;
}

int ffs_chmod(const char *path, mode_t mode, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    Target t = target_of(path, fi);
    Entry e("chmod", t.r);
    e.num("ino", static_cast<long long>(t.ino)).oct("mode", mode);
    Fault f = match("chmod", t.r);
    int res = perform(f, [&] { return t.fd >= 0 ? fchmod(t.fd, mode) : fchmodat(g_backing, t.r.c_str(), mode, 0); });
    return finish(e, res, f);
}

int ffs_chown(const char *path, uid_t uid, gid_t gid, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    Target t = target_of(path, fi);
    Entry e("chown", t.r);
    e.num("ino", static_cast<long long>(t.ino)).num("uid", static_cast<int>(uid)).num("gid", static_cast<int>(gid));
    Fault f = match("chown", t.r);
    int res = perform(f, [&] {
        return t.fd >= 0 ? fchown(t.fd, uid, gid) : fchownat(g_backing, t.r.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
    });
    return finish(e, res, f);
}

int ffs_truncate(const char *path, off_t size, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    // "> control" truncates it first.
    if ((fi && handle(fi)->control) || (path && strcmp(path, kControl) == 0)) return 0;
    Target t = target_of(path, fi);
    Entry e("truncate", t.r);
    e.num("ino", static_cast<long long>(t.ino)).num("size", size);
    Fault f = match("truncate", t.r);
    int res = perform(f, [&] {
        if (t.fd >= 0) return ftruncate(t.fd, size);
        int fd = openat(g_backing, t.r.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return -1;
        int rc = ftruncate(fd, size);
        int saved = errno;
        close(fd);
        errno = saved;
        return rc;
    });
    return finish(e, res, f);
}

int ffs_utimens(const char *path, const struct timespec tv[2], fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    if (path && strcmp(path, kControl) == 0) return 0;
    Target t = target_of(path, fi);
    Entry e("utimens", t.r);
    e.num("ino", static_cast<long long>(t.ino));
    Fault f = match("utimens", t.r);
    int res = perform(f, [&] {
        return t.fd >= 0 ? futimens(t.fd, tv) : utimensat(g_backing, t.r.c_str(), tv, AT_SYMLINK_NOFOLLOW);
    });
    return finish(e, res, f);
}

// xattrs through /proc/self/fd on an O_PATH descriptor: the *at variants do
// not exist, and the backing directory is only reachable by descriptor.
template <class Fn>
int with_proc_path(const std::string &r, Fn &&fn) {
    int fd = openat(g_backing, r.c_str(), O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int rc = fn(proc);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int ffs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags) {
    std::lock_guard lock(g_mutex);
    std::string r = rel(path);
    Entry e("setxattr", r);
    e.num("ino", static_cast<long long>(ino_of(r))).str("name", encode(name)).num("len", static_cast<long long>(size));
    Fault f = match("setxattr", r);
    int res = perform(f, [&] {
        return with_proc_path(r, [&](const char *p) { return setxattr(p, name, value, size, flags); });
    });
    return finish(e, res, f);
}

int ffs_getxattr(const char *path, const char *name, char *value, size_t size) {
    std::lock_guard lock(g_mutex);
    if (strcmp(path, kControl) == 0) return -ENODATA;
    ssize_t n = -1;
    int rc = with_proc_path(rel(path), [&](const char *p) {
        n = getxattr(p, name, value, size);
        return n < 0 ? -1 : 0;
    });
    return rc < 0 ? -errno : static_cast<int>(n);
}

int ffs_listxattr(const char *path, char *list, size_t size) {
    std::lock_guard lock(g_mutex);
    if (strcmp(path, kControl) == 0) return 0;
    ssize_t n = -1;
    int rc = with_proc_path(rel(path), [&](const char *p) {
        n = listxattr(p, list, size);
        return n < 0 ? -1 : 0;
    });
    return rc < 0 ? -errno : static_cast<int>(n);
}

int ffs_removexattr(const char *path, const char *name) {
    std::lock_guard lock(g_mutex);
    std::string r = rel(path);
    Entry e("removexattr", r);
    e.num("ino", static_cast<long long>(ino_of(r))).str("name", encode(name));
    Fault f = match("removexattr", r);
    int res = perform(f, [&] { return with_proc_path(r, [&](const char *p) { return removexattr(p, name); }); });
    return finish(e, res, f);
}

int ffs_statfs(const char *, struct statvfs *st) {
    std::lock_guard lock(g_mutex);
    return fstatvfs(g_backing, st) == 0 ? 0 : -errno;
}

int ffs_access(const char *path, int mask) {
    std::lock_guard lock(g_mutex);
    if (strcmp(path, kControl) == 0) return 0;
    return faccessat(g_backing, rel(path).c_str(), mask, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

int ffs_fallocate(const char *path, int mode, off_t off, off_t len, fuse_file_info *fi) {
    std::lock_guard lock(g_mutex);
    Handle *h = handle(fi);
    if (h->control) return -EOPNOTSUPP;
    std::string r = path ? rel(path) : h->path;
    Entry e("fallocate", r);
    e.num("ino", static_cast<long long>(h->ino)).num("off", off).num("len", len);
    e.hex("flags", static_cast<unsigned>(mode));
    Fault f = match("fallocate", r);
    int res = perform(f, [&] { return fallocate(h->fd, mode, off, len); });
    return finish(e, res, f);
}

fuse_operations make_operations() {
    fuse_operations ops{};
    ops.init = ffs_init;
    ops.getattr = ffs_getattr;
    ops.readlink = ffs_readlink;
    ops.mknod = ffs_mknod;
    ops.mkdir = ffs_mkdir;
    ops.unlink = ffs_unlink;
    ops.rmdir = ffs_rmdir;
    ops.symlink = ffs_symlink;
    ops.rename = ffs_rename;
    ops.link = ffs_link;
    ops.chmod = ffs_chmod;
    ops.chown = ffs_chown;
    ops.truncate = ffs_truncate;
    ops.open = ffs_open;
    ops.read = ffs_read;
    ops.write = ffs_write;
    ops.statfs = ffs_statfs;
    ops.flush = ffs_flush;
    ops.release = ffs_release;
    ops.fsync = ffs_fsync;
    ops.setxattr = ffs_setxattr;
    ops.getxattr = ffs_getxattr;
    ops.listxattr = ffs_listxattr;
    ops.removexattr = ffs_removexattr;
    ops.opendir = ffs_opendir;
    ops.readdir = ffs_readdir;
    ops.releasedir = ffs_releasedir;
    ops.fsyncdir = ffs_fsyncdir;
    ops.access = ffs_access;
    ops.create = ffs_create;
    ops.utimens = ffs_utimens;
    ops.fallocate = ffs_fallocate;
    return ops;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: faultfs BACKING_DIR MOUNTPOINT [FUSE OPTIONS]\n");
        return 2;
    }
    g_backing = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (g_backing < 0) {
        fprintf(stderr, "faultfs: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    // Files are created with exactly the modes the callers ask for; the
    // kernel has already applied their umask.
    umask(0);
    std::vector<char *> args;
    args.push_back(argv[0]);
    for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
    static const fuse_operations ops = make_operations();
    return fuse_main(static_cast<int>(args.size()), args.data(), &ops, nullptr);
}
