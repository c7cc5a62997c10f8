// main() of every replacement test binary: as root it first enters a private
// mount namespace, so the tmpfs, bind and loop mounts the tests make under
// their scratch directories are invisible outside and vanish with the process.
#include "skip_aware.hpp"

#include "replace_support.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>

bool wlf_replace_test::g_private_mounts = false;
int wlf_replace_test::g_unshare_error = 0;

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    // Before any thread exists: unshare gives only the calling thread the new
    // namespace, and every later thread and child inherits it.
    if (geteuid() == 0) {
        if (::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0)
            g_private_mounts = true;
        else
            g_unshare_error = errno;
    }
    return wlf_test::skip_aware_result(RUN_ALL_TESTS());
}
