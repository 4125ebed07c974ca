"""Checks the _asyncio offsets the agent loads (3.14+) against live objects:
prints OK and the layout, or what disagreed.  Run with the agent on the
path: asyncio_layout.py"""
import asyncio
import ctypes
import json
import sys

from profagent import _profagent


def word(addr):
    return ctypes.c_void_p.from_address(addr).value


async def probe():
    lay = _profagent._asyncio_layout()
    task = asyncio.current_task()
    get_ts = ctypes.pythonapi.PyThreadState_Get
    get_ts.restype = ctypes.c_void_p
    ts = get_ts()
    checks = {
        "task_name": word(id(task) + lay["task_name"]) == id(task.get_name()),
        "task_coro": word(id(task) + lay["task_coro"]) == id(task.get_coro()),
        "thread_running_task":
            word(ts + lay["thread_running_task"]) == id(task),
        "thread_running_loop": word(ts + lay["thread_running_loop"]) ==
            id(asyncio.get_running_loop()),
        "task_size": lay["task_size"] == type(task).__basicsize__,
    }
    bad = [k for k, ok in checks.items() if not ok]
    print("BAD " + " ".join(bad) if bad else "OK " + json.dumps(lay))
    return not bad


async def main():
    return await asyncio.create_task(probe(), name="profagent-probe")


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
