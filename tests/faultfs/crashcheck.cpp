// Crash-state checker over a faultfs log (fault suite).
//
//   faultfs_crashcheck LOG --target DIR/NAME [--target DIR/NAME]... --new CONTENT
//                      --mode OCTAL (--old CONTENT | --old-absent) [--max-states N]
//                      [--model posix|ext4|harsh] [--allow-leftover GLOB]...
//
// --allow-leftover: a name the program's own temps have (sed -i's "sed*"),
// accepted in a target's directory like the library's temps.
// Several targets (one program replacing many files, durability batch) are
// checked each on its own, with the same old and new content; the leftover
// check of a directory allows every target in it.
// Replays the log under a strict POSIX durability model: a file's data and
// mode become durable at a successful fsync of that file (fdatasync: data
// only), a directory's entry changes at a successful fsync of that directory;
// each rename is atomic, but nothing orders unsynced changes, so a crash may
// keep any subset of them. Before the "mark begin" line everything counts as
// durable (the test synced). For the state after every log line from there
// on, every subset of the target directory's unsynced entry changes and of
// the target inode's unsynced data/mode changes is a possible crash state
// (sampled, deterministically, above --max-states per prefix). Each must
// hold at the target exactly the old or the new content (only the new from
// "mark committed" on) with the given mode, and nothing in the directory but
// the target, its lock file and recognisable temps (".NAME.*~~").
//
// A dropped sync (faultfs "drop": fault=dropped) is no sync, and the
// changes it should have made durable are lost for good: no later fsync
// makes them durable, though a crash may still keep any subset of them.
// A lying fsync cannot be defended against by any user-space program; the
// check reports what it costs.
//
// Models (--model):
//   posix  the strict model above (default).
//   ext4   posix, plus what ext4 (data=ordered, the default auto_da_alloc)
//          adds: (1) a rename within a directory onto an existing name is
//          ordered after the renamed file's earlier data and mode changes
//          (auto_da_alloc allocates and flushes them, and the journal
//          commits the rename only with them); they are taken as durable
//          from the rename on, which is the same for the target, whose
//          name reaches that file only through the rename; (2) the journal
//          commits metadata in order, so a crash keeps a prefix of the
//          directory's unsynced entry changes, not any subset. Fewer states.
//   harsh  posix, minus two guarantees that hardware or simpler file
//          systems do not give: (1) a rename is two changes, the new name
//          and the removal of the old one, each surviving on its own (as on
//          ext2 without a journal: both names can survive); (2) writes tear:
//          each logged write is two changes (its halves), each surviving on
//          its own (a disk without barriers reorders sector writes). More
//          states; a successful fsync still makes everything before it
//          durable.
// Exit: 0 no violation, 1 violations (the first few printed), 2 bad input.
#include <fcntl.h>
#include <fnmatch.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct InodeOp {
    enum Kind { Write, Truncate, Chmod } kind;
    uint64_t off = 0;  // write offset, or truncate size
    std::string bytes;
    unsigned mode = 0;
    bool lost = false;  // a dropped fsync covered it: no later sync helps
};

// One file's content as a crash could leave it.
struct Inode {
    std::string data;
    unsigned mode = 0;
    std::vector<InodeOp> pending;  // not yet durable, in order

    void apply(const InodeOp &op) {
        switch (op.kind) {
        case InodeOp::Write:
            if (data.size() < op.off + op.bytes.size()) data.resize(op.off + op.bytes.size(), '\0');
            data.replace(op.off, op.bytes.size(), op.bytes);
            break;
        case InodeOp::Truncate:
            data.resize(op.off, '\0');
            break;
        case InodeOp::Chmod:
            mode = op.mode;
            break;
        }
    }
};

struct DirOp {
    enum Kind { Add, Remove, Rename } kind;
    std::string name;
    int inode = -1;    // Add, Rename: the object the name now refers to
    std::string from;  // Rename within one directory: one atomic change
    bool lost = false;  // a dropped fsyncdir covered it
};

// One directory: entries map names to inode objects (not raw inode numbers,
// which the backing file system may reuse).
struct Dir {
    std::map<std::string, int> durable;
    std::vector<DirOp> pending;

