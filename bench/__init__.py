"""scopebench: the harness (``bench`` CLI) and, in ``bench.instrument``, the pool instrumentation apps import.

``IMPORTED_AT`` bounds the start-up figure when a shell exec'd ``bench`` after other commands (see run.drive).
"""

import time

IMPORTED_AT = time.time()
