#!/usr/bin/env python3
"""SIGKILL at any instant under the shim (README "The shim", killed writers).

An unmodified shell loop `while :; do printf NEW > t; done` runs under the
shim (through the launcher and with a raw LD_PRELOAD) and is killed with
SIGKILL a random number of microseconds after it announced its start, 150
times per mode. Each time t holds exactly its old or its new content, and
after one more successful shimmed write nothing is beside it: no t.lock,
no temp (a kill between naming the O_TMPFILE and the rename leaves the
per-target name `.t._pending~~`, which the next holder removes).

usage: kill_test.py ATOMICALLY PRELOAD_OBJECT
Exit: 0 pass, 1 fail, 77 skip.
"""
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time

ROUNDS = 150
OLD = b"o" * 8192
NEW = b"n" * 8192

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRAP_LOCKFILE_") and k != "LD_PRELOAD"}
    env.update(LC_ALL="C", C=NEW.decode())
    return env


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 1
    atomically, preload = (os.path.realpath(a) for a in sys.argv[1:3])
    rng = random.Random(4242)
    with tempfile.TemporaryDirectory() as d:
        t = os.path.join(d, "t")
        # The loop announces itself on stdout, then rewrites t with the shell's
        # builtin printf: one process, which the kill always hits.
        loop = 'printf r; exec >/dev/null; while :; do printf %s "$C" > t; done'
        launcher_env = clean_env()
        launcher_env["WRAP_LOCKFILE_PRELOAD"] = preload  # the object under test
        preload_env = clean_env()
        preload_env.update(LD_PRELOAD=preload, WRAP_LOCKFILE_RULES=t, WRAP_LOCKFILE_FSYNC="none")
        modes = {
            "launcher": ([atomically, "--fsync", "none", "--rule", t, "--"], launcher_env),
            "preload": ([], preload_env),
        }
        leftovers = 0
        for mode, (prefix, env) in modes.items():
            for rnd in range(ROUNDS):
                with open(t, "wb") as f:
                    f.write(OLD)
                p = subprocess.Popen(prefix + ["sh", "-c", loop], cwd=d, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
                ready, _, _ = select.select([p.stdout], [], [], 20)
                got = os.read(p.stdout.fileno(), 1) if ready else b""
                if got != b"r":
                    p.kill()
                    p.wait()
                    fail(f"{mode} round {rnd}: the writer did not start: {p.stderr.read().decode()!r}")
                    return 1
                time.sleep(rng.uniform(0, 0.003))
                os.killpg(p.pid, signal.SIGKILL)
                status = p.wait()
                p.stdout.close()
                p.stderr.close()
                if status != -signal.SIGKILL:
                    fail(f"{mode} round {rnd}: the writer ended by itself with {status}")
                    return 1
                with open(t, "rb") as f:
                    seen = f.read()
                if seen not in (OLD, NEW):
                    fail(f"{mode} round {rnd}: t holds {len(seen)} bytes of neither content")
                if any(n.endswith("~~") for n in os.listdir(d)):
                    leftovers += 1
                q = subprocess.run(prefix + ["sh", "-c", "echo final > t"], cwd=d, env=env,
                                   stderr=subprocess.PIPE, timeout=30)
                if q.returncode != 0:
                    fail(f"{mode} round {rnd}: the next write failed: {q.stderr.decode()!r}")
                with open(t, "rb") as f:
                    if f.read() != b"final\n":
                        fail(f"{mode} round {rnd}: the next write did not land")
                names = sorted(os.listdir(d))
                if names != ["t"]:
                    fail(f"{mode} round {rnd}: left beside t after the next write: {names}")
                if failures:
                    return 1
        print(f"{2 * ROUNDS} kills, {leftovers} left a temp behind until the next write")
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
