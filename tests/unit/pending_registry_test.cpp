// The pending-replacement registry both shims keep (shim/common/
// pending_registry.hpp): handles counted per entry, the last close by the
// opener reported once, a full table refusing with nothing half-added,
// lookup by key, the walk at exit. Each behaviour is checked with both
// handle maps: a list in each entry (the Windows DLL's) and an O(1) index
// owned by the caller (the Linux descriptor table).
#include "pending_registry.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#ifdef _WIN32
#include <windows.h>
#endif

namespace pending = wrap_lockfile::pending;

namespace {

// A recursive lock as the registry sees it; `elsewhere` makes try_lock
// fail as a lock another thread holds would.
struct TestLock {
    static inline int depth = 0;
    static inline bool elsewhere = false;
    static void lock() { ++depth; }
    static void unlock() { --depth; }
    static bool try_lock() {
        if (elsewhere) return false;
        ++depth;
        return true;
    }
};

constexpr int kIndexSize = 64;
constexpr uintptr_t kMark = 1;  // a word the index's owner uses for itself

struct TestIndex {
    static constexpr uintptr_t kMarks = 2;
    static inline uintptr_t words[kIndexSize];
    static inline int high = 0;
    static bool holds(int h) { return h >= 0 && h < kIndexSize; }
    static uintptr_t load(int h) { return words[h]; }
    static void store(int h, uintptr_t v) {
        words[h] = v;
        if (v && h >= high) high = h + 1;
    }
    static int end() { return high; }
};

constexpr size_t kCapacity = 3;
constexpr size_t kPerEntry = 4;

template <class H, class Map>
struct Config {
    using Handle = H;
    using Registry = pending::PendingRegistry<H, int, TestLock, Map, kCapacity>;
    static H handle(int n) {
        if constexpr (std::is_pointer_v<H>)
            return reinterpret_cast<H>(static_cast<intptr_t>(n) * 4);
        else
            return n;
    }
};

using ListConfig = Config<int, pending::HandleList<kPerEntry>>;
using IndexedConfig = Config<int, pending::IndexedHandles<TestIndex>>;

wlf_file *file(int n) { return reinterpret_cast<wlf_file *>(static_cast<intptr_t>(0x1000 * n)); }

constexpr int kOpener = 100;
constexpr int kOther = 200;

template <class C>
class PendingRegistryTest : public ::testing::Test {
protected:
    using Registry = typename C::Registry;
    using Entry = typename Registry::Entry;

    void SetUp() override {
        memset(TestIndex::words, 0, sizeof TestIndex::words);
        TestIndex::high = 0;
        TestLock::depth = 0;
        TestLock::elsewhere = false;
        reg = std::make_unique<Registry>();
    }
    void TearDown() override {
        // Every operation releases what it took.
        EXPECT_EQ(TestLock::depth, 0);
        reg->for_each([&](Entry *e) { reg->remove(e); });
    }
    static auto h(int n) { return C::handle(n); }

    std::unique_ptr<Registry> reg;
};

#ifdef _WIN32
using WinConfig = Config<HANDLE, pending::HandleList<kPerEntry>>;
using Configs = ::testing::Types<ListConfig, IndexedConfig, WinConfig>;
#else
using Configs = ::testing::Types<ListConfig, IndexedConfig>;
#endif
TYPED_TEST_SUITE(PendingRegistryTest, Configs);

TYPED_TEST(PendingRegistryTest, AddDupCloseInAnyOrder) {
    auto *e = this->reg->add(file(1), this->h(3), "/t/a", kOpener);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->file, file(1));
    EXPECT_EQ(e->refs, 1);
    EXPECT_EQ(this->reg->count(), 1u);
    ASSERT_TRUE(this->reg->add_handle(e, this->h(5)));
    ASSERT_TRUE(this->reg->add_handle(e, this->h(7)));
    EXPECT_EQ(e->refs, 3);
    EXPECT_EQ(this->reg->by_handle(this->h(5)), e);
    // The original goes first, then a dup: neither is the last.
    EXPECT_EQ(this->reg->drop_handle(this->h(3), kOpener), nullptr);
    EXPECT_EQ(this->reg->by_handle(this->h(3)), nullptr);
    EXPECT_EQ(this->reg->drop_handle(this->h(7), kOpener), nullptr);
    EXPECT_EQ(this->reg->by_handle(this->h(5)), e);
    EXPECT_EQ(e->refs, 1);
    EXPECT_EQ(this->reg->drop_handle(this->h(5), kOpener), e);
    EXPECT_EQ(this->reg->by_handle(this->h(5)), nullptr);
    EXPECT_EQ(this->reg->remove(e), file(1));
    EXPECT_EQ(this->reg->count(), 0u);
    EXPECT_EQ(this->reg->by_key("/t/a"), nullptr);
}

