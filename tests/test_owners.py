"""Owners and visitors (otter/app/owners.py): who is who, every event guarded or explicitly open to visitors, a
visitor firing every event through the queue changes nothing, and the data folder's files are never served."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from servers import free_port, queue_call, upload

from conftest import make_small_set, shape_image
from otter.app import curate
from otter.app.owners import Access, RefuseFolders, access_from_env, allowed_for_visitors, is_guarded
from otter.app.ui import build_app, launch

# ------------------------------------------------------------------------------------------- who is who


@pytest.mark.parametrize(
    ("env", "server_name", "mode", "owners"),
    [
        ({}, None, "local", set()),
        ({"GRADIO_SERVER_NAME": "127.0.0.1"}, None, "local", set()),
        ({}, "::1", "local", set()),
        ({"GRADIO_SERVER_NAME": "0.0.0.0"}, None, "visitors", set()),
        ({"GRADIO_SERVER_NAME": "0.0.0.0", "OTTER_TRUST_NETWORK": "1"}, None, "trusted", set()),
        ({"SPACE_ID": "ann/otters", "SPACE_AUTHOR_NAME": "Ann"}, "0.0.0.0", "space", {"ann"}),
        ({"SPACE_ID": "org/otters", "SPACE_AUTHOR_NAME": "org", "OTTER_OWNERS": "ann, Bob"}, None, "space", {"ann", "bob"}),
        ({"OTTER_AUTH": "ann:pw1,bob:pw:2"}, "0.0.0.0", "auth", {"ann", "bob"}),
        ({"OTTER_AUTH": "ann:pw1,bob:pw2", "OTTER_OWNERS": "ann"}, None, "auth", {"ann"}),
    ],
)
def test_who_is_an_owner_comes_from_where_the_app_runs(env, server_name, mode, owners):
    access = access_from_env(env, server_name)
    assert access.mode == access.mode and access.mode == mode
    assert set(access.owners) == owners
    assert access.startup_line().startswith("otter: ")


def test_share_link_makes_everyone_a_visitor_and_says_how_to_become_an_owner():
    access = access_from_env({}, "127.0.0.1", share=True)
    assert access.mode == "visitors" and not access.is_owner(None)
    assert "OTTER_AUTH" in access.startup_line()


def test_auth_passwords_may_hold_colons_but_a_user_needs_one():
    assert access_from_env({"OTTER_AUTH": "ann:a:b"}).logins == (("ann", "a:b"),)
    with pytest.raises(ValueError, match="not user:password"):
        access_from_env({"OTTER_AUTH": "ann"})


class FakeRequest:
    def __init__(self, username=None, session=None):
        self.username = username
        self.request = type("R", (), {"scope": {"session": session or {}}})()


def test_space_owner_is_read_from_the_signed_in_profile_and_expired_sign_ins_are_visitors():
    import time

    access = Access("space", frozenset({"ann"}))

    def signed(name, expires):
        return FakeRequest(session={"oauth_info": {"userinfo": {"preferred_username": name}, "expires_at": expires}})

    assert access.is_owner(signed("Ann", time.time() + 60))
    assert not access.is_owner(signed("bob", time.time() + 60))
    assert not access.is_owner(signed("ann", time.time() - 1))
    assert not access.is_owner(FakeRequest(username="ann"))  # a Gradio login is not a Hugging Face sign-in
    assert Access("auth", frozenset({"ann"})).is_owner(FakeRequest(username="ann"))
    assert not Access("auth", frozenset({"ann"})).is_owner(None)


def test_refuse_folders_covers_encodings_and_dot_dots(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    refuse = RefuseFolders(None, [data])
    for path in (
        f"/gradio_api/file={data}/index.csv",
        f"/gradio_api/file={data}/.otter/x",
        f"/gradio_api/file={tmp_path}/other/../data/sea/a.jpg",
        f"/gradio_api/file/{data}/sea/a.jpg",
        f"/gradio_api/file=%2F{str(data)[1:]}%2Fsea%2Fa.jpg",
        f"/gradio_api/file={data}",
    ):
        assert refuse.refused(path), path
    assert not refuse.refused(f"/gradio_api/file={tmp_path}/data2/a.jpg")
    assert not refuse.refused("/gradio_api/file=/tmp/gradio/abc/a.jpg")


# ------------------------------------------------------------------------------------------- the guard

# Every event a visitor may fire, by its function's name and trigger: Predict and what the page needs to show it.
VISITORS_MAY = {
    ("wrapper", "click"),  # the /predict API (friendly(partial(predict_api)))
    ("on_image", "change"),  # the photo, and the model picker
    ("<lambda>", "clear"),
    ("on_files", "change"),  # many photos at once
    ("update", "change"),  # "show where the model looked": photo, picker, checkbox
    ("update", "input"),
    ("explain_clicked", "select"),  # a class clicked in Predict's answer: where the model looked for it
    ("picker_view", "load"),  # the model picker (owners only)
    ("role_view", "load"),  # the owner's tools, or the line that says how to get them
}


def events(demo):
    """(fn_index, function, trigger) of every event of the app's own config."""
    config = demo.get_config_file()
    out = []
    for dep in config["dependencies"]:
        block_fn = demo.fns[dep["id"]]
        triggers = {t[1] for t in dep["targets"]} or {"load"}
        out.append((dep["id"], block_fn.fn, triggers))
    return out