    static void apply(std::map<std::string, int> &entries, const DirOp &op) {
        switch (op.kind) {
        case DirOp::Add:
            entries[op.name] = op.inode;
            break;
        case DirOp::Remove:
            entries.erase(op.name);
            break;
        case DirOp::Rename:
            entries.erase(op.from);
            entries[op.name] = op.inode;
            break;
        }
    }
};

struct Model {
    std::vector<Inode> inodes;          // durable data + pending ops per object
    std::map<uint64_t, int> by_ino;     // backing inode number -> current object
    std::map<std::string, Dir> dirs;    // by path relative to the mount
    std::set<int> unknown_data;         // objects with writes the log did not carry

    int object(uint64_t ino) {
        auto it = by_ino.find(ino);
        if (it != by_ino.end()) return it->second;
        return fresh(ino, 0);
    }
    int fresh(uint64_t ino, unsigned mode) {
        inodes.push_back(Inode{"", mode, {}});
        by_ino[ino] = static_cast<int>(inodes.size()) - 1;
        return by_ino[ino];
    }
    void sync_all() {
        for (Inode &i : inodes) {
            for (const InodeOp &op : i.pending) i.apply(op);
            i.pending.clear();
        }
        for (auto &[path, d] : dirs) {
            for (const DirOp &op : d.pending) Dir::apply(d.durable, op);
            d.pending.clear();
        }
    }
    // A sync: the pending changes become durable, except those a dropped
    // sync lost (they stay pending for good). datasync keeps mode changes.
    static void sync_inode(Inode &i, bool datasync) {
        std::vector<InodeOp> keep;
        for (const InodeOp &p : i.pending) {
            if (p.lost || (datasync && p.kind == InodeOp::Chmod))
                keep.push_back(p);
            else
                i.apply(p);
        }
        i.pending = keep;
    }
    static void sync_dir(Dir &d) {
        std::vector<DirOp> keep;
        for (const DirOp &p : d.pending) {
            if (p.lost)
                keep.push_back(p);
            else
                Dir::apply(d.durable, p);
        }
        d.pending = keep;
    }
    // The directory as a running program sees it.
    std::map<std::string, int> current(const std::string &dir) {
        Dir &d = dirs[dir];
        std::map<std::string, int> e = d.durable;
        for (const DirOp &p : d.pending) Dir::apply(e, p);
        return e;
    }
};

enum class Crash { Posix, Ext4, Harsh };

struct Line {
    unsigned long seq = 0;
    std::string op;
    std::map<std::string, std::string> f;

    const std::string &get(const std::string &k) const {
        static const std::string empty;
        auto it = f.find(k);
        return it == f.end() ? empty : it->second;
    }
    long long num(const std::string &k) const { return strtoll(get(k).c_str(), nullptr, 0); }
    // Whether the operation changed the backing file system: it succeeded,
    // or a fault was reported after it was done.
    // A dropped sync and an operation skipped by a kill were not done.
    bool performed() const {
        const std::string &f = get("fault");
        if (f == "dropped" || f == "killed") return false;
        return num("res") >= 0 || f == "after" || f == "killed-after";
    }
};

