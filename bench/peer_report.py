"""Markdown sections e. to i. of tools/bench.sh from its peers.tsv, and the
replace-latency plot (gnuplot, when installed).

  peer_report.py PEERS_TSV NOTES_TXT OUTDIR ROUNDS   (Markdown on stdout)
"""
import collections
import os
import shutil
import statistics
import subprocess
import sys

tsv, notes_path, outdir, rounds = sys.argv[1:5]
rows = [l.rstrip("\n").split("\t") for l in open(tsv) if l.strip()]
notes = [l.strip() for l in open(notes_path) if l.strip()]

# (kind, fs, size, dur, impl) -> list of per-round medians
runs = collections.defaultdict(list)
extra = {}
for r in rows:
    kind, fs, size, dur, impl, rnd = r[:6]
    vals = r[6:]
    runs[(kind, fs, size, dur, impl)].append(float(vals[0]))
    extra[(kind, fs, size, dur, impl)] = vals


def med(kind, fs, size, dur, impl):
    v = runs.get((kind, fs, str(size), dur, impl))
    return statistics.median(v) if v else None


def fmt(ns):
    if ns is None:
        return "—"
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "—"


SIZES = [(4096, "4 KiB"), (1048576, "1 MiB"), (67108864, "64 MiB")]
out = []
w = out.append

w("")
w("#### e. Atomic replace: core vs floor vs peers")
w("")
w(f"One process per implementation, timing one replacement at a time (median per operation; "
  f"the table shows the median of {rounds} rounds, implementations in rotating order). Target file exists "
  "(replaced over and over). **C floor**: temp O_CREAT|O_EXCL, write, [fsync], rename, [fsync dir], no lock. "
  "**core**: `atomic_write_content_with_lock` (flock on target.lock, temp, write, [fsync], rename, "
  "[fsync dir], unlink lock). **GLib**: `g_file_set_contents_full`, full = CONSISTENT|DURABLE, "
  "none = CONSISTENT only (GLib still fsyncs the temp when the old file is non-empty, so its 'none' is not "
  "fsync-free). **Qt**: `QSaveFile` open+write+commit (always syncs the temp; no switch), full column only. "
  "**Python** columns run in one `/usr/bin/python3` loop: *py floor* is the same floor in "
  "os.open/os.write/os.rename (the interpreter baseline), *core via ctypes* calls our C `wlf_write_content`, "
  "*atomicwrites* is `atomicwrites.atomic_write(overwrite=True)` (always fsyncs file and directory: full only), "
  "*filelock+aw* takes `filelock.FileLock(target.lock)` then does the same. No peer takes a lock except "
  "core and filelock+aw.")
w("")
w("| fs | size | fsync | C floor | core | core/floor | GLib | Qt QSaveFile | py floor | core via ctypes | ctypes/py floor | atomicwrites | filelock+aw |")
w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for fs in ("tmpfs", "disk"):
    for size, sname in SIZES:
        for dur in ("full", "none"):
            g = lambda impl: med("replace", fs, size, dur, impl)
            cf, co, pf, po = g("c-floor"), g("c-ours"), g("py-floor"), g("py-ours")
            if cf is None and co is None:
                continue
            w(f"| {fs} | {sname} | {dur} | {fmt(cf)} | {fmt(co)} | {ratio(co, cf)} | {fmt(g('glib'))} | "
              f"{fmt(g('qt'))} | {fmt(pf)} | {fmt(po)} | {ratio(po, pf)} | {fmt(g('py-atomicwrites'))} | "
              f"{fmt(g('py-filelock+atomicwrites'))} |")
cf, pf = med("replace", "tmpfs", 4096, "none", "c-floor"), med("replace", "tmpfs", 4096, "none", "py-floor")
if cf and pf:
    w("")
    w(f"Interpreter overhead: the same 4 KiB floor costs {fmt(pf)} in Python vs {fmt(cf)} in C on tmpfs "
      f"({pf / cf:.2f}x: the syscalls dominate, the interpreter adds little per os.* call here); still, compare "
      f"Python peers with *py floor* and *core via ctypes* rather than with the C columns.")

