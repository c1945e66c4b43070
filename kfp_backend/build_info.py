"""What this server is built from: the commit of its source, when it can be known.

healthz reports it as `commit_sha`. A build can say it in KFP_BACKEND_COMMIT_SHA (an image build sets it);
otherwise, when the package runs from a git checkout (as `make serve` installs it), the checkout's HEAD.
"""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache
from pathlib import Path

UNKNOWN = "unknown"
# The top of the source tree: kfp_backend/ sits right under it in a checkout.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
_COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1 or SHA-256 object names
GIT_TIMEOUT_SECONDS = 5.0


@lru_cache(maxsize=1)
def checkout_commit(root: Path = SOURCE_ROOT) -> str | None:
    """HEAD of the git checkout at `root`, or None: not a checkout (an installed wheel, whose parent
    directory may sit inside some other repository), no git program, or git failing."""
    if not (root / ".git").exists():  # a directory, or a file in a worktree
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=GIT_TIMEOUT_SECONDS, check=False, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and _COMMIT.fullmatch(commit) else None
