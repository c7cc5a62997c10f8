# The corpus cases, sourced by corpus_test.sh. One case:
#
#   c NAME PROGRAMS RULES SETUP COMMAND [KEY=VALUE]...
#
# NAME      unique, printed on the case's line;
# PROGRAMS  commands the case needs (','-separated); a missing one skips it;
# RULES     ';'-separated globs relative to the case directory, given to
#           `atomically --rule` as "$d/GLOB" ('**' spans directories);
# SETUP     shell code (eval'd in the fresh case directory, with the helpers
#           below) that makes the files the command starts from;
# COMMAND   shell code run by `bash -c` in that directory, stdin /dev/null.
# Keys:
#   volatile=GLOBS  files whose content differs between any two plain runs
#                   (timestamps, inode numbers inside); their other
#                   attributes are still compared;
#   lock=GLOBS      passed as --lock-only: written in place under the lock;
#   inplace=GLOBS   matched files a documented policy writes in place (same
#                   inode, readers see the new content); needs limit=;
#   refuse=STATUS   the launcher refuses the command (run directly, not
#                   through bash): exit STATUS, one line on stderr, the tree
#                   as set up; needs limit=;
#   check=SHELL     more assertions, run in the shim run's final directory
#                   ($P is the plain run's final directory, $R/shim.rc,
#                   $R/shim.out, $R/shim.err the shim run's results; see the
#                   assertion helpers below);
#   compare=no      the documented limit makes the outcome differ from the
#                   plain run's: only check= and the shim run's own checks
#                   (leftovers, unmatched inodes, readers) apply; needs limit=;
#   limit=TEXT      the documented limit the case asserts (printed);
#   root=WHY        the setup needs root;
#   renames=1       the program writes matched files only by renaming its own
#                   temporary onto them (serialized by the shim, not logged);
#                   without it a case fails unless the shim logged a
#                   replacement in the case directory: proof it was active.
# Every file is set to one fixed mtime after SETUP, so archives of it are
# the same in both runs. Runs have a fixed HOME, TMPDIR, PATH, TZ and git
# identity (corpus_test.sh, run_env).

# ---- setup helpers ----
# fixtimes PATH...: the fixed mtime, for files a setup archives or diffs
# (the harness sets it on everything only after the setup).
fixtimes() { find "$@" -exec touch -h -d "@$epoch" {} +; }
abc() {
    printf 'alpha\nbeta\ngamma\n' >"${1:-f}"
    fixtimes "${1:-f}"
}
# A small tree: nested directories, modes, an empty file, a symlink.
mktree() {
    mkdir -p "$1/a/b" "$1/c"
    printf 'one\n' >"$1/one"
    seq 200 >"$1/a/two"
    printf 'three\n' >"$1/a/b/three"
    : >"$1/c/empty"
    ln -s one "$1/link"
    chmod 0600 "$1/a/two"
    chmod 0751 "$1/a/b/three"
    fixtimes "$1"
}
hello_c() { printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >hello.c; }
objs() {
    printf 'int a(void) { return 1; }\n' >a.c
    printf 'int b(void) { return 2; }\n' >b.c
    gcc -c a.c b.c
}
abc_diff() {
    abc f
    printf 'alpha\nBETA\ngamma\ndelta\n' >f.new
    diff -u --label f --label f f f.new >f.diff || true
    rm f.new
}
makefile() {
    printf 'all: out.txt lib.a\nout.txt: in.txt\n\tsort -r in.txt > $@\n\techo built >> $@\n' >Makefile
    printf 'lib.a: a.o b.o\n\tar rcs $@ a.o b.o\n%%.o: %%.c\n\tgcc -c -o $@ $<\n' >>Makefile
    abc in.txt
    printf 'int a(void) { return 1; }\n' >a.c
    printf 'int b(void) { return 2; }\n' >b.c
}
# logconf MODE...: a logrotate configuration for app.log with MODE lines.
logconf() {
    printf '%s\n' "$PWD/app.log {" "rotate 2" "$@" "}" >logrotate.conf
    printf 'line 1\nline 2\n' >app.log
    printf 'older\n' >app.log.1
}

