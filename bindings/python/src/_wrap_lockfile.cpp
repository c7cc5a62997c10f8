// _wrap_lockfile: the C++ core for the Python package wrap_lockfile, whose
// __init__.py gives the seed's API on these few calls (README "Python").
//
// Every call that can wait (a lock, a replacement's open with its lock and
// seed copy, a commit with its fsyncs) runs without the GIL. Core errors
// become the package's LockTimeout / AlreadyLocked / LockFailed (errno and
// the lock file's name) or OSError (errno, the file's name, the failing step
// in words as `op` and by name as `step`).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <wrap_lockfile/wrap_lockfile.hpp>

#include "lock_internal.hpp"
#include "replace_parts.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <initializer_list>

namespace py = pybind11;
namespace wl = wrap_lockfile;

namespace {

// The package's exception classes (wrap_lockfile/_errors.py), looked up once;
// never released: they live as long as the interpreter.
PyObject *g_lock_timeout = nullptr;
PyObject *g_already_locked = nullptr;
PyObject *g_lock_failed = nullptr;

// The core would have written straight into a FIFO, device or /proc file;
// the seed refuses those with RuntimeError('Works only on files, not ...').
struct NotRegularFile : std::runtime_error {
    explicit NotRegularFile(const std::string &path) : std::runtime_error(path) {}
};

// A file name as Python spells it: os.fsdecode's str (a name that is not
// UTF-8 keeps its bytes as surrogates, as open(b'...') and os.listdir do).
py::object fs_name(const std::string &name) {
    PyObject *s = PyUnicode_DecodeFSDefaultAndSize(name.data(), static_cast<Py_ssize_t>(name.size()));
    if (s == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(s);
}

void raise_lock_error(PyObject *cls, const wl::LockError &e, pid_t holder) {
    py::object holder_obj = holder > 0 ? py::object(py::int_(holder)) : py::object(py::none());
    py::object exc = py::reinterpret_borrow<py::object>(cls)(fs_name(e.what()), e.code().value(), fs_name(e.path()), holder_obj);
    PyErr_SetObject(cls, exc.ptr());
}

void raise_os_error(const wl::Error &e) {
    int code = e.code().value();
    std::string strerror = std::strerror(code);
    if (!e.op().empty()) strerror += " (" + e.op() + ")";
    // OSError(errno, ...) picks the subclass: FileNotFoundError, FileExistsError, PermissionError...
    py::object exc = py::reinterpret_borrow<py::object>(PyExc_OSError)(code, fs_name(strerror), fs_name(e.path()));
    exc.attr("op") = e.op();
    // What to decide by (op is words for people): "open", "rename", "fsync_dir"...
    exc.attr("step") = wlf_step_name(static_cast<int>(e.step()));
    PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(exc.ptr())), exc.ptr());
}

void translate(std::exception_ptr p) {
    try {
        if (p) std::rethrow_exception(p);
    } catch (const wl::LockTimeout &e) {
        raise_lock_error(g_lock_timeout, e, e.holder());
    } catch (const wl::AlreadyLocked &e) {
        raise_lock_error(g_already_locked, e, e.holder());
    } catch (const wl::LockFailed &e) {
        raise_lock_error(g_lock_failed, e, 0);
    } catch (const wl::Error &e) {
        raise_os_error(e);
    } catch (const NotRegularFile &e) {
        std::string message = "Works only on files, not " + py::repr(fs_name(e.what())).cast<std::string>();
        PyErr_SetString(PyExc_RuntimeError, message.c_str());
    }
}

