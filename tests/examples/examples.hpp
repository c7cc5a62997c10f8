// The seed README's examples 1-6, translated to the C++ API. Paths are
// parameters, so the tests can run them inside a scratch directory.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <string_view>

namespace wlf_examples {

// Example 1: read a JSON config, apply new_settings (shallow, like dict.update),
// write it back atomically under the lock (lock_timeout 10 s).
void update_config(const std::filesystem::path &config_path, const nlohmann::json &new_settings);

// Example 2: append "[timestamp] message" to a log while holding its lock (timeout 5 s).
void append_log(const std::filesystem::path &log_path, std::string_view message);

// Example 3, literal: reads outside the lock, so concurrent callers can lose
// increments (as in the seed). Returns the new value.
int increment_counter(const std::filesystem::path &counter_file);

// Example 3 made safe for concurrent callers: the read happens under the same
// lock as the write.
int increment_counter_serialized(const std::filesystem::path &counter_file);

// Example 4: gzip input_data and replace output_path with it ("wb", lock_timeout 10 s).
void compress_and_save(std::string_view input_data, const std::filesystem::path &output_path);

// Example 5: the seed waits 2 s per attempt and pauses 1 s between attempts;
// tests shorten both.
struct RetryTiming {
    double lock_timeout = 2.0;
    std::chrono::duration<double> pause{1.0};
};
bool update_with_retry(const std::filesystem::path &filepath, std::string_view content,
                       int max_retries = 3, RetryTiming timing = {});

// Example 6: write /etc/app.conf, a symlink to /data/configs/app.conf.
void write_app_conf(const std::filesystem::path &conf_path);

}  // namespace wlf_examples
