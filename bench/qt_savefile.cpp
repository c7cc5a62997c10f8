// Qt peer for tools/bench.sh: QSaveFile open + write + commit in a loop.
//
//   qt_savefile DIR SIZE BUDGET_MS MAX_ITERS
//   prints "MEDIAN_NS ITERS" (per operation, wall clock)
// QSaveFile has no durability switch: commit() always syncs the temp file
// before renaming it; it does not fsync the directory.
#include <QByteArray>
#include <QSaveFile>
#include <QString>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static long long now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: qt_savefile DIR SIZE BUDGET_MS MAX_ITERS\n");
        return 2;
    }
    const QString target = QString::fromLocal8Bit(argv[1]) + "/target";
    const QByteArray data(int(strtoll(argv[2], nullptr, 10)), 'x');
    const long long end = now_ns() + atoll(argv[3]) * 1000000LL;
    const long max_iters = atol(argv[4]);
    std::vector<long long> t;
    for (long n = -1; n < max_iters && (n < 2 || now_ns() < end); ++n) {
        long long a = now_ns();
        QSaveFile f(target);
        if (!f.open(QIODevice::WriteOnly) || f.write(data) != data.size() || !f.commit()) {
            fprintf(stderr, "qt_savefile: %s\n", qPrintable(f.errorString()));
            return 1;
        }
        if (n >= 0) t.push_back(now_ns() - a);
    }
    std::sort(t.begin(), t.end());
    size_t n = t.size();
    printf("%lld %zu\n", n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2, n);
    unlink(argv[1] ? (std::string(argv[1]) + "/target").c_str() : "");
    return 0;
}
