// wrap_lockfile C++ API: the seed's Python API (mylockfile, atomic_write*,
// LockTimeout/AlreadyLocked/LockFailed) in C++20 idioms, over the C API in
// <wrap_lockfile/wrap_lockfile.h>. Errors are exceptions carrying errno and
// the path concerned; nothing is swallowed.
#pragma once

#include <wrap_lockfile/wrap_lockfile.h>

#include <concepts>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace wrap_lockfile {

// ---- errors ---------------------------------------------------------------

// The step that failed (enum wlf_step in the C API, which documents what
// each leaves of the target). The exception type is chosen from it: lock
// and unlock are LockError's, the others WriteFailed.
enum class Step {
    none = WLF_STEP_NONE,
    lock = WLF_STEP_LOCK,
    unlock = WLF_STEP_UNLOCK,
    open = WLF_STEP_OPEN,
    temp = WLF_STEP_TEMP,
    write = WLF_STEP_WRITE,
    fsync = WLF_STEP_FSYNC,
    rename = WLF_STEP_RENAME,
    fsync_dir = WLF_STEP_FSYNC_DIR,  // the target WAS replaced, maybe not durably
    in_place = WLF_STEP_IN_PLACE     // the target itself may be partly written
};

// Base of every wrap_lockfile error: errno in code(), the path in path(),
// the failing step in step() and, worded for people, in op() (e.g. "fsync
// directory of", "rename temporary file over", "open lock file").
class Error : public std::system_error {
public:
    Error(int errnum, std::string op, std::string path, Step step = Step::none);
    const std::string &path() const noexcept { return path_; }
    const std::string &op() const noexcept { return op_; }
    Step step() const noexcept { return step_; }

private:
    std::string op_;
    std::string path_;
    Step step_;
};

// Base of the three lock errors (the seed's `mylockfile_other_exceptions`).
class LockError : public Error {
public:
    using Error::Error;
};
using mylockfile_other_exceptions = LockError;

// A positive timeout expired. holder() is the pid holding the lock as the
// kernel lists it (/proc/locks; for a dotlock the pid it records), 0 if unknown.
class LockTimeout : public LockError {
public:
    LockTimeout(std::string path, double timeout, pid_t holder);
    pid_t holder() const noexcept { return holder_; }

private:
    pid_t holder_;
};
using myLockTimeout = LockTimeout;

// timeout <= 0 and somebody holds the lock.
class AlreadyLocked : public LockError {
public:
    AlreadyLocked(std::string path, pid_t holder);
    pid_t holder() const noexcept { return holder_; }

private:
    pid_t holder_;
};

// The lock could not be taken at all (ENOLCK, ENOSYS, EACCES, EROFS...);
// ENOLCK also when "<target>.lock" is not a regular file with one link.
// step() is Step::lock, or Step::unlock when releasing it failed.
class LockFailed : public LockError {
public:
    using LockError::LockError;
};

// A replacement failed; the target is untouched unless step() is
// Step::fsync_dir (op() "fsync directory of" or "close": replaced, but maybe
// not durably) or Step::in_place (written in place: maybe partly).
class WriteFailed : public Error {
public:
    using Error::Error;
};

// ---- options --------------------------------------------------------------

enum class LockBackend { flock = WLF_LOCK_FLOCK, dotlock = WLF_LOCK_DOTLOCK, none = WLF_LOCK_NONE };
enum class Durability { full = WLF_DURABILITY_FULL, none = WLF_DURABILITY_NONE };
enum class HardLinkPolicy { keep_links = WLF_HARDLINK_KEEP, split = WLF_HARDLINK_SPLIT };
enum class CommitKind {
    rename = WLF_COMMIT_RENAME,
    in_place = WLF_COMMIT_IN_PLACE,
    passthrough = WLF_COMMIT_PASSTHROUGH
};

struct LockOptions {
    std::optional<double> timeout;  // unset: wait; > 0: LockTimeout; <= 0: AlreadyLocked
    LockBackend backend = LockBackend::flock;
    bool keep_lock_file = false;    // leave <target>.lock behind (for flock(1) interop)
    bool nesting = true;            // false: a second lock by the same thread waits like any other
    bool interruptible = false;     // a wait without timeout throws LockFailed(EINTR) on a signal
};

struct WriteOptions {
    bool use_lock = true;
    LockOptions lock;
    std::string temp_suffix = "~~";
    Durability durability = Durability::full;
    HardLinkPolicy hard_links = HardLinkPolicy::keep_links;
    std::optional<mode_t> create_mode;  // new files: this & ~umask instead of 0666 & ~umask
};