# ---- assertion helpers for check= (each says what it saw when it fails) ----
abc_text=$'alpha\nbeta\ngamma\n'
one_abc=$'one\n'$abc_text
shim_status() {
    [ "$(cat "$R/shim.rc")" = "$1" ] || { echo "exit status $(cat "$R/shim.rc"), want $1"; return 1; }
}
shim_stderr_has() {
    grep -qF -- "$1" "$R/shim.err" || { echo "stderr $(tr '\n' ' ' <"$R/shim.err"), want '$1'"; return 1; }
}
holds() {
    contents "$1"
    [ "$REPLY" = "$2" ] || { echo "$1 holds $(printf %q "$REPLY"), want $(printf %q "$2")"; return 1; }
}

# ---- in-place editors ----
c sed-i sed f 'abc' 'sed -i s/beta/BETA/ f' renames=1
c sed-i-backup sed 'f;f.bak' 'abc' 'sed -i.bak s/beta/BETA/ f' renames=1
c sed-i-owner sed f 'abc; chown 1234:5678 f; chmod 0640 f' 'sed -i s/beta/BETA/ f' root=chown renames=1
c perl-i perl f 'abc' 'perl -pi -e "s/beta/BETA/" f' renames=1
c perl-i-backup perl 'f;f.orig' 'abc' 'perl -pi.orig -e "s/beta/BETA/" f' renames=1
c gawk-inplace gawk f 'abc' 'gawk -i inplace "{ print toupper(\$0) }" f' renames=1
c ed ed f 'abc' 'printf ",s/beta/BETA/\nw\nq\n" | ed -s f'
c ed-new ed g '' 'printf "a\nnew\n.\nw g\nq\n" | ed -s'
c ex vim,ex f 'abc' 'ex -s -u NONE -c "%s/beta/BETA/" -c wq f'
c vim-es vim f 'abc' 'vim -es -u NONE -c "%s/beta/BETA/" -c wq f'
c vim-defaults vim f 'abc' 'vim -N -es -u DEFAULTS -i NONE -c "%s/beta/BETA/" -c wq f'
c vim-backupcopy-yes vim f 'abc' 'vim -es -u NONE -c "set backupcopy=yes" -c "%s/beta/BETA/" -c wq f'
c vim-backupcopy-no vim f 'abc' 'vim -es -u NONE -c "set backupcopy=no" -c "%s/beta/BETA/" -c wq f'
c vim-new vim g '' 'vim -es -u NONE -c "put =\"new\"" -c wq g'
c sponge sponge f 'abc' 'sort -r f | sponge f' renames=1
c sponge-a sponge f 'abc' 'tr a-z A-Z <f | sponge -a f' renames=1
c crudini-set crudini f.ini 'printf "[s]\nk = old\n" >f.ini' 'crudini --set f.ini s k new && crudini --get f.ini s k'
c crudini-del crudini f.ini 'printf "[s]\nk = old\nj = 1\n" >f.ini' 'crudini --del f.ini s k && cat f.ini'
c xmlstarlet-ed-L xmlstarlet f.xml 'printf "<a><b>old</b></a>\n" >f.xml' 'xmlstarlet ed -L -u /a/b -v new f.xml'

