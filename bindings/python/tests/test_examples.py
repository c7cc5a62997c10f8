"""The seed README's examples 1-6, with their paths moved into a scratch directory."""
import gzip
import json
import os
import threading
from datetime import datetime

import pytest

import wrap_lockfile
from wrap_lockfile import (LockTimeout, atomic_write, atomic_write_lock, mylockfile,
                           mylockfile_exceptions)
from conftest import entries


def test_example_1_config_update(d):
    config_path = os.path.join(d, "config.json")
    with open(config_path, "w") as f:
        json.dump({"debug": False, "name": "app"}, f)

    def update_config(config_path, new_settings):
        with open(config_path, "r") as f:
            config = json.load(f)
        config.update(new_settings)
        with atomic_write_lock(config_path, lock_timeout=10) as f:
            json.dump(config, f, indent=2)

    update_config(config_path, {"debug": True})
    with open(config_path) as f:
        assert json.load(f) == {"debug": True, "name": "app"}
    assert entries(d) == ["config.json"]


def test_example_2_log_appending_from_threads(d):
    log_path = os.path.join(d, "app.log")

    def append_log(log_path, message):
        timestamp = datetime.now().isoformat()
        log_line = f"[{timestamp}] {message}\n"
        with mylockfile(log_path, timeout=5):
            with open(log_path, "a") as f:
                f.write(log_line)

    threads = [threading.Thread(target=lambda i=i: [append_log(log_path, "t%d m%d" % (i, k)) for k in range(25)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with open(log_path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 100 and all(line.startswith("[") for line in lines)
    assert entries(d) == ["app.log"]


def test_example_3_counter(d):
    counter_file = os.path.join(d, "counter.txt")

    def increment_counter(counter_file):
        try:
            with open(counter_file, "r") as f:
                count = int(f.read().strip())
        except FileNotFoundError:
            count = 0
        with atomic_write_lock(counter_file, lock_timeout=5) as f:
            f.write(str(count + 1))
        return count + 1

    # As written, the read is outside the lock: exact in one thread only
    # (test_concurrency.py has the variants that are exact under contention).
    assert [increment_counter(counter_file) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert entries(d) == ["counter.txt"]


def test_example_4_binary_file(d):
    output_path = os.path.join(d, "output.gz")

    def compress_and_save(input_data, output_path):
        compressed = gzip.compress(input_data)
        with atomic_write_lock(output_path, mode="wb", lock_timeout=10) as f:
            f.write(compressed)

    data = b"Large amount of data to compress..." * 100
    compress_and_save(data, output_path)
    with open(output_path, "rb") as f:
        assert gzip.decompress(f.read()) == data


def test_example_5_retry_on_lock_timeout(d, capsys):
    filepath = os.path.join(d, "data.txt")
    slept = []

    def update_with_retry(filepath, content, max_retries=3):
        for attempt in range(max_retries):
            try:
                with mylockfile(filepath, timeout=0.2):  # the README's 2 s, shortened
                    with open(filepath, "w") as f:
                        f.write(content)
                print("Update successful!")
                return True
            except LockTimeout:
                print(f"Lock timeout, retry {attempt + 1}/{max_retries}")
                slept.append(attempt)  # the README sleeps 1 s here
                if attempt == 1:
                    holder.release()
            except mylockfile_exceptions as e:
                print(f"Lock failed: {e}")
                return False
        print("Max retries exceeded")
        return False

    holder = mylockfile(filepath)
    holder.acquire()
    assert update_with_retry(filepath, "New content") is True
    assert slept == [0, 1]
    out = capsys.readouterr().out
    assert "Lock timeout, retry 1/3" in out and "Lock timeout, retry 2/3" in out and "Update successful!" in out
    with open(filepath) as f:
        assert f.read() == "New content"

    # The other branch: a lock that cannot be taken at all.
    bad = os.path.join(d, "missing-dir", "x")
    assert update_with_retry(bad, "x") is False
    assert "Lock failed:" in capsys.readouterr().out


def test_example_6_symlinks(d):
    configs = os.path.join(d, "data", "configs")
    etc = os.path.join(d, "etc")
    os.makedirs(configs, exist_ok=True)
    os.makedirs(etc)
    with open(os.path.join(configs, "app.conf"), "w") as f:
        f.write("debug=false\n")
    os.symlink(os.path.join(configs, "app.conf"), os.path.join(etc, "app.conf"))

    with atomic_write_lock(os.path.join(etc, "app.conf")) as f:
        assert os.path.dirname(f.name) == configs  # written where the target lives
        f.write("debug=true\n")
        f.write("verbose=true\n")

    assert os.path.islink(os.path.join(etc, "app.conf"))
    assert os.readlink(os.path.join(etc, "app.conf")) == os.path.join(configs, "app.conf")
    with open(os.path.join(configs, "app.conf")) as f:
        assert f.read() == "debug=true\nverbose=true\n"
    assert entries(configs) == ["app.conf"] and entries(etc) == ["app.conf"]


def test_readme_api_snippets(d):
    t = os.path.join(d, "file.txt")
    with atomic_write(t) as f:
        f.write("Safely written")
    try:
        with mylockfile(t, timeout=5):
            pass
    except mylockfile_exceptions:
        pytest.fail("uncontended lock failed")
    assert wrap_lockfile.myLockTimeout is LockTimeout
