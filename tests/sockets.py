"""Listening TCP sockets of a process (from /proc: its socket inodes matched with the namespace's
listening entries), to check what the project exposes on the network."""

import os

LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc writes them


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """{(address as /proc writes it, port)} of the TCP sockets `pid` listens on."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone
        return set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                address, port = fields[1].rsplit(":", 1)
                found.add((address, int(port, 16)))
    return found


def outside_loopback(sockets: set[tuple[str, int]]) -> set[tuple[str, int]]:
    return {(a, p) for a, p in sockets if a not in LOOPBACK}