TYPED_TEST(PendingRegistryTest, LastCloseReportedOnce) {
    auto *e = this->reg->add(file(1), this->h(3), "/t/a", kOpener);
    ASSERT_NE(e, nullptr);
    ASSERT_TRUE(this->reg->add_handle(e, this->h(4)));
    EXPECT_EQ(this->reg->drop_handle(this->h(4), kOpener), nullptr);
    EXPECT_EQ(this->reg->drop_handle(this->h(4), kOpener), nullptr);  // closed twice: still not the last
    EXPECT_EQ(e->refs, 1);
    EXPECT_EQ(this->reg->drop_handle(this->h(9), kOpener), nullptr);  // never listed
    EXPECT_EQ(this->reg->drop_handle(this->h(3), kOpener), e);
    EXPECT_EQ(this->reg->drop_handle(this->h(3), kOpener), nullptr);  // the commit is not asked for again
    this->reg->remove(e);
}

TYPED_TEST(PendingRegistryTest, NonOpenerNeverCommits) {
    auto *e = this->reg->add(file(1), this->h(3), "/t/a", kOpener);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(this->reg->drop_handle(this->h(3), kOther), nullptr);
    // Left as it was: the opener's own close still finds it and commits.
    EXPECT_EQ(e->refs, 1);
    EXPECT_EQ(this->reg->by_handle(this->h(3)), e);
    EXPECT_EQ(this->reg->drop_handle(this->h(3), kOpener), e);
    this->reg->remove(e);
}

TYPED_TEST(PendingRegistryTest, FullTableRefusesAndAddsNothing) {
    typename TestFixture::Entry *added[kCapacity];
    char key[] = "/t/0";
    for (size_t i = 0; i < kCapacity; ++i) {
        key[3] = static_cast<char>('0' + i);
        added[i] = this->reg->add(file(static_cast<int>(i + 1)), this->h(static_cast<int>(10 + i)), key, kOpener);
        ASSERT_NE(added[i], nullptr);
    }
    EXPECT_EQ(this->reg->add(file(9), this->h(20), "/t/full", kOpener), nullptr);
    EXPECT_EQ(this->reg->add(file(9), "/t/full", kOpener), nullptr);
    EXPECT_EQ(this->reg->count(), kCapacity);
    EXPECT_EQ(this->reg->by_handle(this->h(20)), nullptr);
    EXPECT_EQ(this->reg->by_key("/t/full"), nullptr);
    int walked = 0;
    this->reg->for_each([&](typename TestFixture::Entry *) { ++walked; });
    EXPECT_EQ(walked, static_cast<int>(kCapacity));
    // A freed slot takes the next one.
    this->reg->drop_handle(this->h(11), kOpener);
    this->reg->remove(added[1]);
    auto *e = this->reg->add(file(9), this->h(20), "/t/full", kOpener);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(this->reg->by_key("/t/full"), e);
    EXPECT_EQ(this->reg->by_handle(this->h(20)), e);
}