// ---- locks ----------------------------------------------------------------

// Exclusive lock on "<target>.lock", held for the object's lifetime.
class FileLock {
public:
    explicit FileLock(const std::filesystem::path &target,
                      std::optional<double> timeout = std::nullopt);
    FileLock(const std::filesystem::path &target, const LockOptions &options);
    FileLock(FileLock &&other) noexcept;
    FileLock &operator=(FileLock &&other) noexcept;
    FileLock(const FileLock &) = delete;
    FileLock &operator=(const FileLock &) = delete;
    ~FileLock();

    // Release now; throws LockFailed if unlinking the lock file failed.
    void release();
    bool held() const noexcept { return lock_ != nullptr; }
    std::filesystem::path lock_path() const;

private:
    wlf_lock *lock_ = nullptr;
};

// The seed's name for the lock guard.
using mylockfile = FileLock;

// ---- atomic replacement ---------------------------------------------------

// A position in a file. On Windows 64 bits whatever the caller's
// _FILE_OFFSET_BITS (mingw's off_t is 32 bits by default); off_t elsewhere.
#ifdef _WIN32
using file_offset = long long;
#else
using file_offset = off_t;
#endif

// Open modes as in Python's open(): w wb a ab r+ rb+ w+ wb+ a+ ab+ x xb.
// Throws std::invalid_argument for anything else.
int open_flags_for_mode(std::string_view mode);

// A pending replacement: read/write it like a file, then commit() to make it
// the target's content atomically; destroying it without commit() discards.
class AtomicFile {
public:
    AtomicFile(const std::filesystem::path &path, std::string_view mode,
               const WriteOptions &options);
    AtomicFile(AtomicFile &&other) noexcept;
    AtomicFile &operator=(AtomicFile &&other) noexcept;
    AtomicFile(const AtomicFile &) = delete;
    AtomicFile &operator=(const AtomicFile &) = delete;
    ~AtomicFile();

    void write(std::string_view data);
    void write(std::span<const std::byte> data);
    // Reads up to n bytes at the current position ("r+", "w+", "a+").
    std::string read(std::size_t n);
    std::string read_all();
    void seek(file_offset offset, int whence = SEEK_SET);
    file_offset tell() const;
    // Buffered text output; flushed by commit().
    std::ostream &stream();

    // Publish the new content; throws WriteFailed (target untouched unless
    // step() is Step::fsync_dir or Step::in_place), or LockFailed with
    // Step::unlock when the replacement was made but the lock's release failed.
    CommitKind commit();
    // Drop the new content now.
    void discard() noexcept;

    int fd() const;
    bool pending() const noexcept { return file_ != nullptr; }
    std::filesystem::path target() const;  // final target (symlinks resolved)
    CommitKind kind() const;

private:
    void flush_stream();
    wlf_file *file_ = nullptr;
    std::unique_ptr<std::streambuf> buf_;
    std::unique_ptr<std::ostream> stream_;
};

AtomicFile atomic_write_no_lock(const std::filesystem::path &path, std::string_view mode = "w",
                                WriteOptions options = {});
AtomicFile atomic_write_lock(const std::filesystem::path &path, std::string_view mode = "w",
                             std::optional<double> lock_timeout = std::nullopt,
                             WriteOptions options = {});
// Alias of atomic_write_lock, as in the seed.
AtomicFile atomic_write(const std::filesystem::path &path, std::string_view mode = "w",
                        std::optional<double> lock_timeout = std::nullopt,
                        WriteOptions options = {});

// The context-manager meaning: run body(file); commit if it returns, discard
// (and rethrow) if it throws.
template <std::invocable<AtomicFile &> Body>
void with_atomic_write(const std::filesystem::path &path, std::string_view mode, Body &&body,
                       WriteOptions options = {}) {
    AtomicFile file(path, mode, options);
    std::forward<Body>(body)(file);
    file.commit();
}

// Replace `path` with `content` (text or bytes). Throws LockTimeout /
// AlreadyLocked / LockFailed / WriteFailed.
CommitKind atomic_write_content_with_lock(const std::filesystem::path &path,
                                          std::string_view content, WriteOptions options = {});
CommitKind atomic_write_content_with_lock(const std::filesystem::path &path,
                                          std::span<const std::byte> content,
                                          WriteOptions options = {});

}  // namespace wrap_lockfile
