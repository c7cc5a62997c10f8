#include "examples.hpp"

#include <wrap_lockfile/wrap_lockfile.hpp>

#include <zlib.h>

#include <ctime>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace wlf_examples {

namespace fs = std::filesystem;
using namespace wrap_lockfile;

namespace {

// nullopt when the file does not exist; other failures throw.
std::optional<std::string> read_text(const fs::path &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (!fs::exists(path)) return std::nullopt;
        throw std::runtime_error("cannot read " + path.string());
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string timestamp() {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
    return buf;
}

// gzip.compress(): a gzip member (header + deflate + trailer), not a raw zlib stream.
std::string gzip_compress(std::string_view data) {
    // One deflate() call takes at most uInt bytes; examples stay far below.
    if (data.size() > std::numeric_limits<uInt>::max()) throw std::length_error("input too large for one call");
    z_stream zs{};
    constexpr int gzip_window_bits = 15 + 16;
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzip_window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    // deflateBound counts the gzip wrapper too, so Z_FINISH completes in one call.
    std::string out(deflateBound(&zs, data.size()), '\0');
    zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef *>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
    return out;
}

}  // namespace

void update_config(const fs::path &config_path, const nlohmann::json &new_settings) {
    std::optional<std::string> text = read_text(config_path);
    if (!text) throw std::runtime_error("no config at " + config_path.string());
    nlohmann::json config = nlohmann::json::parse(*text);
    config.update(new_settings);

    AtomicFile out = atomic_write_lock(config_path, "w", 10.0);
    out.stream() << config.dump(2) << '\n';
    out.commit();
}

void append_log(const fs::path &log_path, std::string_view message) {
    mylockfile lock(log_path, 5.0);
    std::ofstream log(log_path, std::ios::app);
    log << '[' << timestamp() << "] " << message << '\n';
    log.close();
    if (!log) throw std::runtime_error("cannot append to " + log_path.string());
}

int increment_counter(const fs::path &counter_file) {
    std::optional<std::string> text = read_text(counter_file);
    int count = text ? std::stoi(*text) : 0;

    AtomicFile out = atomic_write_lock(counter_file, "w", 5.0);
    out.write(std::to_string(count + 1));
    out.commit();
    return count + 1;
}

int increment_counter_serialized(const fs::path &counter_file) {
    // The lock is per thread and nests: the atomic_write_lock inside takes
    // this same lock at once instead of deadlocking on it.
    mylockfile lock(counter_file, 5.0);
    return increment_counter(counter_file);
}

void compress_and_save(std::string_view input_data, const fs::path &output_path) {
    std::string compressed = gzip_compress(input_data);
    AtomicFile out = atomic_write_lock(output_path, "wb", 10.0);
    out.write(compressed);
    out.commit();
}

bool update_with_retry(const fs::path &filepath, std::string_view content, int max_retries, RetryTiming timing) {
    for (int attempt = 1; attempt <= max_retries; ++attempt) {
        try {
            mylockfile lock(filepath, timing.lock_timeout);
            std::ofstream out(filepath, std::ios::trunc);
            out << content;
            out.close();
            // As in the seed, only lock errors are turned into a result.
            if (!out) throw std::runtime_error("cannot write " + filepath.string());
            return true;
        } catch (const LockTimeout &) {
            if (attempt < max_retries) std::this_thread::sleep_for(timing.pause);
        } catch (const mylockfile_other_exceptions &) {
            return false;
        }
    }
    return false;
}

void write_app_conf(const fs::path &conf_path) {
    AtomicFile out = atomic_write_lock(conf_path);
    out.write("debug=true\nverbose=true\n");
    out.commit();
}

}  // namespace wlf_examples
