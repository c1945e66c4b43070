"""The web UI: a blueprint with templates and static assets over the same services as the API."""