// Runs f without the GIL. A wait without timeout is interruptible (the core
// returns EINTR on a signal): Python's handlers then run here, so Ctrl-C
// raises KeyboardInterrupt as in the seed's fcntl.flock, and the wait goes on
// when no handler raised.
template <class F>
auto without_gil(F &&f) -> decltype(f()) {
    for (;;) {
        try {
            py::gil_scoped_release nogil;
            return f();
        } catch (const wl::LockFailed &e) {
            if (e.code().value() != EINTR) throw;
        }
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
}

// The value named `value` among `choices`, else ValueError naming `what`.
template <class T>
T pick(const char *what, const std::string &value, std::initializer_list<std::pair<const char *, T>> choices) {
    std::string names;
    for (const auto &[name, v] : choices) {
        if (value == name) return v;
        names += std::string(names.empty() ? "'" : ", '") + name + "'";
    }
    throw py::value_error(std::string("wrap_lockfile: ") + what + " must be one of " + names + ", not '" + value + "'");
}

// Every Python lock object is a lock of its own (the seed's flock semantics:
// a second object on the same file waits even in the same thread).
wl::LockOptions lock_options(std::optional<double> timeout, bool keep_lock_file, const std::string &backend) {
    wl::LockOptions o;
    o.timeout = timeout;
    o.backend = pick<wl::LockBackend>("backend", backend, {{"flock", wl::LockBackend::flock},
                                                           {"dotlock", wl::LockBackend::dotlock},
                                                           {"none", wl::LockBackend::none},
                                                           {"auto", wl::LockBackend::automatic}});
    o.keep_lock_file = keep_lock_file;
    o.nesting = false;
    o.interruptible = !timeout.has_value();
    return o;
}

wl::WriteOptions write_options(bool use_lock, std::optional<double> timeout, const std::string &temp_suffix,
                               const std::string &durability, bool keep_lock_file, const std::string &hard_links,
                               const std::string &backend, std::optional<unsigned> create_mode) {
    wl::WriteOptions o;
    o.use_lock = use_lock;
    o.lock = lock_options(timeout, keep_lock_file, backend);
    o.temp_suffix = temp_suffix;
    o.durability = pick<wl::Durability>("durability", durability,
                                        {{"full", wl::Durability::full}, {"batch", wl::Durability::batch}, {"none", wl::Durability::none}});
    o.hard_links = pick<wl::HardLinkPolicy>("hard_links", hard_links, {{"keep", wl::HardLinkPolicy::keep_links},
                                                                       {"split", wl::HardLinkPolicy::split}});
    if (create_mode) o.create_mode = static_cast<mode_t>(*create_mode);
    return o;
}

const char *kind_name(wl::CommitKind kind) {
    switch (kind) {
    case wl::CommitKind::rename: return "rename";
    case wl::CommitKind::in_place: return "in_place";
    case wl::CommitKind::passthrough: return "passthrough";
    }
    return "unknown";
}

// The core writes a FIFO, device, /proc or /sys file straight through, and
// opens it with the mode's O_TRUNC to do so: refuse one before the core
// opens it (a regular file behind /dev/stdout, /proc/self/fd/N is
// truncated by that open), by the core's own tests of the path.
void refuse_pseudo(const std::filesystem::path &path) {
    char final[WLF_PATH_MAX];
    bool exists = false, via_proc = false;
    struct stat st {};
    if (wl::detail::resolve_target(path.c_str(), false, final, sizeof final, &exists, &st, &via_proc) != 0)
        return;  // the core's open reports it
    if (via_proc || (exists && (!S_ISREG(st.st_mode) || wl::detail::is_pseudo_fs(final))))
        throw NotRegularFile(path.string());
}

// One pending replacement. The process that opened it is the only one that
// commits or discards it: a forked child's copy lets go of nothing (the
// parent's named temp and lock stay the parent's).
class File {
public:
    File(const std::filesystem::path &path, const std::string &mode, const wl::WriteOptions &options)
        : opener_(getpid()), file_((refuse_pseudo(path), std::make_unique<wl::AtomicFile>(path, mode, options))) {
        if (file_->kind() == wl::CommitKind::passthrough) {
            std::string target = file_->target().string();
            file_.reset();
            throw NotRegularFile(target);
        }
    }
    File(const File &) = delete;
    File &operator=(const File &) = delete;
    ~File() {
        if (!is_opener()) (void)file_.release();  // deliberate: the parent's to commit or discard
    }

    bool is_opener() const { return getpid() == opener_; }
    bool pending() const { return file_ && file_->pending(); }
    int fd() const { return live().fd(); }
    py::object target() const { return fs_name(live().target().string()); }
    std::string kind() const { return kind_name(live().kind()); }

    wl::AtomicFile &live() const {
        if (!file_ || !file_->pending())
            throw std::logic_error("wrap_lockfile: the replacement was already committed or discarded");
        return *file_;
    }
    std::string commit() {
        if (!is_opener()) throw std::logic_error("wrap_lockfile: a forked child cannot commit its parent's replacement");
        return kind_name(live().commit());
    }
    void discard() {
        if (file_ && is_opener()) file_->discard();
    }

private:
    pid_t opener_;
    std::unique_ptr<wl::AtomicFile> file_;
};

// Contiguous bytes of any buffer (bytes, bytearray, memoryview), held while
// the GIL is released: an exported bytearray cannot be resized meanwhile.
class Bytes {
public:
    explicit Bytes(const py::object &obj) {
        if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) throw py::error_already_set();
    }
    Bytes(const Bytes &) = delete;
    Bytes &operator=(const Bytes &) = delete;
    ~Bytes() { PyBuffer_Release(&view_); }
    std::string_view view() const { return {static_cast<const char *>(view_.buf), static_cast<size_t>(view_.len)}; }

private:
    Py_buffer view_{};
};

}  // namespace

