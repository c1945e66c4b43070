"""Scheduling: turns enabled recurring jobs into runs at the right times.

`cron` parses KFP's schedule expressions (robfig/cron v1 syntax, seconds first) and computes fire times;
the rest of the package decides when each job fires, holds the scheduler lease and creates the runs
(through the services, as HTTP handlers do).
"""
