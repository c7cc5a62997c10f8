#!/bin/bash
# The path behind a directory descriptor is cached for openat(dirfd, ...)
# (shim/linux/preload/dirfd_cache.hpp); a stale entry must never redirect a write.
# helpers/dirfd_writes makes one number name a new directory by close and
# reopen, dup2, dup3, close_range, a raw close no interposer sees, closedir
# (libc's own close), and by renaming the directory behind it; every write
# must land in the directory the number names at that moment, replaced by
# the shim, with name rules and with absolute-path rules.
# Usage: dirfd_cache_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR
# Exit: 0 pass, 1 fail, 77 skip.
usage="dirfd_cache_test.sh ATOMICALLY PRELOAD_OBJECT HELPER_DIR"
. "$(dirname "$0")/lib.sh"
helpers=$(realpath "${3:?$usage}") || exit 1

checked=0
for mode in "${modes[@]}"; do
    for rules in name path; do
        name="$mode, $rules rule"
        newdir "$mode-$rules"
        glob='*.dat'
        [ $rules = path ] && glob="$d/**"
        clear_log
        out=$(shim "$mode" "$glob" "$helpers/dirfd_writes" "$d" 2>err)
        status=$?
        if [ $status -eq 3 ]; then
            skip "$name: $out (the kernel gave another number; nothing to compare)"
            continue
        fi
        expect_status "$name" 0 $status
        [ -s err ] && fail "$name: stderr: $(cat err)"
        expect_content "$name: first write" a/f.dat $'a\n'
        expect_content "$name: close + reopen" b/f.dat $'close\n'
        expect_content "$name: dup2 over the number" c/f.dat $'dup2\n'
        expect_content "$name: dup3 over the number" d/f.dat $'dup3\n'
        expect_content "$name: close_range + reopen" e/f.dat $'close_range\n'
        expect_content "$name: raw close + reopen" f/f.dat $'raw\n'
        expect_content "$name: closedir + reopen" g/f.dat $'closedir\n'
        expect_content "$name: directory renamed under the descriptor" h2/f.dat $'rename\n'
        [ -e h/f.dat ] && fail "$name: the write went to the new directory at the old path: $(cat h/f.dat)"
        for f in a b c d e f g h h2; do expect_committed "$name" "$d/$f/f.dat"; done
        expect_entries "$name" . a b c d e f g h h2 err
        for f in a b c d e f g h2; do expect_entries "$name: $f" $f f.dat; done
        expect_entries "$name: new h" h
        checked=$((checked + 1))
    done
done
[ $checked -gt 0 ] || { echo "SKIP: no case could be checked"; exit 77; }
finish
