#!/usr/bin/env python3
# python_worker.py: seed 002's task_worker.py, adapted for measuring. Same
# design: connect a BaseManager client, then per task one task.get() and one
# result.put() through the proxies. What changed: the address comes from the
# command line, no sleep(1) and no per-task print, and it loops until it gets
# the master's sentinel (None) or the manager goes away, instead of 10 times.
#
# Output: `Connect to server 127.0.0.1:PORT...`, `worker exit after N tasks.`
#
#   python3 python_worker.py 127.0.0.1:PORT

import queue
import sys
from multiprocessing.managers import BaseManager


class QueueManager(BaseManager):
    pass


QueueManager.register('get_task_queue')
QueueManager.register('get_result_queue')


def main():
    addr = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1:5000'
    host, _, port = addr.rpartition(':')
    print('Connect to server %s...' % addr, flush=True)
    m = QueueManager(address=(host, int(port)), authkey=b'abc')
    m.connect()
    task = m.get_task_queue()
    result = m.get_result_queue()
    done = 0
    while True:
        try:
            n = task.get(timeout=30)
        except (queue.Empty, EOFError, ConnectionError):
            break
        if n is None:
            break
        r = '%d * %d = %d' % (n, n, n * n)
        result.put(r)
        done += 1
    print('worker exit after %d tasks.' % done)
    return 0


if __name__ == '__main__':
    sys.exit(main())
