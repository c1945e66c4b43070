"""What the run page makes of stored text: manifests shown as YAML, artifacts previewed as text."""

from __future__ import annotations

import io
import tarfile

from kfp_backend.ui.runs import PREVIEW_BYTES, manifest_yaml, preview_text, step_label


def archive(*files: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_json_manifest_is_shown_as_yaml_and_yaml_as_it_was_given() -> None:
    assert manifest_yaml('{"kind": "Workflow", "spec": {"entrypoint": "main"}}') == (
        "kind: Workflow\nspec:\n  entrypoint: main\n")
    given = "# comment kept\nkind: Workflow\n"
    assert manifest_yaml(given) == given
    assert manifest_yaml("") == ""


def test_small_text_artifacts_are_previewed_and_others_say_why_not() -> None:
    assert preview_text(archive(("data", b"line 1\nline 2\n"))) == ("line 1\nline 2\n", "")
    assert preview_text(archive(("big", b"x" * (PREVIEW_BYTES + 1))))[0] is None
    assert preview_text(archive(("bin", b"\xff\xfe\x00")))[1].startswith("binary")
    assert preview_text(b"not a tar at all")[1].startswith("not an archive")
    assert preview_text(archive())[1] == "the artifact holds no file"


def test_the_step_list_names_loop_items_as_the_graph_does() -> None:
    assert step_label("n1", {"name": "wf.for-loop-1(0:small).train", "displayName": "train"}) == "train(0:small)"
    assert step_label("n2", {"name": "wf.outer(1).inner(2:b).step", "displayName": "step"}) == "step(2:b)"
    assert step_label("n3", {"name": "wf.flaky(0)", "displayName": "flaky(0)"}) == "flaky(0)"
    assert step_label("n4", {"name": "wf.prepare", "displayName": "prepare"}) == "prepare"
    assert step_label("n5", {}) == "n5"