if any(k[4].startswith("py-binding") for k in runs):
    w("")
    w("**Python binding** (`import wrap_lockfile`, the seed's API on the core; same loop as the Python columns "
      "above). *binding no lock*: `with atomic_write_no_lock(t, 'wb') as f: f.write(data)`, beside "
      "*atomicwrites* (neither locks). *binding*: `with atomic_write(t, 'wb')` (flock on t.lock, replace, "
      "unlink the lock file), beside *filelock+aw*. *content*: `atomic_write_content_with_lock(t, data)`. "
      "Ratios below 1 mean the binding is faster.")
    w("")
    w("| fs | size | fsync | py floor | binding no lock | atomicwrites | no lock/aw | binding | filelock+aw | binding/(filelock+aw) | content |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fs in ("tmpfs", "disk"):
        for size, sname in SIZES:
            for dur in ("full", "none"):
                g = lambda impl: med("replace", fs, size, dur, impl)
                bn, bl, aw, fa = g("py-binding-nolock"), g("py-binding"), g("py-atomicwrites"), g("py-filelock+atomicwrites")
                if bl is None:
                    continue
                w(f"| {fs} | {sname} | {dur} | {fmt(g('py-floor'))} | {fmt(bn)} | {fmt(aw)} | {ratio(bn, aw)} | "
                  f"{fmt(bl)} | {fmt(fa)} | {ratio(bl, fa)} | {fmt(g('py-binding-content'))} |")

w("")
w("#### f. Lock acquire + release, uncontended")
w("")
w("Same method as e. **C flock floor**: open+flock+unlink+unlock+close. **core**: `FileLock` ctor+dtor. "
  "**py floor**: the same floor with os/fcntl. **core via ctypes**: `wlf_lock_acquire`+`wlf_lock_release`. "
  "**filelock** (3.x, `UnixFileLock`: open O_TRUNC+flock, unlock+close, never unlinks) and **portalocker** "
  "(`Lock`: open+flock, unlock+close, never unlinks) acquire+release on one object. **flock(1)**: "
  "`flock FILE /bin/true` spawned per call (hyperfine median), with a bare `/bin/true` spawn for scale.")
w("")
w("| fs | C flock floor | core | core/floor | py floor | core via ctypes | ctypes/py floor | filelock | portalocker | flock(1) per call | /bin/true spawn |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for fs in ("tmpfs", "disk"):
    g = lambda impl: med("lock", fs, 0, "-", impl)
    cf, co, pf, po = g("c-flock"), g("c-ours"), g("py-floor"), g("py-ours")
    w(f"| {fs} | {fmt(cf)} | {fmt(co)} | {ratio(co, cf)} | {fmt(pf)} | {fmt(po)} | {ratio(po, pf)} | "
      f"{fmt(g('py-filelock'))} | {fmt(g('py-portalocker'))} | {fmt(g('flock1-flock1'))} | {fmt(g('flock1-true'))} |")

if any(k[0] == "lock" and k[4] == "py-binding" for k in runs):
    w("")
    w("**Python binding**: `with mylockfile(t): pass` (open, flock, verify, unlink, unlock, close) beside the "
      "Python peers, which never unlink their lock files.")
    w("")
    w("| fs | py floor | binding | binding/py floor | filelock | binding/filelock | portalocker | binding/portalocker |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for fs in ("tmpfs", "disk"):
        g = lambda impl: med("lock", fs, 0, "-", impl)
        b, pf, fl, pl = g("py-binding"), g("py-floor"), g("py-filelock"), g("py-portalocker")
        w(f"| {fs} | {fmt(pf)} | {fmt(b)} | {ratio(b, pf)} | {fmt(fl)} | {ratio(b, fl)} | {fmt(pl)} | {ratio(b, pl)} |")

w("")
w("#### g. Contended hand-off (FileLock, tmpfs)")
w("")
w("N processes loop acquire → release with no work inside. Hand-off latency = time from one process's "
  "release to the next acquisition by a *different* process (CLOCK_MONOTONIC via a shared mmap). "
  "wait: no timeout (blocking flock(2), the kernel wakes the waiter); poll: timeout set (LOCK_NB retries "
  "with randomized exponential backoff from 1 ms up to 25 ms). flock(2) is not fair: the releasing process "
  "usually re-acquires at once, so hand-offs are a small fraction of acquisitions.")
w("")
w("| processes | mode | hand-off p50 | hand-off p99 | hand-offs | acquisitions |")
w("|---:|---|---:|---:|---:|---:|")
for n in ("2", "4", "8"):
    for mode in ("wait", "poll"):
        v = extra.get(("contend", "tmpfs", n, mode, "ours"))
        if v:
            w(f"| {n} | {mode} | {fmt(float(v[0]))} | {fmt(float(v[1]))} | {v[2]} | {v[3]} |")
        else:
            w(f"| {n} | {mode} | — | — | — | — |")

w("")
w("#### h. Real workload: `tar -x` of 2,000 small files (100 B–8 KB) under `atomically --rule '<dir>/**'`")
w("")
w("hyperfine -N, median (tmpfs: 10 runs; disk: 3 runs, no warm-up, so noisy); the destination is emptied "
  "before each run (--prepare); hyperfine runs all of one command, then all of the other. *bare* is plain tar. "
  "The last column counts the shim's `committed` log lines in a separate sanity run.")
w("")
w("| destination | fsync | bare tar | atomically tar | ratio | files committed by the shim |")
w("|---|---|---:|---:|---:|---:|")
for fs, fsync in (("tmpfs", "none"), ("disk", "none"), ("disk", "full")):
    b, s = med("tar", fs, 2000, fsync, "bare"), med("tar", fs, 2000, fsync, "shim")
    c = extra.get(("tar", fs, "2000", fsync, "committed"), ["—"])[0]
    w(f"| {fs} | {fsync} | {fmt(b)} | {fmt(s)} | {ratio(s, b)} | {c} |")

w("")
w("#### i. Append one 64-byte line in 'a' mode vs file size (durability none)")
w("")
w("**core**: `atomic_write(path, \"a\")` + write + commit: the temp starts as a copy of the file "
  "(FICLONE reflink where the file system shares extents, else copy_file_range), so the cost grows "
  "with the file unless the copy is a reflink. **plain**: open O_APPEND + write + close (not atomic). "
  "xfs-reflink is a loop-mounted XFS image (mkfs.xfs -m reflink=1) on the build's disk, "
  "mounted inside `unshare -m`.")
w("")
fss = [f for f in ("tmpfs", "disk", "xfs-reflink") if any(k[0] == "append" and k[1] == f for k in runs)]
w("| size | " + " | ".join(f"{f} core | {f} plain" for f in fss) + " |")
w("|---|" + "---:|---:|" * len(fss))
for size, sname in ((1048576, "1 MiB"), (67108864, "64 MiB"), (1073741824, "1 GiB")):
    cells = []
    for f in fss:
        cells += [fmt(med("append", f, size, "none", "ours")), fmt(med("append", f, size, "none", "plain"))]
    w(f"| {sname} | " + " | ".join(cells) + " |")

# ---- plot ------------------------------------------------------------------
series = [("c-floor", "C floor"), ("c-ours", "core"), ("glib", "GLib"), ("qt", "Qt QSaveFile"),
          ("py-floor", "py floor"), ("py-ours", "core via ctypes"), ("py-atomicwrites", "atomicwrites"),
          ("py-filelock+atomicwrites", "filelock+atomicwrites")]
png = os.path.join(outdir, "replace_latency.png")
if shutil.which("gnuplot"):
    panels = []
    for fs in ("tmpfs", "disk"):
        for dur in ("full", "none"):
            dat = os.path.join(outdir, f"replace_{fs}_{dur}.dat")
            with open(dat, "w") as f:
                f.write("# size_bytes " + " ".join(s for s, _ in series) + " (ms)\n")
                for size, _ in SIZES:
                    vals = [med("replace", fs, size, dur, s) for s, _ in series]
                    f.write(f"{size} " + " ".join(f"{v / 1e6:.6f}" if v else "NaN" for v in vals) + "\n")
            panels.append((fs, dur, dat))
    gp = ["set terminal pngcairo size 1400,1000 font ',10'" if "pngcairo" in subprocess.run(
              ["gnuplot", "-e", "set terminal"], capture_output=True, text=True).stdout + subprocess.run(
              ["gnuplot", "-e", "set terminal"], capture_output=True, text=True).stderr
          else "set terminal png size 1400,1000",
          f"set output '{png}'",
          "set datafile missing 'NaN'",
          "set logscale xy", "set grid", "set key top left font ',8'",
          "set xlabel 'file size'", "set ylabel 'ms per replace (median)'",
          "set xtics ('4 KiB' 4096, '1 MiB' 1048576, '64 MiB' 67108864)",
          "set xrange [2048:134217728]",
          "set multiplot layout 2,2 title 'wrap\\_lockfile: atomic replace latency vs size (lower is better)'"]
    for fs, dur, dat in panels:
        gp.append(f"set title '{fs}, fsync {dur}'")
        plots = []
        for i, (s, label) in enumerate(series):
            if any(med("replace", fs, size, dur, s) for size, _ in SIZES):
                plots.append(f"'{dat}' using 1:{i + 2} with linespoints lt {i + 1} lw 2 title '{label}'")
        gp.append("plot " + ", ".join(plots) if plots else "unset multiplot")
    gp.append("unset multiplot")
    r = subprocess.run(["gnuplot"], input="\n".join(gp) + "\n", capture_output=True, text=True)
    if r.returncode == 0 and os.path.exists(png):
        w("")
        w("Plot: `replace_latency.png` (replace latency vs size, log-log, one panel per file system and fsync "
          "mode; data in `replace_<fs>_<fsync>.dat`).")
    else:
        notes.append("gnuplot failed: " + r.stderr.strip()[:300])
else:
    notes.append("gnuplot not installed: no replace_latency.png")

if notes:
    w("")
    w("Notes from this run:")
    w("")
    for n in notes:
        w(f"- {n}")
print("\n".join(out))
