"""Reading the environment a kfp 2.x step asks for from its command (executor/step_requirements.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kfp_backend.executor.step_requirements import (
    PipInstall,
    UnsupportedInstall,
    step_requirement,
    without_install_script,
)
from tests.step_commands import KFP_VERSION, executor_arguments, install_script, lightweight_command

SOURCE = "def double(x: int) -> int:\n    return 2 * x\n\n"
INDEXES = ["--index-url https://pypi.example/simple", "--extra-index-url https://more.example/simple",
           "--trusted-host pypi.example"]
INDEX_PAIRS = (("--index-url", "https://pypi.example/simple"), ("--extra-index-url", "https://more.example/simple"),
               ("--trusted-host", "pypi.example"))
TYPING_EXTENSIONS = 'typing-extensions>=3.7.4,<5; python_version<"3.9"'


def test_a_lightweight_component_needs_its_kfp_version_without_dependencies() -> None:
    argv = lightweight_command(SOURCE) + executor_arguments("double", {})
    requirement = step_requirement(argv)
    assert requirement is not None
    assert requirement.installs == (PipInstall(("kfp==2.17.3", TYPING_EXTENSIONS), no_deps=True),)
    assert (requirement.kfp_version, requirement.packages) == (KFP_VERSION, ())


def test_packages_to_install_come_first_with_their_indexes_and_dependencies() -> None:
    requirement = step_requirement(lightweight_command(SOURCE, packages=["requests==2.31.0", "numpy"],
                                                       index_options=INDEXES))
    assert requirement is not None
    assert requirement.installs == (
        PipInstall(("numpy", "requests==2.31.0"), INDEX_PAIRS),
        PipInstall(("kfp==2.17.3", TYPING_EXTENSIONS), INDEX_PAIRS, no_deps=True),
    )
    assert (requirement.kfp_version, requirement.packages) == (KFP_VERSION, ("numpy", "requests==2.31.0"))
    assert requirement.installs[0].pip_arguments() == [
        "--index-url", "https://pypi.example/simple", "--extra-index-url", "https://more.example/simple",
        "--trusted-host", "pypi.example", "numpy", "requests==2.31.0",
    ]


def test_packages_without_kfp_when_the_component_does_not_install_it() -> None:
    requirement = step_requirement(lightweight_command(SOURCE, kfp_version=None, packages=["six"]))
    assert requirement is not None
    assert (requirement.kfp_version, requirement.packages) == (None, ("six",))


def test_the_same_set_gives_the_same_key_and_any_difference_another() -> None:
    def key(**options: object) -> str:
        requirement = step_requirement(lightweight_command(SOURCE, **options))  # type: ignore[arg-type]
        assert requirement is not None
        return requirement.key

    assert key(packages=["a", "b==1"]) == key(packages=["b==1", "a"]) == key(packages=["a", "b==1", "a"])
    keys = {key(), key(kfp_version="2.16.0"), key(packages=["a"]), key(packages=["a"], index_options=INDEXES)}
    assert len(keys) == 4


@pytest.mark.parametrize("argv", [
    ["sh", "-c", "echo hello > /tmp/outputs/out/data"],  # a container component
    ["python3", "-m", "pip", "install", "kfp==2.17.3"],  # not run by a shell script
    ["sh", "script.sh", "pip install x"],  # a script file, not -c
    [],
], ids=["container", "bare", "script-file", "empty"])
def test_steps_that_install_nothing_need_no_environment(argv: list[str]) -> None:
    assert step_requirement(argv) is None


def test_only_the_leading_script_counts_not_the_component_source() -> None:
    source = "def f():\n    import subprocess\n    subprocess.run('python3 -m pip install evil', shell=True)\n"
    requirement = step_requirement(lightweight_command(source))
    assert requirement is not None and requirement.packages == ()
    # The same source in a step without pip lines gives no environment.
    assert step_requirement(["sh", "-ec", "python3 -c \"$0\"", source]) is None


@pytest.mark.parametrize("line, installs", [
    ("pip install --index-url=https://i.example/simple -q six", [PipInstall(("six",), (("--index-url",
                                                                                      "https://i.example/simple"),))]),
    ("X=1 Y=2 pip3 install -i https://i.example six --timeout 60 --pre",
     [PipInstall(("six",), (("--index-url", "https://i.example"),), pre=True)]),
    ("python3.11 -m pip install --upgrade --no-cache-dir 'a>=1' ; python3 -m pip install b",
     [PipInstall(("a>=1",)), PipInstall(("b",))]),
    ("python3 -m pip install e > /tmp/pip.log 2>&1", [PipInstall(("e",))]),  # redirections are no requirements
    ("set -e; python -m pip install -f /srv/wheels c # a comment with pip install d",
     [PipInstall(("c",), (("--find-links", "/srv/wheels"),))]),
])
def test_pip_lines_in_other_shapes(line: str, installs: list[PipInstall]) -> None:
    requirement = step_requirement(["sh", "-c", line])
    assert requirement is not None and list(requirement.installs) == installs


def test_a_custom_kfp_package_is_a_package_not_a_version() -> None:
    url = "git+https://github.com/example/pipelines.git#subdirectory=sdk/python"
    requirement = step_requirement(["sh", "-c", f"python3 -m pip install --quiet '{url}' && \"$0\" \"$@\""])
    assert requirement is not None
    assert (requirement.kfp_version, requirement.packages) == (None, (url,))


@pytest.mark.parametrize("line", [
    "python3 -m pip install -r requirements.txt",
    "python3 -m pip install --user six",
    "python3 -m pip install -e ./mypackage",
    "python3 -m pip install ./local.whl",
    "python3 -m pip install --index-url",
])
def test_lines_that_cannot_be_prepared_ahead_are_refused(line: str) -> None:
    with pytest.raises(UnsupportedInstall):
        step_requirement(["sh", "-c", install_script() + line])


@pytest.mark.parametrize("options", [{}, {"packages": ["a", "b==1"]}, {"packages": ["x"], "index_options": INDEXES},
                                     {"kfp_version": None, "packages": ["six"]}])
def test_the_compilers_install_script_can_be_replaced_by_running_the_program(options: dict) -> None:
    argv = lightweight_command(SOURCE, **options) + executor_arguments("double", {})
    assert without_install_script(argv) == [*argv[:2], 'exec "$0" "$@"', *argv[3:]]


@pytest.mark.parametrize("change", [
    lambda script: script.replace(' && "$0"', ' && echo more && "$0"'),  # a command besides pip
    lambda script: script.replace(' && "$0"', ' ; "$0"'),
    lambda script: script.replace("'kfp==2.17.3'", "\"kfp==$(cat /etc/version)\""),
    lambda script: script.replace("'kfp==2.17.3'", "kfp==2.17.3 > /tmp/log"),
    lambda script: script.replace("ensurepip --user", "ensurepip --user || true"),  # another opening
    lambda script: script.replace('"$0" "$@"', '"$0" "$@" --more'),
    lambda script: script + "echo after\n",
], ids=["other-command", "semicolon", "substitution", "redirection", "opening", "arguments", "trailing-line"])
def test_any_other_install_script_is_kept(change: Callable[[str], str]) -> None:
    argv = lightweight_command(SOURCE)
    argv[2] = change(argv[2])
    assert argv[2] != install_script()
    assert without_install_script(argv) == argv


def test_steps_without_an_install_script_are_kept() -> None:
    for argv in (["sh", "-c", "echo hi"], ["python3", "-c", "pass"], lightweight_command(SOURCE)[3:]):
        assert without_install_script(argv) == argv
