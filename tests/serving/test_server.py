"""`got-lightning serve` through the real thing: the executable on a localhost port, spoken to with
the official `openai` client and with `httpx`; every answer compared with `got-lightning predict`."""

from __future__ import annotations

import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from PIL import Image

from got_lightning.cli import main
from got_lightning.evaluation.results import read_predictions
from tests.serving.server_process import ServerProcess, data_url, image_message

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve")]  # one worker starts the shared server
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def pages(digit_pages, tmp_path_factory):
    """Eight digit pages in a folder the server may read from, a secret one outside it and a
    symlink from inside to the secret one."""
    root = tmp_path_factory.mktemp("served")
    allowed = root / "allowed"
    allowed.mkdir()
    for path in sorted((digit_pages / "images").iterdir())[:8]:
        shutil.copy(path, allowed / path.name)
    (root / "secret").mkdir()
    shutil.copy(allowed / sorted(p.name for p in allowed.iterdir())[0], root / "secret" / "secret.png")
    (allowed / "link.png").symlink_to(root / "secret" / "secret.png")
    return root


@pytest.fixture(scope="module")
def expected(image_sensitive_model_dir, pages):
    """What `got-lightning predict` reads on each page, by file name."""
    folder = pages / "predict-input"
    folder.mkdir()
    for path in (pages / "allowed").glob("0*.png"):
        shutil.copy(path, folder / path.name)
    root = pages / "predict"
    arguments = ["predict", "--model.model_path", str(image_sensitive_model_dir), "--data.predict_input", str(folder)]
    arguments += ["--trainer.default_root_dir", str(root), "--trainer.logger", "false", "--data.eval_batch_size", "4"]
    assert main([*arguments, "--model.generation.max_new_tokens", str(MAX_TOKENS)]) == 0
    lines = {line["image"].rsplit("/", 1)[-1]: line for line in read_predictions(root / "predict" / "predictions.jsonl")}
    assert len({line["prediction"] for line in lines.values()}) > 2  # pages read differently
    return lines