PYBIND11_MODULE(_wrap_lockfile, m) {
    m.doc() = "wrap_lockfile's C++ core (use the package wrap_lockfile, not this module)";
    m.attr("__version__") = WLF_VERSION_STRING;

    py::module_ errors = py::module_::import("wrap_lockfile._errors");
    g_lock_timeout = py::object(errors.attr("LockTimeout")).release().ptr();
    g_already_locked = py::object(errors.attr("AlreadyLocked")).release().ptr();
    g_lock_failed = py::object(errors.attr("LockFailed")).release().ptr();
    py::register_exception_translator(translate);

    py::class_<wl::FileLock>(m, "Lock", "An exclusive lock on '<target>.lock', held until release().")
        .def(py::init([](const std::filesystem::path &target, std::optional<double> timeout, bool keep_lock_file,
                         const std::string &backend) {
                 wl::LockOptions o = lock_options(timeout, keep_lock_file, backend);
                 return without_gil([&] { return std::make_unique<wl::FileLock>(target, o); });
             }),
             py::arg("target"), py::arg("timeout") = py::none(), py::arg("keep_lock_file") = false,
             py::arg("backend") = "flock")
        .def("release", &wl::FileLock::release, "Release now (unlink the lock file first unless kept).")
        .def_property_readonly("held", &wl::FileLock::held)
        .def_property_readonly("path", [](const wl::FileLock &l) { return fs_name(l.lock_path().string()); });

    py::class_<File>(m, "File", "A pending atomic replacement: write through fd, then commit() or discard().")
        .def(py::init([](const std::filesystem::path &path, const std::string &mode, bool use_lock,
                         std::optional<double> timeout, const std::string &temp_suffix, const std::string &durability,
                         bool keep_lock_file, const std::string &hard_links, const std::string &backend,
                         std::optional<unsigned> create_mode) {
                 wl::WriteOptions o = write_options(use_lock, timeout, temp_suffix, durability, keep_lock_file,
                                                    hard_links, backend, create_mode);
                 return without_gil([&] { return std::make_unique<File>(path, mode, o); });
             }),
             py::arg("path"), py::arg("mode") = "w", py::arg("use_lock") = true, py::arg("timeout") = py::none(),
             py::arg("temp_suffix") = "~~", py::arg("durability") = "full", py::arg("keep_lock_file") = false,
             py::arg("hard_links") = "keep", py::arg("backend") = "flock", py::arg("create_mode") = py::none())
        .def_property_readonly("fd", &File::fd)
        .def_property_readonly("target", &File::target)
        .def_property_readonly("kind", &File::kind)
        .def_property_readonly("pending", &File::pending)
        .def_property_readonly("is_opener", &File::is_opener)
        .def("commit", [](File &f) { return without_gil([&] { return f.commit(); }); },
             "fsync, rename over the target, fsync its directory, release the lock; returns the commit kind.")
        .def("discard", &File::discard, "Remove the new content and release the lock.");

    m.def(
        "write_content",
        [](const std::filesystem::path &path, const py::object &content, bool use_lock, std::optional<double> timeout,
           const std::string &temp_suffix, const std::string &durability, bool keep_lock_file,
           const std::string &backend) {
            wl::WriteOptions o =
                write_options(use_lock, timeout, temp_suffix, durability, keep_lock_file, "keep", backend, std::nullopt);
            Bytes data(content);
            return without_gil([&] {
                File f(path, "w", o);
                f.live().write(data.view());
                return f.commit();
            });
        },
        py::arg("path"), py::arg("content"), py::arg("use_lock") = true, py::arg("timeout") = py::none(),
        py::arg("temp_suffix") = "~~", py::arg("durability") = "full", py::arg("keep_lock_file") = false,
        py::arg("backend") = "flock", "Replace path with the bytes of content; returns the commit kind.");

    m.def(
        "lock_file_name",
        [](const std::filesystem::path &name) {
            // lock_path_of of "/<name>": the directory entry alone.
            std::string absolute = "/" + name.string();
            char path[WLF_PATH_MAX];
            if (name.string().find('/') != std::string::npos ||
                wl::detail::lock_path_of(absolute.c_str(), path, sizeof path) != 0)
                return fs_name(name.string() + ".lock");
            return fs_name(path + 1);
        },
        py::arg("name"), "The lock file's name for a file name (no '/'): '<name>.lock', shortened where NAME_MAX needs it.");

    m.def("sync_pending", [] { without_gil([] { wl::sync_pending(); }); },
          "durability='batch': fsync, once each, the directories that commits since the last call renamed into.");
}
