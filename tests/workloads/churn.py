"""A server that names a new thread per request: each request runs in a
fresh thread called request-N that computes a little.

  --seconds S    run for S seconds (default 10)
  --done FILE    or until FILE exists
Prints: requests=<n>
"""
import argparse
import os
import threading
import time


def handle(n):
    s = 0
    for i in range(2000):
        s += i * n % 7
    return s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--done")
    a = p.parse_args()
    deadline = time.monotonic() + a.seconds
    n = 0
    while time.monotonic() < deadline:
        t = threading.Thread(target=handle, args=(n,), name="request-%d" % n)
        t.start()
        t.join()
        n += 1
        if a.done and n % 50 == 0 and os.path.exists(a.done):
            break
    print("requests=%d" % n)


if __name__ == "__main__":
    main()