TYPED_TEST(PendingRegistryTest, ByKeyFindsTheOneEntry) {
    char key[] = "/t/a";
    auto *a = this->reg->add(file(1), this->h(3), key, kOpener);
    auto *b = this->reg->add(file(2), this->h(4), "/t/b", kOpener);
    auto *c = this->reg->add(file(3), this->h(5), nullptr, kOpener);  // taken over across exec: no key
    ASSERT_TRUE(a && b && c);
    key[3] = 'x';  // the registry keeps its own copy
    EXPECT_EQ(this->reg->by_key("/t/a"), a);
    EXPECT_EQ(this->reg->by_key("/t/b"), b);
    EXPECT_EQ(this->reg->by_key("/t/x"), nullptr);
    EXPECT_EQ(this->reg->by_key("/t"), nullptr);
    EXPECT_EQ(c->key, nullptr);
    this->reg->drop_handle(this->h(3), kOpener);
    this->reg->remove(a);
    EXPECT_EQ(this->reg->by_key("/t/a"), nullptr);
    EXPECT_EQ(this->reg->by_key("/t/b"), b);
}

TYPED_TEST(PendingRegistryTest, WalkAtExitSeesEachPendingEntryOnce) {
    auto *a = this->reg->add(file(1), this->h(3), "/t/a", kOpener);
    auto *b = this->reg->add(file(2), this->h(4), "/t/b", kOpener);
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(this->reg->add_handle(a, this->h(6)));
    ASSERT_TRUE(this->reg->add_handle(a, this->h(8)));
    // An entry whose handles are all gone but not yet removed is walked too.
    auto *c = this->reg->add(file(3), this->h(5), "/t/c", kOpener);
    ASSERT_EQ(this->reg->drop_handle(this->h(5), kOpener), c);

    std::vector<typename TestFixture::Entry *> seen;
    this->reg->for_each([&](typename TestFixture::Entry *e) { seen.push_back(e); });
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen[0], a);
    EXPECT_EQ(seen[1], b);
    EXPECT_EQ(seen[2], c);

    // Another thread holds the lock: nothing is walked.
    TestLock::elsewhere = true;
    int walked = 0;
    EXPECT_FALSE(this->reg->try_for_each([&](typename TestFixture::Entry *) { ++walked; }));
    EXPECT_EQ(walked, 0);
    TestLock::elsewhere = false;

    std::vector<wlf_file *> committed;
    EXPECT_TRUE(this->reg->try_for_each([&](typename TestFixture::Entry *e) {
        committed.push_back(this->reg->remove(e));  // the commit at exit removes as it goes
    }));
    ASSERT_EQ(committed.size(), 3u);
    EXPECT_EQ(committed[0], file(1));
    EXPECT_EQ(committed[1], file(2));
    EXPECT_EQ(committed[2], file(3));
    EXPECT_EQ(this->reg->count(), 0u);
    EXPECT_EQ(this->reg->by_handle(this->h(6)), nullptr);  // removal took its handles along
    walked = 0;
    this->reg->for_each([&](typename TestFixture::Entry *) { ++walked; });
    EXPECT_EQ(walked, 0);
}

TYPED_TEST(PendingRegistryTest, UnlistForgetsEveryHandleOfOneEntry) {
    auto *a = this->reg->add(file(1), this->h(3), "/t/a", kOpener);
    auto *b = this->reg->add(file(2), this->h(4), "/t/b", kOpener);
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(this->reg->add_handle(a, this->h(6)));
    this->reg->unlist(a);
    EXPECT_EQ(a->refs, 0);
    EXPECT_EQ(this->reg->by_handle(this->h(3)), nullptr);
    EXPECT_EQ(this->reg->by_handle(this->h(6)), nullptr);
    EXPECT_EQ(this->reg->by_handle(this->h(4)), b);
    EXPECT_EQ(this->reg->drop_handle(this->h(3), kOpener), nullptr);
    EXPECT_EQ(this->reg->count(), 2u);  // still pending until removed
}

TYPED_TEST(PendingRegistryTest, ForkedChildForgetsTheParentsEntries) {
    auto *e = this->reg->add(file(1), this->h(3), "/t/a", kOpener);
    ASSERT_NE(e, nullptr);
    // A child forgets the parent's key without freeing it; in this one
    // process the test frees it (LeakSanitizer in build-asan).
    char *key = e->key;
    this->reg->forget_all();
    EXPECT_EQ(this->reg->count(), 0u);
    EXPECT_EQ(this->reg->by_key("/t/a"), nullptr);
    int walked = 0;
    this->reg->for_each([&](typename TestFixture::Entry *) { ++walked; });
    EXPECT_EQ(walked, 0);
    free(key);
}