# ---- coreutils ----
c cp-new cp g 'abc' 'cp f g'
c cp-over cp g 'abc; echo old >g' 'cp f g'
c cp-a-tree cp 'dst/**' 'mktree src' 'cp -a src dst'
c cp-a-over cp 'dst/**' 'mktree src; mktree dst; echo changed >dst/one' 'cp -a src/. dst/'
c mv-over mv g 'abc; echo old >g' 'mv f g' renames=1
c mv-into mv 'd/**' 'abc; mkdir d; echo old >d/f' 'mv f d/' renames=1
c install-mode install g 'abc; echo old >g' 'install -m 0640 f g'
c install-D install 'sub/**' 'abc' 'install -D -m 0600 f sub/dir/g'
c ln-sf ln link 'abc; ln -s nowhere link' 'ln -sf f link' renames=1
c ln-f ln g 'abc; echo old >g' 'ln -f f g' renames=1
c tee tee f 'abc; echo u >u' 'echo new | tee f u'
c tee-a tee f 'abc' 'echo more | tee -a f'
c sort-o sort f 'abc' 'sort -r -o f f'
c split split 'part.*' 'seq 100 >big; echo stale >part.aa' 'split -l 30 big part.'
c truncate-shrink truncate f 'abc' 'truncate -s 5 f'
c truncate-grow truncate f 'abc' 'truncate -s +10 f'
c truncate-new truncate g '' 'truncate -s 100 g'
c dd dd f 'abc' 'printf xyz | dd of=f status=none'
c dd-notrunc-seek dd f 'abc' 'printf xyz | dd of=f bs=1 seek=4 conv=notrunc status=none'
c dd-append dd f 'abc' 'printf xyz | dd of=f oflag=append conv=notrunc status=none'
c dd-self dd f 'abc' 'dd if=f of=f bs=1 skip=6 conv=notrunc status=none'
c dd-fsync dd f 'abc' 'dd if=/dev/zero of=f bs=4k count=4 conv=fsync status=none'
c cat-self-append cat f 'abc' 'cat f >>f' compare=no limit='an append or read-write open that writes nothing still replaces the file: same content, new inode and mtime (README, limits)' \
    check='cmp f "$P/f" && grep -q "input file is output file" "$R/shim.err" && [ "$(cat $R/shim.rc)" = 1 ]'
c uniq uniq g 'abc; echo old >g' 'uniq f g'
c shuf-o shuf f 'abc' 'shuf --random-source=f -o f f'
c csplit csplit 'part*' 'abc; echo stale >part00' 'csplit -s -f part f 2'
c touch-new touch g '' 'touch g'
c find-fprint find g 'abc; echo old >g' 'find . -name f -fprint g'
c iconv-o iconv g 'abc; echo old >g' 'iconv -f UTF-8 -t UTF-16LE -o g f'
c xxd-r xxd g 'abc; xxd f >f.hex; echo old >g' 'xxd -r f.hex g'
c mawk mawk g 'abc; echo old >g' 'mawk "{ print toupper(\$0) > \"g\" }" f'
c openssl-enc openssl g 'abc; echo old >g' 'openssl enc -aes-128-cbc -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 -in f -out g'
c append-nothing bash f 'abc' ': >>f' compare=no limit='an append or read-write open that writes nothing still replaces the file: same content, new inode and mtime (README, limits)' check='cmp f "$P/f"'

