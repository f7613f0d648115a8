#!/usr/bin/env python3
# python_master.py: seed 002's task_master.py, adapted for measuring. The
# design is the seed's: a BaseManager serves two queue.Queue objects
# (task_queue, result_queue) from a server process, the master puts every
# task through the manager's proxy and then gets every result, one call per
# task. What changed: the port comes from the command line (0: the OS
# chooses) and the chosen one is printed, N tasks instead of 10 (distinct
# numbers in random order, as task_master draws them), no per-task prints,
# and after the last result one sentinel (None) per worker so the workers
# leave. Progress goes to stderr every 256 results, in the form the
# benchmark driver reads ("\r... GOT/TOTAL").
#
#   python3 python_master.py PORT TASKS WORKERS
#
# Output:
#   listening on 127.0.0.1:PORT
#   summary: N results of N tasks (0 failed), K workers, R tasks/s
#   master exit.

import queue
import random
import sys
import time
from multiprocessing.managers import BaseManager

# The queues live in the manager's server process (forked by start()).
task_queue = queue.Queue()
result_queue = queue.Queue()


class QueueManager(BaseManager):
    pass


QueueManager.register('get_task_queue', callable=lambda: task_queue)
QueueManager.register('get_result_queue', callable=lambda: result_queue)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    numbers = random.sample(range(max(n, 10001)), n)
    manager = QueueManager(address=('127.0.0.1', port), authkey=b'abc')
    manager.start()
    task = manager.get_task_queue()
    result = manager.get_result_queue()
    print('listening on %s:%d' % manager.address, flush=True)
    start = time.monotonic()
    for x in numbers:
        task.put(x)
    got = 0
    failed = 0
    while got < n:
        try:
            r = result.get(timeout=10)
        except queue.Empty:
            break
        got += 1
        if not r:
            failed += 1
        if got % 256 == 0 or got == n:
            sys.stderr.write('\r%d/%d' % (got, n))
            sys.stderr.flush()
    secs = time.monotonic() - start
    sys.stderr.write('\n')
    for _ in range(workers):
        task.put(None)
    print('summary: %d results of %d tasks (%d failed), %d workers, '
          '%.0f tasks/s' % (got, n, failed, workers, got / secs if secs else 0))
    manager.shutdown()
    if got < n:
        print('%d of %d results missing' % (n - got, n), file=sys.stderr)
        return 1
    print('master exit.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