@pytest.mark.parametrize("access", [Access("visitors"), Access("space", frozenset({"ann"}))])
def test_every_event_is_guarded_or_open_to_visitors_by_name(tmp_path, access, fixed_oauth):
    demo = build_app(tmp_path / "data", tmp_path / "models", access=access)
    open_events = set()
    found = events(demo)
    assert len(found) > 60  # the whole app
    for fn_index, fn, triggers in found:
        if fn is None:
            continue  # a browser-only event: nothing runs on the server
        if allowed_for_visitors(fn):
            open_events |= {(getattr(fn, "__name__", "?"), t) for t in triggers if not hasattr(fn, "__self__")}
            continue
        assert is_guarded(fn), f"event {fn_index} ({getattr(fn, '__name__', fn)} on {triggers}) is neither guarded nor open"
    assert open_events == VISITORS_MAY


def test_the_page_a_visitor_gets_names_no_class_and_no_file(tmp_path):
    import json

    (tmp_path / "data" / "secretclass").mkdir(parents=True)
    shape_image("disc", 1).save(tmp_path / "data" / "secretclass" / "secretfile.png")
    config = json.dumps(
        build_app(tmp_path / "data", tmp_path / "models", access=Access("visitors")).get_config_file(), default=str
    )
    assert "secret" not in config
    local = json.dumps(build_app(tmp_path / "data", tmp_path / "models", access=Access("local")).get_config_file(), default=str)
    assert "secretclass" in local  # the same app on your machine shows them from the start


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file and folder under `folders` (hidden ones included), with the hash of each file's bytes."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


@contextmanager
def app_server(data: Path, models: Path, access: Access, **kwargs):
    demo = build_app(data, models, access=access)
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def plausible(component: dict, files: list[dict]):
    """A value a page could send for a component: class names, ticked confirmations, uploaded images."""
    kind, props = component["type"], component.get("props", {})
    if kind == "image":
        return files[0]
    if kind == "file":
        return files if props.get("file_count") == "multiple" else files[0]
    if kind == "checkbox":
        return True
    if kind == "textbox" or (kind == "dropdown" and props.get("allow_custom_value")):
        return "river"
    if kind in ("radio", "dropdown"):  # Gradio refuses a value outside the choices before any handler runs
        choices = props.get("choices") or [(None, None)]
        return choices[0][1] if isinstance(choices[0], (list, tuple)) else choices[0]
    if kind == "state":
        return None
    return props.get("value")


@pytest.fixture
def visitor_app(tiny_trained, tmp_path):
    data = make_small_set(tmp_path / "data", per_class=3, size=48)
    shutil.copytree(tiny_trained[0], tmp_path / "models" / "tiny")
    shutil.copytree(tiny_trained[0], tmp_path / "models" / "other")
    curate.delete(data, [f"sea/{sorted((data / 'sea').iterdir())[0].name}"])  # something in the trash to restore
    with app_server(data, tmp_path / "models", Access("visitors")) as (demo, url):
        yield {"demo": demo, "url": url, "data": data, "models": tmp_path / "models"}


