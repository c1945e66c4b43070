"""Server time. Whole seconds, as the real server stores every timestamp."""

import time


def now_seconds() -> int:
    return int(time.time())
