// C++ API: exceptions and RAII over the C layer.
#include <wrap_lockfile/wrap_lockfile.hpp>

#include "lock_internal.hpp"  // lock_file_holder
#include "open_mode.hpp"

#include <fcntl.h>
#include <unistd.h>
#ifdef _WIN32
#include <io.h>
#endif

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace wrap_lockfile {

namespace {

// The C API's paths are bytes: on Windows UTF-8 (path::c_str() is UTF-16
// there, path::string() the ANSI code page), elsewhere the native bytes.
std::string c_path(const std::filesystem::path &p) {
#ifdef _WIN32
    std::u8string u = p.u8string();
    return std::string(u.begin(), u.end());
#else
    return p.string();
#endif
}

std::filesystem::path from_c_path(const char *s) {
#ifdef _WIN32
    return std::filesystem::path(std::u8string(reinterpret_cast<const char8_t *>(s)));
#else
    return s;
#endif
}

#ifdef _WIN32
file_offset seek_fd(int fd, file_offset offset, int whence) { return _lseeki64(fd, offset, whence); }
#else
file_offset seek_fd(int fd, file_offset offset, int whence) { return ::lseek(fd, offset, whence); }
#endif

// A wlf_error with its fields cleared but not its path buffer (WLF_PATH_MAX
// bytes, written by whatever fills it in): clearing all of it, twice per
// lock, cost more than the lock's own bookkeeping.
struct CError : wlf_error {
    CError() {
        code = 0;
        op = "";
        path[0] = '\0';
        step = WLF_STEP_NONE;
    }
};

// As wlf_error_format: an op with "%s" gets the quoted path in its place.
std::string describe(const std::string &op, const std::string &path) {
    std::string what = "wrap_lockfile: ";
    if (size_t slot = op.find("%s"); slot != std::string::npos)
        return what + op.substr(0, slot) + "'" + path + "'" + op.substr(slot + 2);
    what += op;
    if (!path.empty()) what += " '" + path + "'";
    return what;
}

wlf_lock_options to_c(const LockOptions &o) {
    wlf_lock_options c;
    wlf_lock_options_init(&c);
    c.has_timeout = o.timeout.has_value();
    c.timeout = o.timeout.value_or(0.0);
    c.backend = static_cast<int>(o.backend);
    c.keep_lock_file = o.keep_lock_file;
    c.no_nesting = !o.nesting;
    c.interruptible = o.interruptible;
    return c;
}

wlf_write_options to_c(const WriteOptions &o) {
    wlf_write_options c;
    wlf_write_options_init(&c);
    c.use_lock = o.use_lock;
    c.lock = to_c(o.lock);
    c.temp_suffix = o.temp_suffix.c_str();
    c.durability = static_cast<int>(o.durability);
    c.hardlink_policy = static_cast<int>(o.hard_links);
    c.has_create_mode = o.create_mode.has_value();
    c.create_mode = o.create_mode.value_or(0);
    return c;
}

// Turns a failure of the C layer into the seed's exception types, chosen by
// the failing step (never by the path or the words of op): a lock that is
// busy or timed out, any other lock or unlock failure, anything else.
// `fallback_path` and `fallback_op` fill in what err left empty;
// `fallback_step` is for a (buggy) error that names no step.
[[noreturn]] void throw_error(int rc, const wlf_error &err, const std::string &fallback_path, const char *fallback_op,
                              Step fallback_step, std::optional<double> timeout) {
    Step step = err.step != WLF_STEP_NONE ? static_cast<Step>(err.step) : fallback_step;
    std::string path = err.path[0] ? err.path : fallback_path;
    if (step == Step::lock) {
        // A busy lock's error names the lock file, which has the holder.
        if (rc == ETIMEDOUT) throw LockTimeout(path, timeout.value_or(0), detail::lock_file_holder(path.c_str()));
        if (rc == EWOULDBLOCK) throw AlreadyLocked(path, detail::lock_file_holder(path.c_str()));
    }
    std::string op = err.op ? err.op : fallback_op;
    if (step == Step::lock || step == Step::unlock) throw LockFailed(rc, std::move(op), std::move(path), step);
    throw WriteFailed(rc, std::move(op), std::move(path), step);
}

// Unbuffered-at-the-edges streambuf over a descriptor, flushed explicitly.
class FdStreamBuf : public std::streambuf {
public:
    explicit FdStreamBuf(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof buf_); }
    int error() const { return error_; }
    file_offset buffered() const { return pptr() - pbase(); }
    bool flush_all() { return sync() == 0; }

protected:
    int_type overflow(int_type ch) override {
        if (sync() != 0) return traits_type::eof();
        if (!traits_type::eq_int_type(ch, traits_type::eof())) {
            *pptr() = traits_type::to_char_type(ch);
            pbump(1);
        }
        return traits_type::not_eof(ch);
    }
    int sync() override {
        const char *p = pbase();
        while (p < pptr()) {
            ssize_t n = ::write(fd_, p, static_cast<size_t>(pptr() - p));
            if (n < 0) {
                if (errno == EINTR) continue;
                error_ = errno;
                return -1;
            }
            p += n;
        }
        setp(buf_, buf_ + sizeof buf_);
        return 0;
    }

private:
    int fd_;
    int error_ = 0;
    char buf_[8192];
};

}  // namespace

