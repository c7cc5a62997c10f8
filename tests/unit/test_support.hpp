// Shared helpers for the unit tests: scratch directories, file access.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <string>

namespace wlf_test {

// A fresh directory under $TMPDIR (or /tmp), removed at destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::filesystem::path &path() const { return path_; }
    std::filesystem::path operator/(const std::string &name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path &p);
void write_file(const std::filesystem::path &p, const std::string &content, mode_t mode = 0644);
struct stat lstat_or_die(const std::filesystem::path &p);
// Names in `dir` other than the ones given (to find leftover temps).
std::size_t count_entries(const std::filesystem::path &dir);

}  // namespace wlf_test
