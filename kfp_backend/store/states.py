"""The status vocabulary: Argo phases, run statuses, job statuses and storage states, defined once.

store/ is the bottom layer for all of them: its queries filter and write these very values, and it imports
nothing above it, so services/, api/, executor/ and scheduler/ import them from here. workflow/ only parses
manifests and never sees a phase, so it does not own the Argo node phases either.
"""

from __future__ import annotations

# Argo phases. A run's status is its workflow phase; a node's phase is one of these too.
PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
ERROR = "Error"
SKIPPED = "Skipped"  # node phase only: the workflow then counts as Succeeded
OMITTED = "Omitted"  # node phase only: a task left out because a dependency failed

# A run's status before the executor first reports a phase.
NOT_STARTED = ""
# A run's status while a terminate is pending, whatever phase the executor last saw (not an Argo phase).
TERMINATING = "Terminating"

# Run statuses after which a run never changes again (until a retry); a tuple, as SQL `IN` lists take it.
FINAL_RUN_STATUSES = (SUCCEEDED, FAILED, ERROR, SKIPPED)
# Argo's completed workflow phases (the `workflows.argoproj.io/completed` label). Unlike FINAL_RUN_STATUSES
# it leaves out Skipped: a workflow never ends Skipped, and a stored "Skipped" status is kept as unfinished here.
COMPLETED_WORKFLOW_PHASES = frozenset({SUCCEEDED, FAILED, ERROR})
# Run statuses a terminate may stop, and those a retry may restart.
TERMINABLE_RUN_STATUSES = (NOT_STARTED, PENDING, RUNNING)
RETRYABLE_RUN_STATUSES = (FAILED, ERROR)

# Node phases after which a node never changes again, and those that count as failures.
FULFILLED_NODE_PHASES = frozenset({SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED})
FAILED_NODE_PHASES = frozenset({FAILED, ERROR})

# Job.status: the ScheduledWorkflow conditions upstream reports. A one-off job (no schedule) that has
# fired shows Running while its run is active and Succeeded after.
JOB_NO_STATUS = "NO_STATUS"
JOB_ENABLED = "Enabled"
JOB_DISABLED = "Disabled"
JOB_RUNNING = RUNNING
JOB_SUCCEEDED = SUCCEEDED

# storage_state of experiments and runs, as upstream spells it on the wire.
STORAGE_AVAILABLE = "STORAGESTATE_AVAILABLE"
STORAGE_ARCHIVED = "STORAGESTATE_ARCHIVED"