def fire_everything(demo, url: str, http, files: list[dict], session: str, only=None) -> dict[int, dict]:
    config = demo.get_config_file()
    components = {c["id"]: c for c in config["components"]}
    answers = {}
    for dep in config["dependencies"]:
        fn, triggers = demo.fns[dep["id"]].fn, {t[1] for t in dep["targets"]}
        if fn is None or (only and not (triggers & only)):
            continue
        data = [plausible(components[i], files) for i in dep["inputs"]]
        event_data = {"index": 0, "value": "river", "selected": True, "key": "1"}
        trigger = dep["targets"][0][0] if dep["targets"] else None
        answers[dep["id"]] = queue_call(http, url, dep["id"], data, session, event_data, trigger)
    return answers


def test_a_visitor_firing_every_event_changes_nothing_and_predict_still_answers(visitor_app, otters_dir):
    from gradio_client import Client, handle_file

    from otter.model.jobs import running_jobs

    demo, url = visitor_app["demo"], visitor_app["url"]
    before = snapshot(visitor_app["data"], visitor_app["models"])
    job_before = demo.otter_context.trainer.job()  # the last job of this process (other tests' ones included)
    photo = sorted((otters_dir / "sea").glob("*.jpg"))[0]
    with httpx.Client(timeout=120) as http:
        files = upload(http, url, [photo, sorted((otters_dir / "river").glob("*.jpg"))[0]])
        # One session fires everything; another first forges every selection (a click on the first image of
        # each gallery and table), then fires everything, so the buttons would act on a selection.
        answers = fire_everything(demo, url, http, files, uuid.uuid4().hex)
        forged = uuid.uuid4().hex
        fire_everything(demo, url, http, files, forged, only={"select"})
        answers_after_forging = fire_everything(demo, url, http, files, forged)
    for got in (answers, answers_after_forging):
        for fn_index, msg in got.items():
            block_fn = demo.fns[fn_index]
            if not is_guarded(block_fn.fn):
                continue
            quiet = any(t in ("load", "tick") for _, t in block_fn.targets)
            if quiet:  # page loads and timers: nothing shown, nothing run
                assert msg["success"], (fn_index, msg)
            else:
                assert not msg["success"], (fn_index, block_fn.name, msg)
                assert msg["output"].get("error") == Access("visitors").refusal(), (fn_index, block_fn.name, msg)
    assert len(answers) > 60
    assert snapshot(visitor_app["data"], visitor_app["models"]) == before
    assert not running_jobs() and demo.otter_context.trainer.job() is job_before  # no training, audit or embeddings
    out = Client(url, verbose=False).predict(handle_file(str(photo)), api_name="/predict")
    assert out["label"] in ("river", "sea") or out["label"].startswith("Not sure")


# ------------------------------------------------------------------------------------------------ files


def test_no_file_of_the_data_folder_is_served_but_an_owner_sees_the_gallery(tiny_trained, tmp_path):
    data = make_small_set(tmp_path / "data", per_class=3, size=48)
    shutil.copytree(tiny_trained[0], tmp_path / "models" / "tiny")
    first = sorted((data / "sea").iterdir())[0]
    curate.delete(data, [f"sea/{first.name}"])
    hidden = [p for p in data.rglob("*") if p.is_file()]
    assert any(".trash" in p.parts for p in hidden) and any(p.name == "index.csv" or ".otter" in p.parts for p in hidden)
    with app_server(data, tmp_path / "models", Access("local")) as (demo, url), httpx.Client(timeout=60) as http:
        for p in [*hidden, tmp_path / "models" / "tiny" / "meta.json"]:
            for route in (f"file={p}", f"file/{p}", f"file={p.parent}/../{p.parent.name}/{p.name}"):
                r = http.get(url + "gradio_api/" + route)
                assert r.status_code == 403, (route, r.status_code)
        # The owner's page: the Curate tab's refresh shows the class's images, served from Gradio's cache.
        config = demo.get_config_file()
        load = next(d for d in config["dependencies"] if demo.fns[d["id"]].name == "on_load" and d["inputs"])
        msg = queue_call(http, url, load["id"], [None], uuid.uuid4().hex)
        assert msg["success"], msg
        shown = [item["image"]["url"] for out in msg["output"]["data"] for item in gallery_items(out)]
        assert shown
        for link in shown:
            assert str(data) not in link
            r = http.get(link)
            assert r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff"


def gallery_items(output) -> list[dict]:
    """The items of a gallery update in an event's output (nothing for other outputs)."""
    value = output.get("value") if isinstance(output, dict) else None
    if isinstance(value, list) and value and isinstance(value[0], dict) and "image" in value[0]:
        return value
    return []