// ---- what differs by handle map ----

using ListRegistry = ListConfig::Registry;

TEST(PendingRegistryList, HandlesOfOneEntryAreBounded) {
    auto reg = std::make_unique<ListRegistry>();
    auto *e = reg->add(file(1), 1, "/t/a", kOpener);
    ASSERT_NE(e, nullptr);
    for (int i = 2; i <= static_cast<int>(kPerEntry); ++i) ASSERT_TRUE(reg->add_handle(e, i));
    EXPECT_FALSE(reg->add_handle(e, 99));
    EXPECT_EQ(e->refs, static_cast<int>(kPerEntry));
    EXPECT_EQ(reg->by_handle(99), nullptr);
    for (int i = 1; i < static_cast<int>(kPerEntry); ++i) EXPECT_EQ(reg->drop_handle(i, kOpener), nullptr);
    EXPECT_EQ(reg->drop_handle(static_cast<int>(kPerEntry), kOpener), e);
    reg->remove(e);
}

using IndexedRegistry = IndexedConfig::Registry;

class PendingRegistryIndexed : public ::testing::Test {
protected:
    void SetUp() override {
        memset(TestIndex::words, 0, sizeof TestIndex::words);
        TestIndex::high = 0;
    }
};

TEST_F(PendingRegistryIndexed, TheIndexWordIsTheEntry) {
    auto reg = std::make_unique<IndexedRegistry>();
    auto *e = reg->add(file(1), 3, "/t/a", kOpener);
    ASSERT_NE(e, nullptr);
    // What a fast path loads: one word, the entry's address.
    EXPECT_EQ(TestIndex::words[3], reinterpret_cast<uintptr_t>(e));
    EXPECT_EQ(IndexedRegistry::entry_of(TestIndex::words[3]), e);
    ASSERT_TRUE(reg->add_handle(e, 9));
    EXPECT_EQ(TestIndex::words[9], reinterpret_cast<uintptr_t>(e));
    EXPECT_EQ(reg->drop_handle(9, kOpener), nullptr);
    EXPECT_EQ(TestIndex::words[9], 0u);
    EXPECT_EQ(reg->drop_handle(3, kOpener), e);
    EXPECT_EQ(TestIndex::words[3], 0u);
    reg->remove(e);
}

TEST_F(PendingRegistryIndexed, UnlistableHandleAddsNothing) {
    auto reg = std::make_unique<IndexedRegistry>();
    EXPECT_EQ(reg->add(file(1), kIndexSize, "/t/a", kOpener), nullptr);
    EXPECT_EQ(reg->add(file(1), -1, "/t/a", kOpener), nullptr);
    EXPECT_EQ(reg->count(), 0u);
    EXPECT_EQ(reg->by_key("/t/a"), nullptr);
    auto *e = reg->add(file(1), 3, "/t/a", kOpener);
    ASSERT_NE(e, nullptr);
    EXPECT_FALSE(reg->add_handle(e, kIndexSize));
    EXPECT_EQ(e->refs, 1);
    EXPECT_EQ(reg->drop_handle(3, kOpener), e);
    reg->remove(e);
}

TEST_F(PendingRegistryIndexed, MarksAreTheOwnersNotEntries) {
    auto reg = std::make_unique<IndexedRegistry>();
    TestIndex::store(5, kMark);
    EXPECT_EQ(IndexedRegistry::entry_of(kMark), nullptr);
    EXPECT_EQ(IndexedRegistry::entry_of(TestIndex::kMarks), nullptr);
    EXPECT_EQ(reg->by_handle(5), nullptr);
    EXPECT_EQ(reg->drop_handle(5, kOpener), nullptr);
    EXPECT_EQ(TestIndex::words[5], kMark);
    auto *e = reg->add(file(1), 3, "/t/a", kOpener);
    ASSERT_NE(e, nullptr);
    reg->unlist(e);
    EXPECT_EQ(TestIndex::words[5], kMark);  // unlisting one entry leaves the marks
    EXPECT_EQ(TestIndex::words[3], 0u);
    reg->remove(e);
}

}  // namespace