# ---- interpreters ----
c python3-write python3 f 'abc' 'python3 -c "open(\"f\", \"w\").write(\"new\\n\")"'
c python3-append-rplus python3 f 'abc' 'python3 -c "
open(\"f\", \"a\").write(\"delta\\n\")
with open(\"f\", \"r+\") as h: print(h.read(), end=\"\"); h.seek(0); h.write(\"A\")"'
c python3-replace python3 f 'abc' 'python3 -c "
import os
with open(\"f.tmp\", \"w\") as h: h.write(\"new\\n\")
os.replace(\"f.tmp\", \"f\")"' renames=1
c python3-read-own-write python3 f 'abc' 'python3 -c "
import os
h = open(\"f\", \"w\"); h.write(\"mine\\n\"); h.flush()
print(repr(open(\"f\").read()), os.stat(\"f\").st_size == os.fstat(h.fileno()).st_size,
      os.stat(\"f\").st_ino == os.fstat(h.fileno()).st_ino, os.stat(\"f\").st_nlink >= 1)"'
# chmod and utime by name while the file is held open for writing.
c python3-chmod-while-open python3 f 'abc' 'python3 -c "
import os
h = open(\"f\", \"w\"); os.chmod(\"f\", 0o600); os.utime(\"f\", (946684800, 946684800)); h.write(\"new\\n\"); h.close()"'
c python3-chmod-new-while-open python3 g '' 'python3 -c "
import os
h = open(\"g\", \"w\"); os.chmod(\"g\", 0o600); h.write(\"new\\n\"); h.close()"'
c perl-write perl f 'abc' 'perl -e "open(F, \">\", \"f\") or die; print F \"new\\n\"; close(F) or die"'
c perl-rw perl f 'abc' 'perl -e "open(F, \"+<\", \"f\") or die; seek(F, 2, 0); print F \"XX\"; close(F) or die"'
c ruby-write ruby f 'abc' 'ruby -e "File.write(\"f\", \"new\\n\"); File.open(\"f\", \"a\") { |h| h.puts \"more\" }"'
c ruby-i ruby f 'abc' 'ruby -i -pe "\$_.upcase!" f'
c tclsh-write tclsh 'f;g' 'abc' 'echo "set h [open g w]; puts \$h new; close \$h; set h [open f a]; puts \$h more; close \$h" | tclsh'
c lua-write lua5.4 'f;g' 'abc' 'lua5.4 -e "local h = io.open(\"g\", \"w\"); h:write(\"new\\n\"); h:close()
h = io.open(\"f\", \"a\"); h:write(\"more\\n\"); h:close()"'
c node-write-two node 'a.json;b.json' 'echo old >a.json' 'node -e "const fs = require(\"fs\");
fs.writeFileSync(\"a.json\", \"A\\n\"); fs.writeFileSync(\"b.json\", \"B\\n\")"'
c node-append node f 'abc' 'node -e "const fs = require(\"fs\");
for (const x of [\"1\", \"2\", \"3\"]) fs.appendFileSync(\"f\", x + \"\\n\")"'
c node-promises node 'f;g' 'abc' 'node -e "const fs = require(\"fs\");
fs.promises.writeFile(\"f\", \"new\\n\").then(() => fs.promises.writeFile(\"g\", \"g\\n\"))"'
c node-stream node f 'abc' 'node -e "const s = require(\"fs\").createWriteStream(\"f\");
s.write(\"one\\n\"); s.end(\"two\\n\")"'
c node-read-own-write node f 'abc' 'node -e "const fs = require(\"fs\");
fs.writeFileSync(\"f\", \"mine\\n\"); process.stdout.write(fs.readFileSync(\"f\"))"'

# ---- shells: >, >>, >|, <>, noclobber, exec 3> ----
for sh in bash dash zsh mksh; do
    c "$sh-redirect" "$sh" 'f;g' 'abc' "$sh -c 'echo new >f; echo more >>f; /bin/echo child >g; seq 2 >>g'"
    c "$sh-noclobber" "$sh" 'f;g' 'abc' "$sh -c 'set -C; echo no >f; echo status \$?; echo forced >|f; echo new >g'"
    c "$sh-rw" "$sh" f 'abc' "$sh -c 'echo XY 1<>f'"
    c "$sh-exec-stdout" "$sh" f 'abc' "$sh -c 'exec >f; echo hi; echo there'"
    c "$sh-exec3" "$sh" 'f;g' 'abc' "$sh -c 'exec 3>g; echo one >&3; cat f >&3; exec 3>&-; exec 4>>f; echo four >&4'"
done

# ---- archivers and compressors ----
c tar-c tar out.tar 'mktree d' 'tar -cf out.tar d && tar -tvf out.tar'
# The archive inside the archived directory: plainly tar skips it ("file is
# the archive"), new or not. The pending archive's lock file is archived too.
tar_self='diff <(tar -tf "$P/d/out.tar") <(tar -tf d/out.tar | grep -vx d/out.tar.lock) && tar -tf d/out.tar | grep -qx d/out.tar.lock'
tar_lock='a directory listing shows the lock file of a pending target: tar archives d/out.tar.lock (README, limits)'
# A new archive is not in the directory while pending: tar cannot say "file
# is the archive" for it, and does not archive it either.
c tar-c-self tar d/out.tar 'mktree d' 'tar -cf d/out.tar d' volatile=d/out.tar check="$tar_self" compare=no \
    limit='a new pending file has no name in its directory until the commit, and its lock file has one: tar archives d/out.tar.lock, not d/out.tar (README, limits)'
c tar-c-self-existing tar d/out.tar 'mktree d; tar -cf d/out.tar d/one' 'tar -cf d/out.tar d' volatile=d/out.tar check="$tar_self" limit="$tar_lock"
# The same with a listing that names itself: plainly the shell has created it.
c ls-self ls listing '' 'ls -a >listing' volatile=listing compare=no \
    limit='a new pending file has no name in its directory until the commit, and its lock file has one (README, limits)' \
    check='diff <(grep -vx listing "$P/listing") <(grep -vx listing.lock listing) && grep -qx listing.lock listing && ! grep -qx listing listing'
c tar-czf tar,gzip out.tgz 'mktree d; echo old >out.tgz' 'tar -czf out.tgz d'
c tar-x tar 'out/**' 'mktree d; tar -cf a.tar d; mkdir out; mktree out/d; echo changed >out/d/one' 'tar -xf a.tar -C out'
c tar-x-overwrite tar 'out/**' 'mktree d; tar -cf a.tar d; mkdir out; mktree out/d; echo changed >out/d/one' 'tar --overwrite -xf a.tar -C out'
c cpio-o cpio out.cpio 'mktree d' 'find d | sort | cpio -o -H newc --reproducible --quiet >out.cpio'
c cpio-i cpio 'out/**' 'mktree d; find d | sort | cpio -o -H newc --reproducible --quiet >a.cpio; mkdir out; mktree out/d; echo changed >out/d/one' 'cd out && cpio -idu --quiet <../a.cpio'
c zip zip a.zip 'mktree d' 'zip -qrX a.zip d'
c zip-update zip a.zip 'mktree d; zip -qrX a.zip d; echo changed >d/one' 'zip -qrX a.zip d'
c unzip zip,unzip 'out/**' 'mktree d; zip -qrX a.zip d; mkdir out; mktree out/d; echo changed >out/d/one' 'unzip -qo a.zip -d out'
c 7z-a 7z a.7z 'mktree d' '7z a -bd a.7z d >/dev/null'
c 7z-x 7z 'out/**' 'mktree d; 7z a -bd a.7z d >/dev/null; mkdir out; mktree out/d; echo changed >out/d/one' '7z x -bd -y -oout a.7z >/dev/null'
c gzip gzip 'f;f.gz' 'abc' 'gzip f'
c gzip-kf gzip f.gz 'abc; echo old >f.gz' 'gzip -kf f'
c gzip-c gzip f.gz 'abc; echo old >f.gz' 'gzip -c f >f.gz'
c gunzip gzip 'f;f.gz' 'abc; gzip f' 'gunzip f.gz'
c bzip2 bzip2 f.bz2 'abc; echo old >f.bz2' 'bzip2 -kf f && bzip2 -t f.bz2'
c bunzip2 bzip2 f 'abc; bzip2 f' 'bunzip2 f.bz2'
c xz xz f.xz 'abc; echo old >f.xz' 'xz -kf f && xz -t f.xz'
c unxz xz f 'abc; xz f' 'unxz f.xz'
c zstd zstd f.zst 'abc; echo old >f.zst' 'zstd -qf f'
c unzstd zstd f 'abc; zstd -q --rm f' 'zstd -dq --rm f.zst'

# ---- build tools ----
c gcc-c gcc '*.o' 'hello_c; echo old >hello.o' 'gcc -c hello.c'
c gcc-link gcc hello 'hello_c; echo old >hello' 'gcc -o hello hello.c && ./hello'
c ld-r gcc,ld all.o 'objs' 'ld -r a.o b.o -o all.o'
c ar ar lib.a 'objs' 'ar rcs lib.a a.o b.o && ar t lib.a'
c ar-update ar lib.a 'objs; ar rcs lib.a a.o' 'ar rs lib.a b.o && ar t lib.a'
c objcopy gcc,objcopy c.o 'objs; echo old >c.o' 'objcopy --strip-debug a.o c.o'
c strip gcc,strip a.o 'objs' 'strip a.o'
c ninja ninja 'out.txt;.ninja_*' 'abc in.txt; printf "rule s\n  command = sort -r \$in > \$out\nbuild out.txt: s in.txt\n" >build.ninja' 'ninja --quiet && ninja --quiet' volatile=.ninja_log
c cmake-copy cmake g 'abc; echo old >g' 'cmake -E copy f g'
c make make,gcc,ar '*.txt;*.o;*.a' 'makefile' 'make -s && make -s'

# ---- git: its own X.lock protocol under a rule that matches everything ----
c git-init git '.git/**' '' 'git init -q && git config --get core.bare'
c git-commit git '**' 'abc; git init -q' 'git add f && git commit -qm one && git log --format=%H' volatile=.git/index renames=1
c git-config git .git/config 'git init -q' 'git config user.name X && git config --get user.name' renames=1
c git-checkout git '**' 'abc; git init -q; git add f; git commit -qm one; echo changed >f' 'git checkout -- f && git status --short && cat f' volatile=.git/index renames=1

# ---- rsync, patch, sqlite3, logrotate ----
c rsync rsync 'dst/**' 'mktree src; mktree dst; echo changed >dst/one' 'rsync -a src/ dst/'
c rsync-inplace rsync 'dst/**' 'mktree src; mktree dst; echo changed >dst/one; echo changed >dst/a/two' 'rsync -a --inplace src/ dst/'
c patch patch f 'abc_diff' 'patch -s f <f.diff' renames=1
c patch-b patch 'f;f.orig' 'abc_diff' 'patch -s -b f <f.diff' renames=1
c sqlite3-insert sqlite3 t.db 'sqlite3 t.db "create table t(x); insert into t values(1);"' 'sqlite3 t.db "insert into t values(2); select * from t; pragma integrity_check;"'
c sqlite3-backup sqlite3 b.db 'sqlite3 t.db "create table t(x); insert into t values(1);"' 'sqlite3 t.db ".backup b.db" && sqlite3 b.db "select * from t"'
c sqlite3-new sqlite3 t.db '' 'sqlite3 t.db "create table t(x); insert into t values(1); select * from t; pragma integrity_check;"'
c logrotate-create logrotate 'app.log*' 'logconf create' 'logrotate -f -s state logrotate.conf' volatile=state
c logrotate-copytruncate logrotate 'app.log*' 'logconf copytruncate' 'logrotate -f -s state logrotate.conf' volatile=state
c logrotate-compress logrotate,gzip 'app.log*' 'logconf create compress' 'logrotate -f -s state logrotate.conf' volatile=state

# ---- documented limits ----
c hardlink bash f 'abc; ln f f.link' 'echo new >f' inplace=f limit='a hard-linked target keeps its links: its new content is written into the inode at commit (README, special targets)'
c static-ldconfig ldconfig ld.so.cache 'mkdir lib; printf "%s\n" "$PWD/lib" >ld.so.conf' 'ldconfig -C ld.so.cache -f ld.so.conf' refuse=125 limit='a statically linked program is refused with 125 (README, the shim)'
