"""Commands of kfp 2.x steps, in the form the kfp 2.x compiler gives lightweight Python components.

Written out here (not compiled) so that tests of step environments need no kfp 2.x in their venv: a
`sh -c` script that makes sure pip exists, runs one `pip install` line per requirement set, then
hands over to a second `sh -ec` script that writes the component's source to a file and runs
`python3 -m kfp.dsl.executor_main` on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

KFP_VERSION = "2.17.3"
_ENSURE_PIP = (
    '\nif ! [ -x "$(command -v pip)" ]; then\n'
    "    python3 -m ensurepip || python3 -m ensurepip --user || apt-get install python3-pip\nfi\n\n"
)
_PIP = "python3 -m pip install --quiet --no-warn-script-location"
_RUN_PROGRAM = (
    'program_path=$(mktemp -d)\n\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
    '                         --component_module_path'
    '                         "$program_path/ephemeral_component.py"'
    '                         "$@"\n'
)
SOURCE_HEADER = "\nimport kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n\n"


def install_script(
    kfp_version: str | None = KFP_VERSION,
    packages: Sequence[str] = (),
    index_options: Sequence[str] = (),
) -> str:
    """The first `sh -c` script: the pip lines, then `"$0" "$@"` (the program runner)."""
    options = "".join(f" {option}" for option in index_options)
    lines = []
    if packages:
        lines.append(f"{_PIP}{options} {' '.join(repr_quote(package) for package in packages)} ")
    if kfp_version:
        lines.append(f"{_PIP}{options} 'kfp=={kfp_version}' '--no-deps' "
                     "'typing-extensions>=3.7.4,<5; python_version<\"3.9\"'")
    return _ENSURE_PIP + "PIP_DISABLE_PIP_VERSION_CHECK=1 " + " &&  ".join(lines) + ' && "$0" "$@"\n'


def lightweight_command(
    function_source: str,
    kfp_version: str | None = KFP_VERSION,
    packages: Sequence[str] = (),
    index_options: Sequence[str] = (),
) -> list[str]:
    """The container command of a lightweight component whose function is `function_source`."""
    return ["sh", "-c", install_script(kfp_version, packages, index_options), "sh", "-ec", _RUN_PROGRAM,
            SOURCE_HEADER + function_source]


def executor_arguments(function_name: str, executor_input: dict) -> list[str]:
    """The container args: the resolved ExecutorInput and the function to run."""
    return ["--executor_input", json.dumps(executor_input), "--function_to_execute", function_name]


def repr_quote(word: str) -> str:
    """Single quotes, as the compiler writes each requirement (its requirements hold no `'`)."""
    return f"'{word}'"
