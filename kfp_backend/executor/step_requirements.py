"""Which Python environment a kfp 2.x step asks for, read from its command.

A lightweight Python component, as the kfp 2.x compiler emits it, starts with `sh -c '<script>'` whose
script runs `python3 -m pip install ...` once for `packages_to_install` (with the component's index
options) and once for `kfp==<version> --no-deps`, then runs the component. The pip lines are read
here, as data, so that the executor can give the step a prepared environment in which they are no-ops.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath

# Options of `pip install` that take a value and choose where packages come from; kept with the line.
_VALUED_OPTIONS = {
    "-i": "--index-url", "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "--trusted-host": "--trusted-host",
    "-f": "--find-links", "--find-links": "--find-links",
}
# Options that take a value but change only how pip works (reporting, network, cache): dropped with it.
_IGNORED_VALUED_OPTIONS = {
    "--timeout", "--retries", "--cache-dir", "--progress-bar", "--log", "--proxy", "--cert", "--client-cert",
    "--exists-action", "--root-user-action", "--upgrade-strategy", "--keyring-provider",
}
# Options whose effect cannot be prepared ahead of the step (files and places of the step's own).
_REFUSED_OPTIONS = {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target", "--prefix", "--root",
    "--user", "--src",
}
_SHELLS = {"sh", "bash", "dash", "ash"}
_SIMPLE_COMMAND_SEPARATORS = {"&&", "||", ";", "|", "&"}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)
_KFP_PIN = re.compile(r"kfp\s*==\s*([A-Za-z0-9.+!_-]+)", re.IGNORECASE)


# The compiler's install script opens with this: it installs pip when the image has none.
_ENSURE_PIP_BLOCK = re.compile(
    r'\s*if ! \[ -x "\$\(command -v pip\)" \]; then\n'
    r"\s*python3 -m ensurepip \|\| python3 -m ensurepip --user \|\| apt-get install python3-pip\n"
    r"\s*fi\n"
)
_RUN_NEXT_PROGRAM = '"$0" "$@"'
# What replaces an install script whose pip lines the step's environment satisfies.
RUN_NEXT_PROGRAM_AT_ONCE = 'exec "$0" "$@"'


class UnsupportedInstall(ValueError):
    """A pip line this module cannot turn into an environment (a requirements file, an editable path...)."""


@dataclasses.dataclass(frozen=True)
class PipInstall:
    """One `pip install` line of a step: what it installs and from where."""

    requirements: tuple[str, ...]
    # Source options as (option, value) pairs, in the line's order: --index-url, --extra-index-url, ...
    index_options: tuple[tuple[str, str], ...] = ()
    no_deps: bool = False
    pre: bool = False

    def pip_arguments(self) -> list[str]:
        """The arguments after `pip install` that install this line into an environment."""
        arguments = [part for pair in self.index_options for part in pair]
        if self.no_deps:
            arguments.append("--no-deps")
        if self.pre:
            arguments.append("--pre")
        return arguments + list(self.requirements)


@dataclasses.dataclass(frozen=True)
class StepRequirement:
    """The environment a step needs: its pip lines, in the order the step runs them."""

    installs: tuple[PipInstall, ...]

    @property
    def kfp_version(self) -> str | None:
        """The version of a `kfp==X` requirement, if a line pins kfp."""
        for install in self.installs:
            for requirement in install.requirements:
                match = _KFP_PIN.fullmatch(requirement)
                if match:
                    return match.group(1)
        return None

    @property
    def packages(self) -> tuple[str, ...]:
        """The requirements of the lines that do not pin kfp (the component's `packages_to_install`)."""
        return tuple(
            requirement for install in self.installs if not any(map(_pins_kfp, install.requirements))
            for requirement in install.requirements
        )

    @property
    def key(self) -> str:
        """A short name for this requirement, the same for the same lines however the step wrote them."""
        text = json.dumps([dataclasses.asdict(install) for install in self.installs], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def describe(self) -> str:
        kfp = f"kfp=={self.kfp_version}" if self.kfp_version else "no kfp pin"
        return f"{kfp}; packages: {', '.join(self.packages) or 'none'}"


def _pins_kfp(requirement: str) -> bool:
    return _KFP_PIN.fullmatch(requirement) is not None


def step_requirement(argv: Sequence[str]) -> StepRequirement | None:
    """The environment the step `argv` (command + args) asks for, or None when it runs no pip install.

    Only the script of a leading `sh -c` is read: the component's own source, passed as a later
    argument, may mention pip without running it. Raises UnsupportedInstall for a pip line whose
    effect cannot be prepared ahead (a requirements file, an editable or local path...).
    """
    script = _shell_script(argv)
    return None if script is None else _script_requirement(script)


# Many steps share one script (every task of a component, every run): each is read once.
@functools.lru_cache(maxsize=512)
def _script_requirement(script: str) -> StepRequirement | None:
    installs = tuple(_pip_install(words) for words in _simple_commands(script) if _is_pip_install(words))
    return StepRequirement(installs) if installs else None


def _shell_script(argv: Sequence[str]) -> str | None:
    if len(argv) < 3 or PurePosixPath(argv[0]).name not in _SHELLS:
        return None
    flags = argv[1]
    if not (flags.startswith("-") and "c" in flags[1:]):
        return None
    return argv[2]


def _simple_commands(script: str) -> list[list[str]]:
    """The script's simple commands as words, without leading variable assignments.

    Line by line: the compiled scripts keep each command on one line, and a line that does not parse
    (an unterminated quote, a here-document...) holds no pip line we could read anyway.
    """
    commands: list[list[str]] = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:
            continue
        words: list[str] = []
        redirected = False
        for token in [*tokens, ";"]:
            if redirected:  # the target of a redirection is no word of the command
                redirected = False
            elif set(token) <= set("<>&") and token not in _SIMPLE_COMMAND_SEPARATORS:
                redirected = True
                if words and words[-1].isdigit():  # `2>&1`: the descriptor number
                    words.pop()
            elif token in _SIMPLE_COMMAND_SEPARATORS:
                while words and _ASSIGNMENT.fullmatch(words[0]):
                    words.pop(0)
                if words:
                    commands.append(words)
                words = []
            else:
                words.append(token)
    return commands


def _is_pip_install(words: list[str]) -> bool:
    """`python3 -m pip install ...`, `python -m pip install ...` or `pip3 install ...`."""
    program = PurePosixPath(words[0]).name
    if re.fullmatch(r"python3?(\.\d+)?", program) and words[1:4] == ["-m", "pip", "install"]:
        return True
    return bool(re.fullmatch(r"pip3?(\.\d+)?", program)) and words[1:2] == ["install"]


def _pip_install(words: list[str]) -> PipInstall:
    arguments = words[words.index("install") + 1:]
    requirements: list[str] = []
    index_options: list[tuple[str, str]] = []
    no_deps = pre = False
    position = 0
    while position < len(arguments):
        word = arguments[position]
        position += 1
        if not word.startswith("-"):
            requirements.append(word.strip())
            continue
        name, has_value, value = word.partition("=")
        if name in _VALUED_OPTIONS:
            if not has_value:
                if position >= len(arguments):
                    raise UnsupportedInstall(f"pip option {name} without a value")
                value = arguments[position]
                position += 1
            index_options.append((_VALUED_OPTIONS[name], value))
        elif name in _IGNORED_VALUED_OPTIONS:
            position += 0 if has_value else 1
        elif name in _REFUSED_OPTIONS:
            raise UnsupportedInstall(f"pip install {name} cannot be prepared ahead of the step")
        elif name == "--no-deps":
            no_deps = True
        elif name == "--pre":
            pre = True
        # Any other flag (--quiet, --no-warn-script-location, --upgrade, ...) is dropped: the prepared
        # environment satisfies the line's requirements, which is all a step relies on.
    for requirement in requirements:
        if requirement.startswith((".", "/", "~")):
            raise UnsupportedInstall(f"pip install of a local path ({requirement}) cannot be prepared ahead")
    return PipInstall(tuple(sorted(set(requirements))), tuple(index_options), no_deps, pre)


def without_install_script(argv: Sequence[str]) -> list[str]:
    """`argv` with its leading install script replaced by `exec "$0" "$@"` when that script is exactly
    the compiler's: pip made sure of, the pip lines, then the next program and nothing else. Any other
    script (a command besides pip, an expansion, another separator than `&&`) is left as it is.

    Only for a step whose PATH starts at the environment prepared for `step_requirement(argv)`: there
    each pip line is a no-op, which costs pip's start-up (about half a second) when run.
    """
    argv = list(argv)
    script = _shell_script(argv)
    if script is not None and _is_compiled_install_script(script):
        argv[2] = RUN_NEXT_PROGRAM_AT_ONCE
    return argv


@functools.lru_cache(maxsize=512)
def _is_compiled_install_script(script: str) -> bool:
    try:
        if _script_requirement(script) is None:
            return False
    except UnsupportedInstall:
        return False
    opening = _ENSURE_PIP_BLOCK.match(script)
    rest = script[opening.end():].strip() if opening else ""
    if not rest.endswith(_RUN_NEXT_PROGRAM) or "\n" in rest:
        return False
    body = rest[: -len(_RUN_NEXT_PROGRAM)]
    if "$" in body or "`" in body:
        return False
    lexer = shlex.shlex(body, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return False
    if not tokens or tokens[-1] != "&&":
        return False
    commands: list[list[str]] = [[]]
    for token in tokens[:-1]:
        if token == "&&":
            commands.append([])
        elif token in _SIMPLE_COMMAND_SEPARATORS or set(token) <= set("();<>|&"):
            return False
        else:
            commands[-1].append(token)
    for words in commands:
        while words and _ASSIGNMENT.fullmatch(words[0]):
            words.pop(0)
        if not words or not _is_pip_install(words):
            return False
    return True
