from __future__ import annotations

import json

import pytest

from framework.store.file import FileStore, StoreError


def test_framework_id_survives_a_new_store_on_the_same_directory(tmp_path):
    store = FileStore(tmp_path / "state")
    assert store.framework_id() is None
    store.set_framework_id("abc-0001")
    assert FileStore(tmp_path / "state").framework_id() == "abc-0001"


def test_forgetting_the_framework_id_is_durable(tmp_path):
    store = FileStore(tmp_path)
    store.set_framework_id("abc-0001")
    store.forget_framework_id()
    assert FileStore(tmp_path).framework_id() is None


def test_a_write_leaves_no_temporary_files_behind(tmp_path):
    store = FileStore(tmp_path)
    for n in range(5):
        store.put("n", n)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert json.loads((tmp_path / "state.json").read_text()) == {"n": 4}


def test_a_corrupt_state_file_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"state\.json.*not valid JSON"):
        FileStore(tmp_path)


def test_a_state_file_that_is_not_an_object_is_rejected(tmp_path):
    (tmp_path / "state.json").write_text("[1, 2]")
    with pytest.raises(StoreError, match="expected a JSON object"):
        FileStore(tmp_path)


def test_an_unwritable_location_is_an_error_naming_the_file(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(StoreError, match=r"not-a-directory/state\.json: cannot read"):
        FileStore(blocker)