std::string decode_percent(const std::string &s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string decode_hex(const std::string &s) {
    std::string out;
    for (size_t i = 0; i + 1 < s.size(); i += 2) out += static_cast<char>(std::stoi(s.substr(i, 2), nullptr, 16));
    return out;
}

std::optional<Line> parse(const std::string &text) {
    std::istringstream in(text);
    Line l;
    if (!(in >> l.seq >> l.op)) return std::nullopt;
    std::string word;
    while (in >> word) {
        size_t eq = word.find('=');
        if (eq == std::string::npos) return std::nullopt;
        l.f[word.substr(0, eq)] = word.substr(eq + 1);
    }
    for (const char *k : {"path", "path2", "label"})
        if (l.f.count(k)) l.f[k] = decode_percent(l.f[k]);
    return l;
}

void split(const std::string &path, std::string *dir, std::string *name) {
    size_t slash = path.rfind('/');
    *dir = slash == std::string::npos ? "." : path.substr(0, slash);
    *name = slash == std::string::npos ? path : path.substr(slash + 1);
}

struct Target {
    std::string dir, name;
};

struct Options {
    std::vector<Target> targets;
    std::string log, new_content;
    std::optional<std::string> old_content;
    unsigned mode = 0;
    std::vector<std::string> allowed;  // --allow-leftover
    size_t max_states = 4096;
    Crash model = Crash::Posix;
};

struct Checker {
    const Options &opt;
    size_t states = 0, violations = 0, sampled_prefixes = 0;

    void report(const std::string &where, const std::string &what) {
        if (++violations <= 8) std::cout << "VIOLATION at " << where << ": " << what << "\n";
    }

    // Every (or a sample of every) crash state of the model as it stands,
    // for each target.
    void crash_states(const Model &m, bool committed, const std::string &where) {
        for (const Target &t : opt.targets) crash_states(m, t, committed, opt.targets.size() > 1 ? where + ", " + t.dir + "/" + t.name : where);
    }

    void crash_states(const Model &m, const Target &target, bool committed, const std::string &where) {
        auto dit = m.dirs.find(target.dir);
        static const Dir no_dir;
        const Dir &d = dit == m.dirs.end() ? no_dir : dit->second;
        // The target inode depends on the directory subset, so enumerate the
        // directory subsets first, then the chosen inode's op subsets.
        size_t ndir = d.pending.size();
        // ext4: the journal keeps a prefix of the entry changes.
        std::vector<uint64_t> dir_masks = opt.model == Crash::Ext4 ? prefixes(ndir) : masks(ndir);
        for (uint64_t dm : dir_masks) {
            std::map<std::string, int> entries = d.durable;
            for (size_t i = 0; i < ndir; ++i)
                if (dm >> i & 1) Dir::apply(entries, d.pending[i]);
            check_leftovers(target.dir, entries, where);
            auto t = entries.find(target.name);
            if (t == entries.end()) {
                ++states;
                if (committed || opt.old_content)
                    report(where, "target missing" + std::string(committed ? " after the commit" : ""));
                continue;
            }
            const Inode &ino = m.inodes[t->second];
            if (m.unknown_data.count(t->second)) {
                ++states;
                report(where, "target's data was not logged (write too large for the log)");
                continue;
            }
            for (uint64_t im : masks(ino.pending.size())) {
                ++states;
                Inode c{ino.data, ino.mode, {}};
                for (size_t i = 0; i < ino.pending.size(); ++i)
                    if (im >> i & 1) c.apply(ino.pending[i]);
                std::ostringstream w;
                w << where << " (dir changes kept 0x" << std::hex << dm << " of " << std::dec << ndir
                  << ", file changes kept 0x" << std::hex << im << " of " << std::dec << ino.pending.size() << ")";
                bool is_new = c.data == opt.new_content;
                bool is_old = opt.old_content && c.data == *opt.old_content;
                if (committed && !is_new)
                    report(w.str(), "target holds '" + c.data + "' after the commit, expected the new content");
                else if (!is_new && !is_old)
                    report(w.str(), "target holds '" + c.data + "', neither old nor new");
                if ((c.mode & 07777) != opt.mode) {
                    char buf[64];
                    snprintf(buf, sizeof buf, "target mode 0%o, expected 0%o", c.mode & 07777, opt.mode);
                    report(w.str(), buf);
                }
            }
        }
    }

    void check_leftovers(const std::string &dir, const std::map<std::string, int> &entries, const std::string &where) {
        for (const auto &[name, obj] : entries) {
            bool known = false;
            for (const Target &t : opt.targets) {
                if (t.dir != dir) continue;
                std::string temp_glob = "." + t.name + ".*~~";
                known = known || name == t.name || name == t.name + ".lock" ||
                        fnmatch(temp_glob.c_str(), name.c_str(), FNM_PERIOD) == 0;
            }
            for (const std::string &g : opt.allowed) known = known || fnmatch(g.c_str(), name.c_str(), 0) == 0;
            if (!known) report(where, "unrecognisable leftover '" + name + "'");
        }
    }

    // The first k of n changes, k = 0..n.
    std::vector<uint64_t> prefixes(size_t n) {
        std::vector<uint64_t> out;
        for (size_t k = 0; k <= n && k < 64; ++k) out.push_back(k == 0 ? 0 : ~uint64_t{0} >> (64 - k));
        return out;
    }

    // All subsets of n changes, or max_states of them (always with none and all).
    std::vector<uint64_t> masks(size_t n) {
        std::vector<uint64_t> out;
        if (n < 63 && (uint64_t{1} << n) <= opt.max_states) {
            for (uint64_t m = 0; m < (uint64_t{1} << n); ++m) out.push_back(m);
            return out;
        }
        ++sampled_prefixes;
        std::mt19937_64 rng(n);
        uint64_t all = n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
        out.push_back(0);
        out.push_back(all);
        while (out.size() < opt.max_states) out.push_back(rng() & all);
        return out;
    }
};

// Applies one log line to the model; false when it cannot be modelled.
bool apply(Model &m, const Line &l, Crash model, std::string *why) {
    if (l.get("fault") == "dropped") {
        // Not synced, and what the sync should have made durable is lost.
        if (l.op == "fsync")
            for (InodeOp &p : m.inodes[m.object(static_cast<uint64_t>(l.num("ino")))].pending) p.lost = true;
        if (l.op == "fsyncdir")
            for (DirOp &p : m.dirs[l.get("path")].pending) p.lost = true;
        return true;
    }
    if (!l.performed()) return true;
    std::string dir, name, dir2, name2;
    split(l.get("path"), &dir, &name);
    uint64_t ino = static_cast<uint64_t>(l.num("ino"));
    const std::string &op = l.op;
    if (op == "create" || op == "mkdir" || op == "mknod" || op == "symlink") {
        int obj = m.fresh(ino, static_cast<unsigned>(l.num("mode")));
        m.dirs[dir].pending.push_back({DirOp::Add, name, obj, ""});
        if (op == "mkdir") m.dirs[l.get("path")];
    } else if (op == "open") {
        if (l.num("flags") & O_TRUNC) m.inodes[m.object(ino)].pending.push_back({InodeOp::Truncate, 0, "", 0});
    } else if (op == "write") {
        int obj = m.object(ino);
        long long res = l.num("res");
        if (!l.f.count("data")) {
            m.unknown_data.insert(obj);
            return true;
        }
        std::string bytes = decode_hex(l.get("data"));
        if (res >= 0 && static_cast<size_t>(res) < bytes.size()) bytes.resize(static_cast<size_t>(res));
        uint64_t off = static_cast<uint64_t>(l.num("off"));
        if (model == Crash::Harsh && bytes.size() >= 2) {
            // Torn: each half survives on its own.
            size_t half = bytes.size() / 2;
            m.inodes[obj].pending.push_back({InodeOp::Write, off, bytes.substr(0, half), 0});
            m.inodes[obj].pending.push_back({InodeOp::Write, off + half, bytes.substr(half), 0});
        } else {
            m.inodes[obj].pending.push_back({InodeOp::Write, off, bytes, 0});
        }
    } else if (op == "truncate") {
        m.inodes[m.object(ino)].pending.push_back({InodeOp::Truncate, static_cast<uint64_t>(l.num("size")), "", 0});
    } else if (op == "chmod") {
        m.inodes[m.object(ino)].pending.push_back({InodeOp::Chmod, 0, "", static_cast<unsigned>(l.num("mode"))});
    } else if (op == "fallocate") {
        if (l.num("flags") != 0) {
            *why = "fallocate with flags is not modelled";
            return false;
        }
    } else if (op == "fsync") {
        Model::sync_inode(m.inodes[m.object(ino)], l.num("datasync") != 0);
    } else if (op == "fsyncdir") {
        Model::sync_dir(m.dirs[l.get("path")]);
    } else if (op == "rename" || op == "link") {
        // RENAME_NOREPLACE that succeeded found the name free: a rename
        // like any other (an O_EXCL new file named from a named temp).
        if (l.num("flags") != 0 && !(op == "rename" && l.num("flags") == RENAME_NOREPLACE)) {
            *why = "rename with flags is not modelled";
            return false;
        }
        split(l.get("path2"), &dir2, &name2);
        int obj = m.object(ino);
        if (op == "link") {
            m.dirs[dir2].pending.push_back({DirOp::Add, name2, obj, ""});
        } else if (dir == dir2 && model == Crash::Harsh) {
            // Not atomic across a crash: the new name and the removal of the
            // old one are separate changes (the new name replaces an old
            // entry in place, so the destination is never absent).
            m.dirs[dir].pending.push_back({DirOp::Add, name2, obj, ""});
            m.dirs[dir].pending.push_back({DirOp::Remove, name, -1, ""});
        } else if (dir == dir2) {
            // ext4's auto_da_alloc: onto an existing name, the renamed file's
            // earlier changes are committed with (before) the rename.
            if (model == Crash::Ext4 && m.current(dir).count(name2)) Model::sync_inode(m.inodes[obj], false);
            m.dirs[dir].pending.push_back({DirOp::Rename, name2, obj, name});
        } else {
            // Strict model: across directories the new name and the removal
            // of the old one are separate changes.
            m.dirs[dir].pending.push_back({DirOp::Remove, name, -1, ""});
            m.dirs[dir2].pending.push_back({DirOp::Add, name2, obj, ""});
        }
    } else if (op == "unlink" || op == "rmdir") {
        m.dirs[dir].pending.push_back({DirOp::Remove, name, -1, ""});
    }
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    Options opt;
    bool have_old = false, have_new = false, have_mode = false;
    auto usage = [] {
        std::cerr << "usage: faultfs_crashcheck LOG --target DIR/NAME [--target DIR/NAME]... --new CONTENT\n"
                     "                          --mode OCTAL (--old CONTENT | --old-absent) [--max-states N]\n"
                     "                          [--model posix|ext4|harsh] [--allow-leftover GLOB]...\n";
        return 2;
    };
    if (argc < 2) return usage();
    opt.log = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        bool has_value = i + 1 < argc;
        if (a == "--old-absent") {
            have_old = true;
        } else if (!has_value) {
            return usage();
        } else if (a == "--target") {
            Target t;
            split(argv[++i], &t.dir, &t.name);
            opt.targets.push_back(t);
        } else if (a == "--old") {
            opt.old_content = argv[++i];
            have_old = true;
        } else if (a == "--new") {
            opt.new_content = argv[++i];
            have_new = true;
        } else if (a == "--mode") {
            opt.mode = static_cast<unsigned>(strtoul(argv[++i], nullptr, 8));
            have_mode = true;
        } else if (a == "--model") {
            std::string v = argv[++i];
            if (v == "posix")
                opt.model = Crash::Posix;
            else if (v == "ext4")
                opt.model = Crash::Ext4;
            else if (v == "harsh")
                opt.model = Crash::Harsh;
            else
                return usage();
        } else if (a == "--allow-leftover") {
            opt.allowed.push_back(argv[++i]);
        } else if (a == "--max-states") {
            opt.max_states = std::max<size_t>(2, strtoul(argv[++i], nullptr, 10));
        } else {
            return usage();
        }
    }
    if (opt.targets.empty() || !have_old || !have_new || !have_mode) return usage();

    std::ifstream in(opt.log);
    if (!in) {
        std::cerr << "faultfs_crashcheck: cannot read " << opt.log << "\n";
        return 2;
    }
    Model m;
    Checker c{opt};
    bool begun = false, committed = false;
    size_t prefixes = 0;
    std::string text;
    while (std::getline(in, text)) {
        std::optional<Line> l = parse(text);
        if (!l) {
            std::cerr << "faultfs_crashcheck: bad log line: " << text << "\n";
            return 2;
        }
        if (l->op == "mark") {
            if (l->get("label") == "begin") {
                m.sync_all();
                begun = true;
            } else if (l->get("label") == "committed") {
                committed = true;
            }
        } else {
            std::string why;
            if (!apply(m, *l, opt.model, &why)) {
                std::cerr << "faultfs_crashcheck: line " << l->seq << ": " << why << "\n";
                return 2;
            }
        }
        if (!begun) continue;
        ++prefixes;
        c.crash_states(m, committed, "after line " + std::to_string(l->seq) + " (" + l->op + ")");
    }
    if (!begun || !committed) {
        std::cerr << "faultfs_crashcheck: the log lacks the 'begin' or 'committed' mark\n";
        return 2;
    }
    static const char *const model_names[] = {"posix", "ext4", "harsh"};
    std::cout << "model=" << model_names[static_cast<int>(opt.model)] << " prefixes=" << prefixes << " crash_states=" << c.states << " sampled_prefixes=" << c.sampled_prefixes
              << " violations=" << c.violations << "\n";
    return c.violations ? 1 : 0;
}
