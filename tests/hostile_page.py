"""What a hostile web page has a developer's browser send to the server: the workflow it would have run (a
container step is a host process here) and Chrome's headers on a request the page makes."""

from __future__ import annotations

CHROME = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Accept": "*/*",
    "Accept-Language": "en-US,en;q=0.9",
}


def shell_workflow(command: str) -> str:
    """An Argo workflow whose one step runs `command` with sh."""
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: pwn-
spec:
  entrypoint: main
  templates:
  - name: main
    container:
      image: alpine:3.19
      command: [sh, -c, "{command}"]
"""


def browser(site: str, host: str, *, mode: str = "no-cors", content_type: str | None = None,
            **extra: str) -> dict[str, str]:
    """The headers Chrome sends for a request made by a page of `site` (an origin) to the server at `host`."""
    headers = {**CHROME, "Host": host, "Origin": site, "Referer": site + "/",
               "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": "empty", **extra}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers
