// The per-mount lock default (core/src/mount_info.cpp): mountinfo parsing
// (escapes, optional fields, super options, pieces of any size, long and
// malformed lines), the rule, and the choice for a real directory read from
// a mountinfo file the test writes.
#include "lock_internal.hpp"
#include "mount_info.hpp"
#include "test_support.hpp"
#include "wlf_config.h"

#include <wrap_lockfile/wrap_lockfile.h>

#include <gtest/gtest.h>

#include <sys/stat.h>
#if WLF_HAVE_STATX
#include <linux/stat.h>
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U  // Linux 6.8
#endif
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

using wrap_lockfile::detail::auto_lock_backend;
using wrap_lockfile::detail::flock_stays_local;
using wrap_lockfile::detail::MountFacts;
using wrap_lockfile::detail::MountinfoScanner;

namespace {

std::vector<MountFacts> scan(const std::string &text, size_t piece = 0) {
    std::vector<MountFacts> out;
    MountinfoScanner s(
        [](void *ctx, const MountFacts &f) {
            static_cast<std::vector<MountFacts> *>(ctx)->push_back(f);
            return true;
        },
        &out);
    if (piece == 0) piece = text.size() ? text.size() : 1;
    for (size_t i = 0; i < text.size(); i += piece) s.feed(text.data() + i, std::min(piece, text.size() - i));
    s.finish();
    return out;
}

const char *kSample =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "36 22 0:31 / /mnt/my\\040share rw,relatime shared:7 master:2 - nfs4 srv:/export\\040x "
    "rw,vers=4.2,rsize=1048576,hard,proto=tcp,timeo=600,sec=sys,local_lock=flock,addr=10.0.0.1\n"
    "37 22 0:32 / /home/u/remote rw,nosuid,nodev - fuse.sshfs u@h:/srv rw,user_id=0,group_id=0\n"
    "38 22 0:33 / /gl rw - fuse.glusterfs 127.0.0.1:/v rw,user_id=0,group_id=0,default_permissions,allow_other\n";

TEST(MountInfo, ParsesFieldsEscapesAndOptionalFields) {
    auto v = scan(kSample);
    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(v[0].mount_id, 22u);
    EXPECT_EQ(v[0].major, 8u);
    EXPECT_EQ(v[0].minor, 1u);
    EXPECT_STREQ(v[0].fstype, "ext4");
    EXPECT_STREQ(v[0].super_opts, "rw,errors=remount-ro");
    // Two optional fields and an escaped space in the mount point and the source.
    EXPECT_EQ(v[1].mount_id, 36u);
    EXPECT_EQ(v[1].minor, 31u);
    EXPECT_STREQ(v[1].fstype, "nfs4");
    EXPECT_NE(std::string(v[1].super_opts).find("local_lock=flock"), std::string::npos);
    // No optional field at all.
    EXPECT_STREQ(v[2].fstype, "fuse.sshfs");
    EXPECT_STREQ(v[3].fstype, "fuse.glusterfs");
}

TEST(MountInfo, PiecesOfAnySizeGiveTheSameLines) {
    auto whole = scan(kSample);
    for (size_t piece : {1u, 2u, 3u, 7u, 64u}) {
        auto v = scan(kSample, piece);
        ASSERT_EQ(v.size(), whole.size()) << "piece " << piece;
        for (size_t i = 0; i < v.size(); ++i) {
            EXPECT_EQ(v[i].mount_id, whole[i].mount_id);
            EXPECT_STREQ(v[i].fstype, whole[i].fstype);
            EXPECT_STREQ(v[i].super_opts, whole[i].super_opts);
        }
    }
}

TEST(MountInfo, EscapesInTheFieldsKept) {
    auto v = scan("5 1 0:40 / /x rw - fuse.my\\040fs a\\134b opt\\054with\\011tab\n");
    ASSERT_EQ(v.size(), 1u);
    EXPECT_STREQ(v[0].fstype, "fuse.my fs");
    EXPECT_STREQ(v[0].super_opts, "opt,with\ttab");
}

TEST(MountInfo, LongMountPointCostsNothingAndLongOptionsAreCutAtAComma) {
    std::string mp(10000, 'm');
    std::string opts = "rw";
    while (opts.size() < 3000) opts += ",opt" + std::to_string(opts.size());
    opts += ",local_lock=all";
    auto v = scan("7 1 0:41 / /" + mp + " rw shared:3 - nfs srv:/e " + opts + "\n8 1 0:42 / /y rw - tmpfs t rw\n", 100);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0].mount_id, 7u);
    EXPECT_STREQ(v[0].fstype, "nfs");
    std::string kept = v[0].super_opts;
    EXPECT_LT(kept.size(), sizeof v[0].super_opts);
    EXPECT_EQ(kept.substr(0, 3), "rw,");
    EXPECT_NE(kept.back(), ',');
    // Cut at a whole option: the last one kept is one of ours, complete.
    EXPECT_EQ(kept.substr(kept.rfind(',') + 1, 3), "opt");
    EXPECT_EQ(v[1].mount_id, 8u);
}

