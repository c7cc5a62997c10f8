// Open modes of an atomic replacement (docs/design.md, "One replacement"): what
// each of w, a, r+, w+, a+, x reads and leaves, observed on the file system.
#include "replace_support.hpp"

TEST(AtomicWriteModes, WriteReplacesWholeContent) {
    TempDir dir;
    for (const char *mode : {"w", "wb"}) {
        write_file(dir / "f", "old content that is longer");
        auto f = wl::atomic_write(dir / "f", mode);
        f.write("new");
        EXPECT_EQ(f.commit(), wl::CommitKind::rename) << mode;
        EXPECT_EQ(read_file(dir / "f"), "new") << mode;
        EXPECT_EQ(list_names(dir.path()), Names{"f"}) << mode;
    }
}

TEST(AtomicWriteModes, AppendAddsToOldContent) {
    TempDir dir;
    for (const char *mode : {"a", "ab"}) {
        write_file(dir / "f", "old\n");
        auto f = wl::atomic_write(dir / "f", mode);
        f.write("one\n");
        f.seek(0);  // O_APPEND: the position does not matter for writes
        f.write("two\n");
        EXPECT_EQ(f.tell(), 12) << mode;
        f.commit();
        EXPECT_EQ(read_file(dir / "f"), "old\none\ntwo\n") << mode;
        EXPECT_EQ(list_names(dir.path()), Names{"f"}) << mode;
    }
}

TEST(AtomicWriteModes, AppendCreatesMissingFile) {
    TempDir dir;
    auto f = wl::atomic_write(dir / "f", "a");
    f.write("first");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "first");
}

TEST(AtomicWriteModes, ReadPlusReadsOldContentAndOverwritesFromStart) {
    TempDir dir;
    write_file(dir / "f", "0123456789");
    auto f = wl::atomic_write(dir / "f", "r+");
    EXPECT_EQ(f.tell(), 0);
    EXPECT_EQ(f.read_all(), "0123456789");
    f.seek(0);
    f.write("AB");
    EXPECT_EQ(f.tell(), 2);
    EXPECT_EQ(f.read(3), "234");
    f.seek(-2, SEEK_END);
    f.write("YZ");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "AB234567YZ");
}

TEST(AtomicWriteModes, ReadPlusWithoutSeekWritesAtPositionZero) {
    TempDir dir;
    write_file(dir / "f", "abcdef");
    auto f = wl::atomic_write(dir / "f", "rb+");
    f.write("XY");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "XYcdef");
}

TEST(AtomicWriteModes, ReadPlusOnMissingFileIsEnoent) {
    TempDir dir;
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write(dir / "missing", "r+"); }), ENOENT);
    EXPECT_EQ(list_names(dir.path()), Names{});
}

TEST(AtomicWriteModes, WritePlusStartsEmptyAndReadsBack) {
    TempDir dir;
    write_file(dir / "f", "old");
    auto f = wl::atomic_write(dir / "f", "w+");
    EXPECT_EQ(f.read_all(), "");
    f.write("hello world");
    f.seek(6);
    EXPECT_EQ(f.read_all(), "world");
    f.seek(0);
    f.write("J");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "Jello world");
}

TEST(AtomicWriteModes, AppendPlusReadsOldAndAppends) {
    TempDir dir;
    write_file(dir / "f", "old;");
    auto f = wl::atomic_write(dir / "f", "a+");
    f.write("new;");
    f.seek(0);
    EXPECT_EQ(f.read_all(), "old;new;");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "old;new;");
}

TEST(AtomicWriteModes, ExclusiveCreatesMissingFile) {
    TempDir dir;
    auto f = wl::atomic_write(dir / "f", "x");
    f.write("created");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "created");
}

TEST(AtomicWriteModes, ExclusiveOnExistingFileIsEexist) {
    TempDir dir;
    write_file(dir / "f", "keep");
    EXPECT_EQ(code_of<wl::WriteFailed>([&] { wl::atomic_write(dir / "f", "x"); }), EEXIST);
    EXPECT_EQ(read_file(dir / "f"), "keep");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteModes, InvalidModeThrowsInvalidArgument) {
    TempDir dir;
    write_file(dir / "f", "keep");
    for (const char *mode : {"r", "rw", "q", "", "wa"})
        EXPECT_THROW(wl::atomic_write(dir / "f", mode), std::invalid_argument) << mode;
    EXPECT_EQ(read_file(dir / "f"), "keep");
    EXPECT_EQ(list_names(dir.path()), Names{"f"});
}

TEST(AtomicWriteModes, StreamIsFlushedInOrderWithWritesAndTell) {
    TempDir dir;
    auto f = wl::atomic_write(dir / "f", "w+");
    f.stream() << "n=" << 42 << ';';
    EXPECT_EQ(f.tell(), 5);  // buffered bytes count
    f.write("raw;");
    f.stream() << "tail";
    f.seek(0);
    EXPECT_EQ(f.read_all(), "n=42;raw;tail");
    f.commit();
    EXPECT_EQ(read_file(dir / "f"), "n=42;raw;tail");
}
