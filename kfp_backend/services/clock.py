"""Server time. Whole seconds, as the real server stores every timestamp."""

import time
from collections.abc import Callable

# What a service that needs the time is given (tests give one they can move).
Clock = Callable[[], int]


def now_seconds() -> int:
    return int(time.time())