TEST(MountInfo, MalformedLinesAreSkipped) {
    auto v = scan(
        "x 1 0:1 / / rw - ext4 a rw\n"             // no mount id
        "9 1 01 / / rw - ext4 a rw\n"              // no major:minor
        "10 1 0:2 / / rw shared:1 ext4 a rw\n"     // no separator
        "11 1 0:3 / / rw - ext4\n"                 // fields missing after it
        "\n"
        "12 1 0:4 / / rw - xfs /dev/b rw");        // last line without newline
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].mount_id, 12u);
    EXPECT_STREQ(v[0].fstype, "xfs");
}

TEST(MountInfo, TheRule) {
    // flock stays on this host although the files are shared: dotlock.
    EXPECT_TRUE(flock_stays_local("nfs4", "rw,vers=4.2,local_lock=flock,addr=1.2.3.4"));
    EXPECT_TRUE(flock_stays_local("nfs", "rw,vers=3,local_lock=all"));
    EXPECT_TRUE(flock_stays_local("nfs", "rw,vers=3,nolock"));
    EXPECT_TRUE(flock_stays_local("cifs", "rw,vers=3.1.1,nobrl"));
    EXPECT_TRUE(flock_stays_local("fuse.sshfs", "rw,user_id=0,group_id=0"));
    // The file system's lock manager sees flock: flock.
    EXPECT_FALSE(flock_stays_local("nfs4", "rw,vers=4.2,local_lock=none,addr=1.2.3.4"));
    EXPECT_FALSE(flock_stays_local("nfs4", "rw,vers=4.2,local_lock=posix"));
    EXPECT_FALSE(flock_stays_local("nfs4", "rw,local_lock=flocked"));  // whole options only
    EXPECT_FALSE(flock_stays_local("cifs", "rw,vers=3.1.1"));
    EXPECT_FALSE(flock_stays_local("fuse.glusterfs", "rw,user_id=0"));
    EXPECT_FALSE(flock_stays_local("ceph", "rw,name=admin"));
    EXPECT_FALSE(flock_stays_local("ext4", "rw,local_lock=all"));  // only NFS has the option
    EXPECT_FALSE(flock_stays_local("tmpfs", "rw"));
}

// A directory of this machine, described by a mountinfo file of ours.
class Choice : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/wlf-mountinfo.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        struct statx sx;
        ASSERT_EQ(statx(AT_FDCWD, dir_.c_str(), 0, STATX_MNT_ID, &sx), 0);
        has_id_ = (sx.stx_mask & STATX_MNT_ID) != 0;
        id_ = has_id_ ? sx.stx_mnt_id : 0;
        dev_ = std::to_string(sx.stx_dev_major) + ":" + std::to_string(sx.stx_dev_minor);
    }
    void TearDown() override {
        unlink((dir_ + "/mountinfo").c_str());
        rmdir(dir_.c_str());
    }
    int choose(const std::string &lines) {
        std::string mi = dir_ + "/mountinfo";
        std::ofstream(mi) << lines;
        return auto_lock_backend((dir_ + "/target.lock").c_str(), mi.c_str());
    }
    std::string line(unsigned long id, const std::string &dev, const std::string &fstype, const std::string &opts) {
        return std::to_string(id) + " 1 " + dev + " / " + dir_ + " rw - " + fstype + " src " + opts + "\n";
    }
    std::string dir_, dev_;
    bool has_id_ = false;
    unsigned long id_ = 0;
};

