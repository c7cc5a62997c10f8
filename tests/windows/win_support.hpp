// Helpers of the Windows suite: scratch directories, file access by wide
// path, and child processes (no fork on Windows: a test binary starts
// itself with "--child ROLE ARGS..." and main() runs the role instead of
// the tests), ordered by named events, never by sleeps.
#pragma once

#include <windows.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace wlf_win {

namespace fs = std::filesystem;

// A fresh directory under %TEMP%, removed at destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    const fs::path &path() const { return path_; }
    fs::path operator/(const std::string &name) const { return path_ / fs::path(name); }

private:
    fs::path path_;
};

// `p` as the UTF-8 bytes the C API takes.
std::string utf8(const fs::path &p);
// `p` with the \\?\ prefix (absolute), for Win32 calls on long paths.
std::wstring long_path(const fs::path &p);

std::string read_file(const fs::path &p);
void write_file(const fs::path &p, const std::string &content);
// Names in `dir`, sorted.
std::vector<std::string> list_names(const fs::path &dir);

// A named manual-reset event, shared with children by name.
class Event {
public:
    explicit Event(const std::string &name);  // created or opened
    ~Event();
    Event(const Event &) = delete;
    Event &operator=(const Event &) = delete;
    void set();
    // True when set within timeout_ms (a safety net, never the proof).
    bool wait(DWORD timeout_ms = 20000);
    static std::string unique_name(const std::string &what);

private:
    HANDLE h_;
};

// A child process running this binary with "--child role args...".
class Child {
public:
    Child(const std::string &role, const std::vector<std::string> &args);
    ~Child();
    Child(const Child &) = delete;
    Child &operator=(const Child &) = delete;
    DWORD pid() const { return pi_.dwProcessId; }
    // Exit code, or -1 if it did not end within timeout_ms.
    int wait(DWORD timeout_ms = 60000);
    void kill();

private:
    PROCESS_INFORMATION pi_{};
    bool waited_ = false;
};

// The child roles of a binary: role name -> function(args) -> exit code.
using Role = std::function<int(const std::vector<std::string> &)>;
std::map<std::string, Role> &roles();
struct RegisterRole {
    RegisterRole(const std::string &name, Role fn) { roles()[name] = std::move(fn); }
};

// A process holding the lock of `target` (backend "flock" or "dotlock")
// from the constructor until release(); with `stamp`, it writes the time
// (now_seconds) right before its release into that file.
class Holder {
public:
    explicit Holder(const fs::path &target, const std::string &backend = "flock", const fs::path &stamp = {});
    bool locked() const { return locked_; }
    DWORD pid() const { return child_.pid(); }
    // Lets it release and exit; its exit code.
    int release();
    void kill() { child_.kill(); }

private:
    std::string ready_, go_;
    Event ready_event_, go_event_;
    Child child_;
    bool locked_ = false;
};

// QueryPerformanceCounter in seconds: one clock for every process.
double now_seconds();

}  // namespace wlf_win
