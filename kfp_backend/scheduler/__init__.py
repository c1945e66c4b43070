"""Scheduling: turns enabled recurring jobs into runs at the right times.

`cron` and `triggers` compute when a job fires, `lease` makes one scheduler the active one, `firing`
creates the runs and `worker` is the loop; rows are read and written through services (schedule_state).
See docs/scheduling.md.
"""
