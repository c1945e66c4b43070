"""Which step isolation a `serve` process uses: the multi-user rule, in one place.

Multi-user mode (authentication on) runs every step in the bwrap sandbox (see `bwrap`): a tenant's step
must not reach the server or another tenant. The sandbox is checked at start-up by running one step in
it; when it does not work here the server refuses to start, naming what is missing, unless the operator
set `KFP_BACKEND_UNSAFE_ALLOW_UNISOLATED_STEPS=true` (then a WARNING says that steps are not isolated).
Single-user mode keeps the lighter isolation ("namespace", else "rewrite") unless "bwrap" is asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url

from kfp_backend.config import Settings
from kfp_backend.executor import bwrap, sandbox
from kfp_backend.executor.process_launcher import LocalProcessLauncher

log = logging.getLogger(__name__)

OPT_OUT = "KFP_BACKEND_UNSAFE_ALLOW_UNISOLATED_STEPS"


def hidden_paths(settings: Settings) -> list[str]:
    """What steps must not see: the data dir (database, tokens table, artifacts, every run's step
    directories), a SQLite database file kept elsewhere, and the operator's extra paths."""
    paths = [str(Path(settings.data_dir).resolve())]
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database).resolve()
        paths.append(str(database.parent) if database.parent != Path("/") else str(database))
    return paths + settings.hidden_paths


def build_launcher(settings: Settings) -> LocalProcessLauncher:
    """The launcher for this process's executor; bwrap.IsolationUnavailable when multi-user mode cannot
    isolate steps here and the operator did not opt out."""
    multi_user = settings.auth_required
    wanted = settings.step_isolation
    if wanted == sandbox.AUTO and multi_user:
        wanted = sandbox.BWRAP
    if wanted != sandbox.BWRAP:
        if multi_user:
            if not settings.unsafe_allow_unisolated_steps:
                raise bwrap.IsolationUnavailable(
                    f"KFP_BACKEND_STEP_ISOLATION={wanted} does not keep a tenant's steps away from the server's "
                    f"files in multi-user mode: use bwrap (or auto), or set {OPT_OUT}=true")
            log.warning("UNSAFE: multi-user mode with KFP_BACKEND_STEP_ISOLATION=%s (%s=true): steps can read "
                        "the server's database, tokens and other tenants' files", wanted, OPT_OUT)
        return LocalProcessLauncher(wanted, wrapper=settings.step_wrapper)
    try:
        options = bwrap.options(settings.bwrap, settings.step_user, hidden_paths(settings),
                                network=settings.step_network == "host")
        return LocalProcessLauncher(sandbox.BWRAP, wrapper=settings.step_wrapper, sandbox_options=options)
    except bwrap.IsolationUnavailable as exc:
        if not (multi_user and settings.unsafe_allow_unisolated_steps):
            mode = "multi-user mode needs" if multi_user else "KFP_BACKEND_STEP_ISOLATION=bwrap needs"
            hint = f", or set {OPT_OUT}=true to run steps unisolated" if multi_user else ""
            raise bwrap.IsolationUnavailable(f"{mode} the step sandbox, which does not work here: {exc}"
                                             f" (see docs/auth.md{hint})") from None
        log.warning("UNSAFE: the step sandbox does not work here (%s) and %s=true: steps run WITHOUT isolation "
                    "from the server; they can read its database, tokens and other tenants' files", exc, OPT_OUT)
        return LocalProcessLauncher(sandbox.AUTO, wrapper=settings.step_wrapper)