Error::Error(int errnum, std::string op, std::string path, Step step)
    : std::system_error(errnum, std::generic_category(), describe(op, path)),
      op_(std::move(op)),
      path_(std::move(path)),
      step_(step) {}

LockTimeout::LockTimeout(std::string path, double timeout, pid_t holder)
    : LockError(ETIMEDOUT,
                "timed out after " + std::to_string(timeout) + " s waiting for lock" +
                    (holder > 0 ? " held by pid " + std::to_string(holder) : std::string()),
                std::move(path), Step::lock),
      holder_(holder) {}

AlreadyLocked::AlreadyLocked(std::string path, pid_t holder)
    : LockError(EWOULDBLOCK,
                "already locked" + (holder > 0 ? " by pid " + std::to_string(holder) : std::string()),
                std::move(path), Step::lock),
      holder_(holder) {}

// ---- FileLock ----

FileLock::FileLock(const std::filesystem::path &target, std::optional<double> timeout)
    : FileLock(target, LockOptions{timeout}) {}

FileLock::FileLock(const std::filesystem::path &target, const LockOptions &options) {
    wlf_lock_options c = to_c(options);
    CError err;
    if (int rc = wlf_lock_acquire(c_path(target).c_str(), &c, &lock_, &err))
        throw_error(rc, err, c_path(target) + ".lock", "lock", Step::lock, options.timeout);
}

FileLock::FileLock(FileLock &&other) noexcept : lock_(std::exchange(other.lock_, nullptr)) {}

FileLock &FileLock::operator=(FileLock &&other) noexcept {
    if (this != &other) {
        if (lock_) wlf_lock_release(lock_, nullptr);
        lock_ = std::exchange(other.lock_, nullptr);
    }
    return *this;
}

FileLock::~FileLock() {
    if (lock_) wlf_lock_release(lock_, nullptr);
}

void FileLock::release() {
    if (!lock_) return;
    CError err;
    int rc = wlf_lock_release(std::exchange(lock_, nullptr), &err);
    if (rc) throw_error(rc, err, "", "release", Step::unlock, std::nullopt);
}

std::filesystem::path FileLock::lock_path() const { return lock_ ? from_c_path(wlf_lock_path(lock_)) : ""; }

// ---- AtomicFile ----

int open_flags_for_mode(std::string_view mode) {
    int flags;
    if (detail::open_mode_flags(mode.data(), mode.size(), detail::ModeSyntax::api, &flags) == 0) return flags;
    throw std::invalid_argument("wrap_lockfile: unsupported mode '" + std::string(mode) +
                                "' (use w, a, r+, w+, a+, x, optionally with b)");
}

AtomicFile::AtomicFile(const std::filesystem::path &path, std::string_view mode, const WriteOptions &options) {
    open_flags_for_mode(mode);  // a mode wlf_open refuses is the caller's mistake: std::invalid_argument
    wlf_write_options c = to_c(options);
    CError err;
    if (int rc = wlf_open(c_path(path).c_str(), std::string(mode).c_str(), &c, &file_, &err))
        throw_error(rc, err, c_path(path), "write", Step::open, options.lock.timeout);
}

AtomicFile::AtomicFile(AtomicFile &&other) noexcept
    : file_(std::exchange(other.file_, nullptr)), buf_(std::move(other.buf_)), stream_(std::move(other.stream_)) {}

AtomicFile &AtomicFile::operator=(AtomicFile &&other) noexcept {
    if (this != &other) {
        discard();
        file_ = std::exchange(other.file_, nullptr);
        buf_ = std::move(other.buf_);
        stream_ = std::move(other.stream_);
    }
    return *this;
}

AtomicFile::~AtomicFile() { discard(); }

int AtomicFile::fd() const {
    if (!file_) throw std::logic_error("wrap_lockfile: AtomicFile is no longer pending");
    return wlf_file_fd(file_);
}

