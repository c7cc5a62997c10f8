#include "preload_lookup.hpp"

#include "config.hpp"
#include "failure.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace wrap_lockfile::atomically {

// The file name meson gives the preload object (shim/meson.build).
constexpr const char *kPreloadName = WLF_PRELOAD_NAME;

namespace {

std::string self_dir() {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "";
    std::string exe(buf, static_cast<size_t>(n));
    return exe.substr(0, exe.rfind('/'));
}

bool same_file(const std::string &a, const struct stat &b) {
    struct stat st;
    return stat(a.c_str(), &st) == 0 && st.st_dev == b.st_dev && st.st_ino == b.st_ino;
}

}  // namespace

std::string find_preload(ElfInfo &info) {
    std::string candidate;
    if (const char *forced = getenv(config::kPreloadVar)) {
        if (!*forced) fail(std::string(config::kPreloadVar) + ": empty path");
        candidate = forced;
    } else {
        // Next to the launcher (a relocated install), the build tree, then
        // the configured install location.
        std::string dir = self_dir();
        std::vector<std::string> places;
        if (!dir.empty()) {
            places.push_back(dir + "/" + kPreloadName);
            places.push_back(dir + "/preload/" + kPreloadName);
        }
        places.push_back(WLF_PRELOAD_INSTALLED);
        for (const std::string &p : places) {
            if (access(p.c_str(), F_OK) == 0) {
                candidate = p;
                break;
            }
        }
        if (candidate.empty()) {
            std::string list;
            for (const std::string &p : places) list += (list.empty() ? "" : ", ") + p;
            fail(std::string("cannot find the preload object ") + kPreloadName + " (looked for " + list +
                 "; set " + config::kPreloadVar + " to its path)");
        }
    }
    char *real = realpath(candidate.c_str(), nullptr);
    if (!real) fail("cannot load the preload object " + candidate + ": " + error_text(errno));
    std::string path = real;
    free(real);
    // ':' and ' ' separate LD_PRELOAD entries; no quoting exists.
    if (path.find_first_of(": \t") != std::string::npos)
        fail("the preload object's path " + quoted(path) + " contains a character that separates LD_PRELOAD entries");
    if (!dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL))
        fail("cannot load the preload object " + path + ": " + dlerror());
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::optional<ElfInfo> elf = fd >= 0 ? read_elf(fd) : std::nullopt;
    if (fd >= 0) close(fd);
    if (!elf) fail("cannot read the ELF headers of the preload object " + path);
    info = *elf;
    // The preload object is built with this launcher: the loader running us
    // is the one it needs.
    ElfInfo self;
    detail::native_id(&self);
    std::memcpy(info.interp, self.interp, sizeof info.interp);
    return path;
}

std::string composed_ld_preload(const std::string &preload) {
    std::string out = preload;
    const char *existing = getenv("LD_PRELOAD");
    if (!existing) return out;
    struct stat self;
    bool have_self = stat(preload.c_str(), &self) == 0;
    std::string_view rest = existing;
    while (!rest.empty()) {
        size_t end = rest.find_first_of(": ");  // the separators ld.so accepts
        std::string entry(rest.substr(0, end));
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
        if (entry.empty() || entry == preload || (have_self && same_file(entry, self))) continue;
        out += ':' + entry;
    }
    return out;
}

}  // namespace wrap_lockfile::atomically
