// The message of an errno value (wlf_error_format, error.cpp).
#include "internal.hpp"

#include <cstring>

namespace wrap_lockfile::detail {

const char *error_text(int code, char *buf, size_t size) { return strerror_r(code, buf, size); }

}  // namespace wrap_lockfile::detail
