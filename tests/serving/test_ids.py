"""Request ids made by the server: unique within a process, across threads and processes."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

from modelyard.serving.ids import new_request_id


def test_ids_are_32_hex_digits_and_never_repeat_across_threads() -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: new_request_id(), range(20_000)))
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_child_draws_its_own_prefix() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    mine = new_request_id()
    assert len(child) == 32 and child[:16] != mine[:16]
