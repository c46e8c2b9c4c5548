"""A flood of half-open NBD connections, for test_nbd_scale.py: run in the
"attacker" network namespace as `python3 flood.py HOST PORT N RATE [TOTAL]`.

Keeps N TCP connections open to HOST:PORT that never finish a handshake:
three in four say nothing at all, one in four sends the client flags and
then nothing (so the server has to start negotiating).  When the server
closes one (a deadline, a cap), another is opened in its place, at most
RATE a second, TOTAL in all (default: no end).  Prints one JSON line of counts each second; stops when
stdin closes."""
import errno
import json
import os
import resource
import select
import socket
import sys
import time


def main():
    host, port, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    total = int(sys.argv[5]) if len(sys.argv) > 5 else None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    poller = select.poll()
    poller.register(sys.stdin.fileno(), select.POLLIN | select.POLLHUP)
    socks = {}  # fd -> [socket, flags sent]
    counts = {"opened": 0, "closed_by_server": 0, "established": 0, "failed": 0}
    budget, last, seq = float(rate), time.monotonic(), 0

    def open_one():
        nonlocal seq
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        e = s.connect_ex((host, port))
        if e not in (0, errno.EINPROGRESS):
            s.close()
            counts["failed"] += 1
            return
        seq += 1
        socks[s.fileno()] = [s, seq % 4 != 0, False]  # [sock, silent, connected]
        poller.register(s.fileno(), select.POLLOUT | select.POLLIN | select.POLLRDHUP)
        counts["opened"] += 1

    report = time.monotonic()
    while True:
        now = time.monotonic()
        budget = min(float(rate), budget + (now - last) * rate)
        last = now
        while len(socks) < n and budget >= 1 and (total is None or seq < total):
            open_one()
            budget -= 1
        for fd, ev in poller.poll(50):
            if fd == sys.stdin.fileno():
                if not os.read(fd, 4096):
                    print(json.dumps(dict(counts, open=len(socks))), flush=True)
                    return
                continue
            entry = socks.get(fd)
            if not entry:
                continue
            s, silent, connected = entry
            if ev & select.POLLOUT and not connected:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    ev |= select.POLLHUP
                else:
                    entry[2] = True
                    counts["established"] += 1
                    poller.modify(fd, select.POLLIN | select.POLLRDHUP)
                    if not silent:
                        try:
                            s.recv(18)  # the greeting, if it came already
                        except OSError:
                            pass
                        try:
                            s.send(b"\0\0\0\3")  # client flags, then nothing
                        except OSError:
                            ev |= select.POLLHUP
            if ev & (select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLRDHUP):
                try:
                    data = s.recv(4096) if not ev & (select.POLLHUP | select.POLLERR) else b""
                except BlockingIOError:
                    continue  # the greeting was read already
                except OSError:
                    data = b""
                if data and not ev & select.POLLRDHUP:
                    continue  # the greeting: we stay silent
                poller.unregister(fd)
                del socks[fd]
                s.close()
                counts["closed_by_server"] += 1
        if now - report >= 1:
            report = now
            print(json.dumps(dict(counts, open=len(socks))), flush=True)


if __name__ == "__main__":
    main()