std::filesystem::path AtomicFile::target() const { return file_ ? from_c_path(wlf_file_target(file_)) : ""; }

CommitKind AtomicFile::kind() const { return static_cast<CommitKind>(wlf_file_kind(file_)); }

void AtomicFile::write(std::string_view data) {
    flush_stream();
    const char *p = data.data();
    size_t left = data.size();
    while (left > 0) {
        ssize_t n = ::write(fd(), p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            wlf_file_poison(file_, e);
            throw WriteFailed(e, "write to", c_path(target()), Step::write);
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
}

void AtomicFile::write(std::span<const std::byte> data) {
    write(std::string_view(reinterpret_cast<const char *>(data.data()), data.size()));
}

std::string AtomicFile::read(std::size_t n) {
    flush_stream();
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd(), out.data() + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw WriteFailed(errno, "read", c_path(target()), Step::write);
        }
        if (r == 0) break;
        got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
}

std::string AtomicFile::read_all() {
    std::string out;
    for (;;) {
        std::string chunk = read(65536);
        if (chunk.empty()) return out;
        out += chunk;
    }
}

void AtomicFile::seek(file_offset offset, int whence) {
    flush_stream();
    if (seek_fd(fd(), offset, whence) < 0) throw WriteFailed(errno, "seek", c_path(target()), Step::write);
}

file_offset AtomicFile::tell() const {
    file_offset pos = seek_fd(fd(), 0, SEEK_CUR);
    if (pos < 0) throw WriteFailed(errno, "tell", c_path(target()), Step::write);
    if (buf_) pos += static_cast<const FdStreamBuf *>(buf_.get())->buffered();
    return pos;
}

std::ostream &AtomicFile::stream() {
    if (!stream_) {
        buf_ = std::make_unique<FdStreamBuf>(fd());
        stream_ = std::make_unique<std::ostream>(buf_.get());
    }
    return *stream_;
}

void AtomicFile::flush_stream() {
    if (!buf_ || !file_) return;
    auto *b = static_cast<FdStreamBuf *>(buf_.get());
    if (!b->flush_all()) {
        wlf_file_poison(file_, b->error());
        throw WriteFailed(b->error(), "write to", c_path(target()), Step::write);
    }
}

CommitKind AtomicFile::commit() {
    if (!file_) throw std::logic_error("wrap_lockfile: commit() on an AtomicFile that is no longer pending");
    if (buf_) {
        auto *b = static_cast<FdStreamBuf *>(buf_.get());
        if (!b->flush_all()) wlf_file_poison(file_, b->error());
        else if (b->error()) wlf_file_poison(file_, b->error());
    }
    std::string path = c_path(target());
    int kind = 0;
    CError err;
    int rc = wlf_commit(std::exchange(file_, nullptr), &kind, &err);
    stream_.reset();
    buf_.reset();
    if (rc) throw_error(rc, err, path, "commit", Step::rename, std::nullopt);
    return static_cast<CommitKind>(kind);
}

void AtomicFile::discard() noexcept {
    stream_.reset();
    buf_.reset();
    if (file_) wlf_discard(std::exchange(file_, nullptr));
}

AtomicFile atomic_write_no_lock(const std::filesystem::path &path, std::string_view mode, WriteOptions options) {
    options.use_lock = false;
    return AtomicFile(path, mode, options);
}

AtomicFile atomic_write_lock(const std::filesystem::path &path, std::string_view mode,
                             std::optional<double> lock_timeout, WriteOptions options) {
    options.use_lock = true;
    if (lock_timeout) options.lock.timeout = lock_timeout;
    return AtomicFile(path, mode, options);
}

AtomicFile atomic_write(const std::filesystem::path &path, std::string_view mode, std::optional<double> lock_timeout,
                        WriteOptions options) {
    return atomic_write_lock(path, mode, lock_timeout, std::move(options));
}

CommitKind atomic_write_content_with_lock(const std::filesystem::path &path, std::string_view content,
                                          WriteOptions options) {
    AtomicFile f(path, "w", options);
    f.write(content);
    return f.commit();
}

CommitKind atomic_write_content_with_lock(const std::filesystem::path &path, std::span<const std::byte> content,
                                          WriteOptions options) {
    AtomicFile f(path, "w", options);
    f.write(content);
    return f.commit();
}

void sync_pending() {
    wlf_error err{};
    if (int rc = wlf_sync_pending(&err)) throw_error(rc, err, "", "fsync directory", Step::fsync_dir, std::nullopt);
}

}  // namespace wrap_lockfile
