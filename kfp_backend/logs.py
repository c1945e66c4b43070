"""The log format of every kfp-backend process (`serve`, its children, `executor`, `scheduler`...)."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that narrate their own work at INFO (Alembic names every plugin it loads and the context of
# each migration): above DEBUG only their warnings show; the server says what was done in its own lines.
QUIET_LIBRARIES = ("alembic",)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
