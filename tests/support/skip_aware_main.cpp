// main() of the GoogleTest binaries that need nothing else first
// (skip_aware.hpp: a skipped test makes the run exit 77).
#include "skip_aware.hpp"

int main(int argc, char **argv) {
    testing::InitGoogleTest(&argc, argv);
    return wlf_test::skip_aware_result(RUN_ALL_TESTS());
}
