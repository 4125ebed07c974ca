"""startup.py -- a short program that burns CPU from its first line, for
whether the agent samples a process from its start.

  startup.py MS STATE_FILE
      burns CPU in burn() for MS milliseconds from the script's first line,
      then writes "RUN_NS" to STATE_FILE: the wall time from that first
      line until then, and exits.
"""
import sys
import time

t0 = time.perf_counter_ns()


def burn(ms):
    end = t0 + ms * 1000000
    x = 0
    while time.perf_counter_ns() < end:
        x += 1
    return x


def main():
    burn(int(sys.argv[1]))
    run = time.perf_counter_ns() - t0
    with open(sys.argv[2], "w") as f:
        f.write("%d\n" % run)


main()
