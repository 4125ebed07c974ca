"""A server that names a new thread per request: each request runs in a
fresh thread called request-N that computes a little.

  --seconds S    run for S seconds (default 10)
Prints: requests=<n>
"""
import argparse
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
    a = p.parse_args()
    deadline = time.monotonic() + a.seconds
    n = 0
    while time.monotonic() < deadline:
        t = threading.Thread(target=handle, args=(n,), name="request-%d" % n)
        t.start()
        t.join()
        n += 1
    print("requests=%d" % n)


if __name__ == "__main__":
    main()
