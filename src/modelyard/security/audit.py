"""The audit log as the security service uses it: record, list, and verify the chain.

:func:`verify_chain` walks every entry in ``seq`` order and reports each place where the
chain breaks: a ``seq`` gap (entries deleted), an entry whose ``prev_hash`` is not its
predecessor's hash (one before it deleted, inserted or moved), an entry whose fields no
longer give its hash (changed), and a head that is not the last entry (entries removed
from the end). Someone able to rewrite the whole table and recompute every hash after the
change could hide it; an ``anchor`` (a ``(seq, hash)`` pair printed by an earlier verify
and kept elsewhere) catches that too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.backends.metadata.audit import GENESIS, AuditStore

__all__ = ["AuditReport", "verify_chain"]

MAX_PROBLEMS = 100  # a report lists this many problems at most


@dataclass(frozen=True)
class AuditReport:
    entries: int  # entries read
    head_seq: int  # the chain's last entry (0 when empty)
    head_hash: str
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(store: AuditStore, anchor: tuple[int, str] | None = None) -> AuditReport:
    problems: list[str] = []
    first_bad: int | None = None

    def problem(seq: int, text: str) -> None:
        nonlocal first_bad
        if first_bad is None or seq < first_bad:
            first_bad = seq
        if len(problems) < MAX_PROBLEMS:
            problems.append(text)

    count, last_seq, last_hash = 0, 0, GENESIS
    anchor_seen = anchor is None
    for entry in store.chain():
        count += 1
        if entry.seq != last_seq + 1:
            missing = (f"entry {last_seq + 1}" if entry.seq == last_seq + 2
                       else f"entries {last_seq + 1}..{entry.seq - 1}")
            problem(last_seq + 1, f"{missing} missing: deleted from the log")
        if entry.prev_hash != last_hash:
            problem(entry.seq, f"entry {entry.seq} does not follow entry {last_seq}: its "
                    "previous hash differs (an entry was changed, removed or reordered)")
        if entry.expected_hash() != entry.hash:
            problem(entry.seq, f"entry {entry.seq} was changed: its fields do not give its "
                    "hash")
        if anchor is not None and entry.seq == anchor[0]:
            anchor_seen = True
            if entry.hash != anchor[1]:
                problem(entry.seq, f"entry {entry.seq} does not have the anchored hash "
                        f"{anchor[1][:16]}...: the log was rewritten from there or before")
        last_seq, last_hash = entry.seq, entry.hash
    if not anchor_seen and anchor is not None:
        problem(anchor[0], f"the anchored entry {anchor[0]} is not in the log")
    head = store.head()
    if head is None:
        problem(last_seq + 1, "the head record is missing")
    elif head != (last_seq, last_hash):
        if head[0] > last_seq:
            problem(last_seq + 1, f"the head records entry {head[0]} but the log ends at "
                    f"entry {last_seq}: entries were deleted from the end")
        else:
            problem(last_seq, f"the head records entry {head[0]} ({head[1][:16]}...) but the "
                    f"log ends at entry {last_seq} ({last_hash[:16]}...)")
    return AuditReport(count, last_seq, last_hash, problems, first_bad)