TEST_F(Choice, DotlockOnlyForTheMountWhereFlockStaysLocal) {
    EXPECT_EQ(choose(line(id_, dev_, "fuse.sshfs", "rw")), WLF_LOCK_DOTLOCK);
    EXPECT_EQ(choose(line(id_, dev_, "nfs4", "rw,local_lock=all")), WLF_LOCK_DOTLOCK);
    EXPECT_EQ(choose(line(id_, dev_, "nfs4", "rw,local_lock=none")), WLF_LOCK_FLOCK);
    EXPECT_EQ(choose(line(id_, dev_, "fuse.glusterfs", "rw")), WLF_LOCK_FLOCK);
    // Another mount's line says nothing about ours.
    EXPECT_EQ(choose(line(id_ + 1000, "250:250", "fuse.sshfs", "rw") + line(id_, dev_, "ext4", "rw")), WLF_LOCK_FLOCK);
    // Not listed at all, or nothing to read: flock, as without the choice.
    EXPECT_EQ(choose(line(id_ + 1000, "250:250", "fuse.sshfs", "rw")), WLF_LOCK_FLOCK);
    EXPECT_EQ(auto_lock_backend((dir_ + "/target.lock").c_str(), (dir_ + "/missing").c_str()), WLF_LOCK_FLOCK);
    EXPECT_EQ(auto_lock_backend((dir_ + "/no/such/dir/target.lock").c_str(), nullptr), WLF_LOCK_FLOCK);
}

TEST_F(Choice, MatchedByMountIdNotByDeviceWhenTheKernelNamesIt) {
    if (!has_id_) GTEST_SKIP() << "statx gives no mount id here (Linux < 5.8)";
    // The same device under another mount id (a bind mount elsewhere) is not ours.
    EXPECT_EQ(choose(line(id_ + 1000, dev_, "fuse.sshfs", "rw") + line(id_, dev_, "ext4", "rw")), WLF_LOCK_FLOCK);
    EXPECT_EQ(choose(line(id_ + 1000, dev_, "ext4", "rw") + line(id_, dev_, "fuse.sshfs", "rw")), WLF_LOCK_DOTLOCK);
}

TEST(MountInfoLive, ThisProcessesRootIsFlock) {
    // / here is no sshfs or local_lock NFS mount; the real mountinfo is read.
    EXPECT_EQ(auto_lock_backend("/wlf-no-such.lock"), WLF_LOCK_FLOCK);
}

// The probe's guess of a directory's mount (dir_mount_*): trusted only when
// the lock file it creates lands on that mount.
class ProbeGuess : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = scratch_.path().string();
        target_ = dir_ + "/t";
        lock_ = target_ + ".lock";
        wlf_lock_options_init(&opt_);
        opt_.backend = WLF_LOCK_AUTO;
        opt_.has_timeout = 1;
        opt_.timeout = 0;
    }
    void TearDown() override { wrap_lockfile::detail::dir_mount_forget(target_.c_str()); }
    bool lock_file_exists() const { return access(lock_.c_str(), F_OK) == 0; }
    wlf_test::TempDir scratch_;
    std::string dir_, target_, lock_;
    wlf_lock_options opt_;
};

TEST_F(ProbeGuess, AnotherMountThanGuessedGivesTheProbeUp) {
    namespace d = wrap_lockfile::detail;
    d::dir_mount_store(target_.c_str(), {0x5eed5eed5eedULL, WLF_LOCK_FLOCK});
    wlf_lock *lock = nullptr;
    EXPECT_EQ(d::lock_acquire_probe(target_.c_str(), &opt_, 0, &lock), EAGAIN);
    EXPECT_FALSE(lock_file_exists()) << "the probe's own lock file stays behind";
    d::DirMount m{};
    EXPECT_FALSE(d::dir_mount_find(target_.c_str(), &m)) << "the wrong guess is not forgotten";
    // Asked the slow way, the directory's real mount is remembered, where
    // the kernel names it (statx's unique mount id: Linux 6.8; not in the
    // portable build, which then never guesses).
    ASSERT_EQ(d::lock_acquire_probe(target_.c_str(), &opt_, 0, &lock), 0);
    EXPECT_TRUE(lock_file_exists());
    uint64_t real = 0;
#if WLF_HAVE_STATX
    struct statx sx;
    if (statx(AT_FDCWD, dir_.c_str(), 0, STATX_MNT_ID_UNIQUE, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID_UNIQUE))
        real = sx.stx_mnt_id;
#endif
    d::lock_release_probe(lock);
    EXPECT_FALSE(lock_file_exists());
    if (real == 0) {
        EXPECT_FALSE(d::dir_mount_find(target_.c_str(), &m)) << "a guess stored without a mount id";
        return;
    }
    ASSERT_TRUE(d::dir_mount_find(target_.c_str(), &m));
    EXPECT_EQ(m.mount, real);
    EXPECT_EQ(m.backend, WLF_LOCK_FLOCK);
    // The right guess is kept and used.
    ASSERT_EQ(d::lock_acquire_probe(target_.c_str(), &opt_, 0, &lock), 0);
    d::lock_release_probe(lock);
    d::DirMount again{};
    ASSERT_TRUE(d::dir_mount_find(target_.c_str(), &again));
    EXPECT_EQ(again.mount, m.mount);
}

}  // namespace
