#include "test_support.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace wlf_test {

TempDir::TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wlf-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path &p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::filesystem::path &p, const std::string &content, mode_t mode) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + p.string());
    if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
        ::close(fd);
        throw std::system_error(errno, std::generic_category(), "write " + p.string());
    }
    ::fchmod(fd, mode);
    ::close(fd);
}

struct stat lstat_or_die(const std::filesystem::path &p) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) throw std::system_error(errno, std::generic_category(), "lstat " + p.string());
    return st;
}

std::size_t count_entries(const std::filesystem::path &dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] auto &e : std::filesystem::directory_iterator(dir)) ++n;
    return n;
}

}  // namespace wlf_test