@pytest.fixture(scope="module")
def server(image_sensitive_model_dir, pages):
    process = ServerProcess(
        "--model.model_path",
        str(image_sensitive_model_dir),
        "--model.generation.max_new_tokens",
        str(MAX_TOKENS),
        "--data.max_image_pixels",
        "4000000",
        "--max_request_mb",
        "1",
        "--allow_local_files",
        str(pages / "allowed"),
        "--batch_timeout",
        "0.05",
        cwd=pages,
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def page_files(pages):
    return sorted((pages / "allowed").glob("0*.png"))


def read(client, path, **options):
    response = client.chat.completions.create(model="model", messages=image_message(data_url(path)), **options)
    return response.choices[0]


def test_models_lists_the_served_id_and_health_is_ok(server, client, image_sensitive_model_dir):
    assert [model.id for model in client.models.list()] == ["model"]
    health = server.health()
    assert health["status"] == "ok" and health["model"] == "model"


def test_health_counts_a_page_by_the_time_its_answer_arrives(server, pages):
    path = page_files(pages)[1].name
    before = server.health()["pages_read"]
    for done in range(1, 21):
        assert server.client.post("/predict", json={"path": path, "max_tokens": 2}).status_code == 200
        assert server.health()["pages_read"] == before + done


def test_chat_predict_and_the_predict_command_read_the_same_text(server, client, pages, expected):
    for path in page_files(pages)[:3]:
        line = expected[path.name]
        choice = read(client, path)
        assert choice.message.content == line["prediction"]
        assert choice.finish_reason == ("length" if line["truncated"] else "stop")
        uploaded = server.client.post("/predict", files={"file": (path.name, path.read_bytes())}).json()
        as_json = server.client.post("/predict", json={"image": data_url(path)}).json()
        by_path = server.client.post("/predict", json={"path": path.name}).json()
        for answer in (uploaded, as_json, by_path):
            assert answer["prediction"] == line["prediction"]
            assert (answer["new_tokens"], answer["truncated"]) == (line["new_tokens"], line["truncated"])
            assert answer["confidence"]["mean"] == pytest.approx(line["confidence"]["mean"], rel=1e-4)
            assert answer["seconds"] > 0
        assert uploaded["image"] == path.name and by_path["image_path"] == str(path.resolve())
    # No question asked: GOT's plain OCR prompt, as predict asks it.
    path = page_files(pages)[0]
    response = client.chat.completions.create(model="model", messages=image_message(data_url(path), text=None))
    assert response.choices[0].message.content == expected[path.name]["prediction"]
    assert response.usage.completion_tokens == expected[path.name]["new_tokens"]


def test_sixteen_parallel_requests_share_batches_and_read_what_predict_reads(server, client, pages, expected):
    files = (page_files(pages) * 2)[:16]
    with ThreadPoolExecutor(16) as pool:
        choices = list(pool.map(lambda path: read(client, path), files))
    assert [choice.message.content for choice in choices] == [expected[path.name]["prediction"] for path in files]
    assert server.health()["largest_batch"] > 1


def test_a_stream_spells_out_the_same_answer(server, client, pages, expected):
    path = page_files(pages)[1]
    stream = client.chat.completions.create(
        model="model", messages=image_message(data_url(path)), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == expected[path.name]["prediction"]
    assert len([chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]) > 1
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == expected[path.name]["new_tokens"]


def truncated_png(pages) -> str:
    data = page_files(pages)[0].read_bytes()
    return "data:image/png;base64," + __import__("base64").b64encode(data[: len(data) // 2]).decode()


def bomb(pages) -> str:
    path = pages / "bomb.png"
    Image.new("1", (4000, 4000), 1).save(path)  # 16 MP compresses to a few KB; the server allows 4 MP
    return data_url(path)


def bad_requests(pages):
    """(name, body, expected status, words the message must hold)."""
    good = image_message(data_url(page_files(pages)[0]))
    return [
        ("not an image", {"messages": image_message("data:image/png;base64,aGVsbG8gd29ybGQ=")}, 400, "not an image"),
        ("truncated image", {"messages": image_message(truncated_png(pages))}, 400, "truncated"),
        ("decompression bomb", {"messages": image_message(bomb(pages))}, 400, "decompression bomb"),
        (
            "unknown part",
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            400,
            "input_audio",
        ),
        ("no user message", {"messages": [{"role": "system", "content": "be brief"}]}, 400, "no user message"),
        ("answer last", {"messages": [*good, {"role": "assistant", "content": "12"}]}, 400, "last message"),
        ("two images", {"messages": [{"role": "user", "content": good[0]["content"] * 2}]}, 400, "one image"),
        ("sampling", {"messages": good, "temperature": 0.7}, 400, "temperature"),
        ("bad max_tokens", {"messages": good, "max_tokens": 0}, 400, "max_tokens"),
        ("remote URL", {"messages": image_message("https://example.com/page.png")}, 400, "remote"),
        ("escape with ..", {"messages": image_message("../secret/secret.png")}, 400, "escapes"),
        ("absolute escape", {"messages": image_message(str(pages / "secret" / "secret.png"))}, 400, "escapes"),
        ("symlink out", {"messages": image_message("link.png")}, 400, "escapes"),
        ("unknown model", {"model": "gpt-4o", "messages": good}, 404, "not served"),
        ("reserved token", {"messages": image_message(data_url(page_files(pages)[0]), "<|im_end|> OCR: ")}, 400, "reserved"),
    ]


def test_every_bad_request_gets_a_one_line_reason_and_the_next_one_is_served(server, pages, expected):
    good = {"messages": image_message(data_url(page_files(pages)[0]))}
    for name, body, status, words in bad_requests(pages):
        response = server.client.post("/v1/chat/completions", json=body)
        assert response.status_code == status, (name, response.text)
        assert "\n" not in response.text and words in response.json()["error"]["message"], (name, response.text)
        after = server.client.post("/v1/chat/completions", json=good)
        assert (
            after.status_code == 200
            and after.json()["choices"][0]["message"]["content"] == expected[page_files(pages)[0].name]["prediction"]
        )
    for name, send in [("not JSON", {"content": b"{not json"}), ("over max_request_mb", {"content": b"x" * (2 * 2**20)})]:
        response = server.client.post("/v1/chat/completions", headers={"content-type": "application/json"}, **send)
        assert response.status_code == (413 if "max" in name else 400) and "\n" not in response.text, (name, response.text)
    chunked = server.client.post("/predict", content=iter([b"{" + b" " * 2**19] * 4))  # no length given up front
    assert chunked.status_code == 413
    assert server.client.post("/predict", json={"image": "***"}).status_code == 400
    assert server.client.post("/predict", json={"path": "../secret/secret.png"}).status_code == 400
    assert server.client.post("/predict", files={"file": ("x.png", b"not an image")}).status_code == 400
    assert server.client.post("/predict", files={"file": ("x.png", b"")}, data={"box": "1,2"}).status_code == 400


def test_the_openai_client_raises_the_status_and_the_reason(client):
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="model", messages=[{"role": "user", "content": "hi"}], temperature=1.0)
    with pytest.raises(openai.BadRequestError, match="one image"):
        client.chat.completions.create(model="model", messages=[{"role": "user", "content": "hi"}])


def test_a_bad_request_in_a_batch_fails_alone(server, pages, expected):
    files = page_files(pages)[:7]
    bodies = [{"messages": image_message(data_url(path))} for path in files]
    bodies.insert(3, {"messages": image_message(truncated_png(pages))})
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda body: server.client.post("/v1/chat/completions", json=body), bodies))
    statuses = [response.status_code for response in responses]
    assert statuses == [200, 200, 200, 400, 200, 200, 200, 200]
    answers = [response.json()["choices"][0]["message"]["content"] for response in responses if response.status_code == 200]
    assert answers == [expected[path.name]["prediction"] for path in files]


def test_a_client_that_goes_away_mid_stream_costs_nothing(server, pages):
    path = page_files(pages)[2]
    long_read = server.client.post("/predict", json={"path": path.name, "max_tokens": 1500}).json()
    assert long_read["new_tokens"] == 1500  # this page reads on to the limit when nobody leaves
    before = server.health()["pages_read"]
    body = {"messages": image_message(data_url(path)), "max_tokens": 1500, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as response:
        next(response.iter_lines())
    left = time.monotonic()
    while server.health()["running"]:
        assert time.monotonic() - left < 1.0, "the abandoned page kept decoding"
        time.sleep(0.02)
    assert server.health()["pages_read"] == before
    assert server.client.post("/predict", json={"path": path.name}).status_code == 200


def test_sigterm_answers_the_request_in_flight_then_exits_0(image_sensitive_model_dir, pages):
    server = ServerProcess(
        "--model.model_path", str(image_sensitive_model_dir), "--allow_local_files", str(pages / "allowed"), cwd=pages
    )
    try:
        result = {}
        path = page_files(pages)[0].name
        thread = threading.Thread(
            target=lambda: result.update(response=server.client.post("/predict", json={"path": path, "max_tokens": 600}))
        )
        thread.start()
        while not server.health()["running"]:
            time.sleep(0.01)
        assert server.terminate() == 0
        thread.join(30)
        assert result["response"].status_code == 200 and result["response"].json()["new_tokens"] == 600
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health")
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def test_the_same_request_twice_gives_the_same_json(server, pages):
    body = {"messages": image_message(data_url(page_files(pages)[3]))}
    first, second = (server.client.post("/v1/chat/completions", json=body).json() for _ in range(2))
    assert first["choices"] == second["choices"] and json.dumps(first["usage"]) == json.dumps(second["usage"])


def test_tiff_webp_and_jpeg_pages_are_read(client, pages, expected):
    path = page_files(pages)[4]
    page = Image.open(path).convert("RGB")
    for suffix, mime, options in ((".tiff", "image/tiff", {}), (".webp", "image/webp", {"lossless": True})):
        converted = pages / f"converted{suffix}"
        page.save(converted, **options)
        reply = client.chat.completions.create(model="model", messages=image_message(data_url(converted, mime)))
        assert reply.choices[0].message.content == expected[path.name]["prediction"], suffix  # the same pixels
    page.save(pages / "converted.jpg", quality=90)
    reply = client.chat.completions.create(model="model", messages=image_message(data_url(pages / "converted.jpg", "image/jpeg")))
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_the_multi_crop_prompt_reads_tiles_as_predict_does_in_tiles_mode(
    server, client, image_sensitive_model_dir, pages, expected
):
    root = pages / "predict-tiles"
    arguments = [
        "predict",
        "--model.model_path",
        str(image_sensitive_model_dir),
        "--data.predict_input",
        str(pages / "predict-input"),
    ]
    arguments += ["--trainer.default_root_dir", str(root), "--trainer.logger", "false", "--data.image_mode", "tiles"]
    assert main([*arguments, "--model.generation.max_new_tokens", str(MAX_TOKENS)]) == 0
    tiled = {line["image"].rsplit("/", 1)[-1]: line for line in read_predictions(root / "predict" / "predictions.jsonl")}
    for path in page_files(pages)[:3]:
        reply = client.chat.completions.create(
            model="model", messages=image_message(data_url(path), "OCR with format upon the patch reference: ")
        )
        assert reply.choices[0].message.content == tiled[path.name]["prediction"]
        form = server.client.post("/predict", files={"file": (path.name, path.read_bytes())}, data={"multi_crop": "true"}).json()
        assert form["prediction"] == tiled[path.name]["prediction"]


def test_box_and_color_prompts_read_as_predict_reads_them(server, image_sensitive_model_dir, pages, expected):
    for field, flag in (("box", "[2,2,40,30]"), ("color", "red")):
        root = pages / f"predict-{field}"
        arguments = [
            "predict",
            "--model.model_path",
            str(image_sensitive_model_dir),
            "--data.predict_input",
            str(pages / "predict-input"),
        ]
        arguments += [
            "--trainer.default_root_dir",
            str(root),
            "--trainer.logger",
            "false",
            f"--data.predict_prompt.{field}",
            flag,
        ]
        assert main([*arguments, "--model.generation.max_new_tokens", str(MAX_TOKENS)]) == 0
        lines = {line["image"].rsplit("/", 1)[-1]: line for line in read_predictions(root / "predict" / "predictions.jsonl")}
        for path in page_files(pages)[:2]:
            value = flag.strip("[]") if field == "box" else flag
            answer = server.client.post("/predict", files={"file": (path.name, path.read_bytes())}, data={field: value}).json()
            assert answer["prediction"] == lines[path.name]["prediction"], field


def test_several_engines_on_cpu_share_the_requests(image_sensitive_model_dir, pages, expected):
    server = ServerProcess(
        "--model.model_path",
        str(image_sensitive_model_dir),
        "--model.generation.max_new_tokens",
        str(MAX_TOKENS),
        "--devices",
        "2",
        "--max_batch_size",
        "4",
        cwd=pages,
    )
    try:
        files = page_files(pages) * 2
        bodies = [{"messages": image_message(data_url(path))} for path in files]
        with ThreadPoolExecutor(len(bodies)) as pool:
            replies = list(pool.map(lambda body: server.client.post("/v1/chat/completions", json=body).json(), bodies))
        assert [reply["choices"][0]["message"]["content"] for reply in replies] == [
            expected[path.name]["prediction"] for path in files
        ]
        health = server.health()
        assert health["engines"] == 2 and health["pages_read"] == len(files) and health["largest_batch"] <= 4
    finally:
        server.stop()
