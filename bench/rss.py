"""Runs a command and reports its peak resident memory: ``python bench/rss.py CMD [ARGS...]``.

The child's stdout and stderr pass through; then ``peak_rss_mb=<MB>`` is printed on stderr, from
``os.wait4`` (the child's own ``ru_maxrss``, not a maximum over all children). The exit code is
the child's.
"""

import os
import subprocess
import sys

child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
print(f"peak_rss_mb={usage.ru_maxrss / 1024:.1f}", file=sys.stderr, flush=True)
sys.exit(child.returncode if child.returncode >= 0 else 128 - child.returncode)
