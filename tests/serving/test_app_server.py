"""apps/app.py served on 127.0.0.1 and called over HTTP with gradio_client.

One server for the module (`tests.app_support.running_app` over the small
`app_repo` model): concurrent classify requests, bad uploads answered with
named messages, album summaries that skip bad photos, retrieval, the cluster
browser and Gradio's upload size limit.
"""

import concurrent.futures
import importlib
import io
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
pytest.importorskip("cv2")
pytest.importorskip("gradio_client")

import httpx  # noqa: E402  (a gradio_client dependency)
from gradio_client import Client, handle_file  # noqa: E402

from keras_sgm.data.expressions import FERPLUS_CLASSES  # noqa: E402
from keras_sgm.serving import faces  # noqa: E402
from keras_sgm.serving.drawing import BOX_COLOURS  # noqa: E402
from tests.app_support import running_app  # noqa: E402

DETECT, WHOLE = "Detect faces (OpenCV)", "The photo is one face crop"
WARNING = "⚠️"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def server(app_repo):
    """The app's URL (http://127.0.0.1:PORT/), 4 requests at once, 64 waiting at most."""
    with running_app(app_repo[0], concurrency=4, queue_size=64) as url:
        assert url.startswith("http://127.0.0.1:")
        yield url


def _client(url, directory):
    """A client of the app; `directory` False: output files are not downloaded."""
    download = False if directory is False else str(directory)
    return Client(url, verbose=False, analytics_enabled=False, download_files=download)


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    c = _client(server, tmp_path_factory.mktemp("downloads"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def face_paths(app_examples):
    """{expression: path} of the example face crops (192 x 192 gray PNGs)."""
    paths = {p.stem: p for p in app_examples["faces"]}
    assert sorted(paths) == sorted(FERPLUS_CLASSES)
    return paths


def classify(client, path, mode=DETECT):
    return client.predict(
        None if path is None else handle_file(str(path)), None, mode, api_name="/classify"
    )


def retrieve(client, path, mode=WHOLE, k=8, which=1):
    return client.predict(handle_file(str(path)), None, mode, k, which, api_name="/retrieve")


def summarize(client, paths, k=8, mode=WHOLE):
    return client.predict([handle_file(str(p)) for p in paths], k, mode, api_name="/summarize")


def check_classified(result, name, n_faces):
    """Assert a classify answer for `n_faces` faces of `name`; return its comparable part."""
    boxed, label, table, status = result
    assert not status.startswith(WARNING), status
    assert status.startswith(f"- {n_faces} face(s) in {name}. Face 1: **"), status
    rows = table["data"]
    assert table["headers"] == [
        "face",
        "Bayes class",
        "probability",
        "confidence",
        "kNN vote",
        "votes (K)",
    ]
    assert [row[0] for row in rows] == list(range(1, n_faces + 1))
    for row in rows:
        # a face unlike every known expression (the model's Gaussian score too low) is rejected
        rejected = row[3] == "rejected"
        assert (row[1] == "no clear expression") if rejected else (row[1] in FERPLUS_CLASSES)
        assert row[4] in FERPLUS_CLASSES
        assert 0.0 <= row[2] <= 1.0 and row[3] in ("clear", "uncertain", "rejected")
        votes = [int(v.rsplit(" ", 1)[1]) for v in row[5].split(", ")]
        assert sum(votes) == 11, row  # K = 11 neighbours, all voting
    # One image comes back, the photo with a box and caption drawn per face, in the face's
    # colour (PNG: exact); the next face's colour is nowhere (the grey test photos lack them).
    shown = _shown(boxed)
    drawn = [bool(np.all(shown == colour, axis=-1).any()) for colour in BOX_COLOURS]
    assert drawn == [i < n_faces for i in range(len(BOX_COLOURS))], drawn
    unsure = [str(r[0]) for r in rows if r[3] == "uncertain"]
    assert ("Uncertain: face(s) " + ", ".join(unsure) in status) == bool(unsure), status
    rejected = [str(r[0]) for r in rows[1:] if r[3] == "rejected"]  # face 1: the first line
    assert ("No clear expression: face(s) " + ", ".join(rejected) in status) == bool(rejected)
    assert f"Face 1: **{rows[0][1]}**" in status
    # the posterior is shown for every face; a rejected face's answer is the table's
    assert label["label"] in FERPLUS_CLASSES
    assert rows[0][3] == "rejected" or label["label"] == rows[0][1]
    confidences = [c["confidence"] for c in label["confidences"]]
    assert len(confidences) == len(FERPLUS_CLASSES) and sum(confidences) == pytest.approx(1.0)
    assert confidences == sorted(confidences, reverse=True)
    assert round(confidences[0], 4) == rows[0][2]
    return (
        tuple(map(tuple, rows)),
        tuple((c["label"], c["confidence"]) for c in label["confidences"]),
        status,
        shown.shape,
    )


def check_refused(result, name, *fragments):
    """Assert an answer with empty outputs and a warning naming `name` and each fragment."""
    *outputs, status = result
    assert status.startswith(WARNING), status
    assert name in status, status
    for fragment in fragments:
        assert fragment in status, status
    for output in outputs:
        if isinstance(output, dict) and "data" in output:  # a Dataframe
            assert output["data"] == [], output
        else:
            assert not output, output  # None, {} or []
    return status


def _shown(boxed):
    """The pixels of the classify answer's image: a downloaded path, or a file's URL."""
    if isinstance(boxed, dict):
        content = httpx.get(boxed["url"], timeout=60).raise_for_status().content
        with Image.open(io.BytesIO(content)) as image:
            return np.asarray(image.convert("RGB"))
    with Image.open(boxed) as image:
        return np.asarray(image.convert("RGB"))


# ----------------------------------------------------------------- 1. load
def _download(url, size):
    """Fetch one output image over HTTP; assert it is whole and `size` pixels."""
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200, url
    with Image.open(io.BytesIO(response.content)) as image:
        image.load()
        assert image.size == size, url


def test_sixty_concurrent_classify_requests_are_all_answered_with_their_own_files(
    server, client, app_examples, face_paths
):
    inputs = {
        "group": (app_examples["group"], DETECT, 3),
        "happiness": (face_paths["happiness"], WHOLE, 1),
        "surprise": (face_paths["surprise"], WHOLE, 1),
        "anger": (face_paths["anger"], WHOLE, 1),
    }
    sizes = {}
    for key, (path, _, _) in inputs.items():
        with Image.open(path) as source:
            sizes[key] = source.size
    # Answers one at a time first: what every concurrent answer must equal.
    expected = {
        key: check_classified(classify(client, path, mode), path.name, n)
        for key, (path, mode, n) in inputs.items()
    }
    keys = sorted(inputs)
    n_threads, per_thread = 15, 4
    jobs = [[keys[(t + i) % len(keys)] for i in range(per_thread)] for t in range(n_threads)]

    def user(job_keys):
        # One client (session) per simulated user; each downloads its answer's images at
        # once, while the other users' requests (the same photos) are being answered.
        own = _client(server, False)
        try:
            out = []
            for key in job_keys:
                path, mode, _ = inputs[key]
                began = time.monotonic()
                job = own.submit(handle_file(str(path)), None, mode, api_name="/classify")
                result = job.result(timeout=180)
                urls = (result[0]["url"],)  # the boxed photo: one image of the photo's size
                for url in urls:
                    _download(url, sizes[key])
                out.append((key, result, urls, time.monotonic() - began))
            return out
        finally:
            own.close()

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n_threads) as pool:
        futures = [pool.submit(user, job) for job in jobs]
        _, pending = concurrent.futures.wait(futures, timeout=420)
    elapsed = time.monotonic() - start
    assert not pending, f"{len(pending)} of {n_threads} users unanswered after {elapsed:.0f} s"
    answers = [answer for future in futures for answer in future.result()]  # raises a failure
    assert len(answers) == n_threads * per_thread == 60
    assert sorted(key for key, *_ in answers) == sorted(k for job in jobs for k in job)
    for key, result, urls, _ in answers:
        path, _, n = inputs[key]
        assert check_classified(result, path.name, n) == expected[key], key
        assert all(url.startswith(server) for url in urls), urls
    # Every response has files of its own, even for the same photo.
    every_url = [url for *_, urls, _ in answers for url in urls]
    assert len(set(every_url)) == len(every_url)
    seconds = sorted(t for *_, t in answers)
    print(
        f"60 concurrent classify requests: p50 {np.percentile(seconds, 50):.2f} s, "
        f"p95 {np.percentile(seconds, 95):.2f} s (reported, not asserted)"
    )


# ------------------------------------------------------------ 2. bad uploads
def _gray_face(face_paths, name="happiness"):
    with Image.open(face_paths[name]) as image:
        return np.asarray(image.convert("L"))


def _jpeg_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _make(case, directory, face_paths):
    """`(upload path, path of an equivalent plain photo or None)` for a bad-upload case."""
    face = _gray_face(face_paths)
    if case == "empty":
        path = directory / "empty.jpg"
        path.write_bytes(b"")
        return path, None
    if case == "text":
        path = directory / "notes.jpg"
        path.write_text("Shopping list: eggs, milk, bread.\n")
        return path, None
    if case == "truncated":
        data = _jpeg_bytes(face)
        path = directory / "half.jpg"
        path.write_bytes(data[: len(data) // 2])
        return path, None
    if case == "huge":
        path = directory / "huge.png"  # 100 MP of one colour: about 30 kB on disk
        Image.new("1", (10_000, 10_000), 1).save(path)
        assert path.stat().st_size < 200_000
        return path, None
    if case == "bomb":
        path = directory / "bomb.png"  # 400 MP: beyond Pillow's own bomb limit too
        Image.new("1", (20_000, 20_000), 0).save(path)
        return path, None
    if case == "rgba":
        rgba = np.dstack([np.repeat(face[..., None], 3, axis=-1), np.full_like(face, 255)])
        rgba[:16, :, 3] = 0  # a transparent band at the top
        path = directory / "cutout.png"
        Image.fromarray(rgba, "RGBA").save(path)
        flat = rgba[..., :3].copy()
        flat[:16] = 255  # what the band becomes: white
        same = directory / "cutout_on_white.png"
        Image.fromarray(flat).save(same)
        return path, same
    if case == "gray":
        path = directory / "gray.png"
        Image.fromarray(face, "L").save(path)
        same = directory / "gray_as_rgb.png"
        Image.fromarray(np.repeat(face[..., None], 3, axis=-1)).save(same)
        return path, same
    if case == "animated":
        frames = [Image.fromarray(_gray_face(face_paths, n), "L") for n in ("happiness", "anger")]
        frames.append(Image.fromarray(255 - face, "L"))
        path = directory / "animated.gif"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0)
        with Image.open(path) as image:
            assert image.n_frames == 3
        return path, face_paths["happiness"]  # the first frame, losslessly (256 grays)
    if case == "no_face":
        path = directory / "blank.png"
        Image.new("RGB", (320, 240), (128, 128, 128)).save(path)
        return path, None
    raise AssertionError(case)


BAD_UPLOADS = [
    pytest.param("empty", DETECT, ["is empty (0 bytes)"], id="empty-file"),
    pytest.param("text", DETECT, ["is not an image", "b'Shopping lis'"], id="text-as-jpg"),
    pytest.param("truncated", DETECT, ["is damaged and cannot be decoded"], id="truncated-jpeg"),
    pytest.param(
        "huge", DETECT, ["10000 x 10000 pixels (100.0 MP)", "the limit is 40.0 MP"], id="100MP"
    ),
    pytest.param(
        "bomb", DETECT, ["too large to decode safely (400.0 MP)", "limit is 40.0 MP"], id="400MP"
    ),
    pytest.param(
        "no_face", DETECT, ["No face found in blank.png", f"choose '{WHOLE}'"], id="no-face"
    ),
]

GOOD_ODD_UPLOADS = [
    pytest.param("rgba", ["cutout.png has transparent pixels; they were put on white."], id="rgba"),
    pytest.param("gray", [], id="grayscale"),
    pytest.param(
        "animated",
        ["animated.gif is animated (3 frames); its first frame was used."],
        id="animated-gif",
    ),
]


@pytest.fixture
def still_serving(client, face_paths):
    """After the test: a good request is still answered with a result."""
    yield
    result = classify(client, face_paths["neutral"], WHOLE)
    check_classified(result, "neutral.png", 1)


@pytest.mark.parametrize(("case", "mode", "fragments"), BAD_UPLOADS)
def test_bad_upload_is_refused_with_a_named_message(
    client, face_paths, tmp_path, still_serving, case, mode, fragments
):
    path, _ = _make(case, tmp_path, face_paths)
    result = classify(client, path, mode)
    if case == "no_face":  # a readable photo: shown back, with no box on it
        boxed, *result = result
        assert Path(boxed).is_file()
        with Image.open(boxed) as shown:
            assert shown.size == (320, 240)
            assert not np.all(np.asarray(shown.convert("RGB")) == BOX_COLOURS[0], axis=-1).any()
    status = check_refused(result, path.name, *fragments)
    assert "\n" not in status  # one message, not a traceback


@pytest.mark.parametrize(("case", "notes"), GOOD_ODD_UPLOADS)
def test_odd_but_usable_upload_is_classified_with_a_note(
    client, face_paths, tmp_path, still_serving, case, notes
):
    path, same = _make(case, tmp_path, face_paths)
    answer = check_classified(classify(client, path, WHOLE), path.name, 1)
    status = answer[2]
    assert status.split("\n")[1:] == [f"- {note}" for note in notes]
    # The model saw what the note says: the same pixels as the plain photo.
    plain = check_classified(classify(client, same, WHOLE), same.name, 1)
    assert answer[:2] == plain[:2]


def test_every_endpoint_names_its_outputs_and_the_webcam_is_optional(client, face_paths):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(info) >= {"/classify", "/retrieve", "/browse", "/summarize"}
    for name, endpoint in info.items():
        labels = [r["label"] for r in endpoint["returns"]]
        assert not [x for x in labels if x.startswith("value_")], (name, labels)
    for name in ("/classify", "/retrieve"):
        webcam = [p for p in info[name]["parameters"] if p["parameter_name"] == "webcam"]
        assert webcam and webcam[0]["parameter_has_default"], name
    # so an API user passes the photo alone
    result = client.predict(handle_file(str(face_paths["happiness"])), api_name="/classify")
    check_classified(result, "happiness.png", 1)


def test_a_synthetic_model_says_so_at_the_top(app_repo):
    from tests.app_support import app_module

    app = app_module()
    engine = app.load_engine(str(app_repo[0]))
    banner = app.synthetic_banner(engine)
    assert "trained on synthetic faces" in banner and "mean nothing" in banner
    blocks = app.build_app(engine)
    first = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None))
    assert first.elem_id == "synthetic-warning"  # the first thing on the page
    engine.trained_on = "ferplus"
    assert app.synthetic_banner(engine) == ""


def test_without_gradio_the_app_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` fails as if uninstalled
    for name in ("keras_sgm.serving.app", "keras_sgm.serving.response_files"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=r"needs Gradio: pip install 'keras-sgm\[app\]'"):
        importlib.import_module("keras_sgm.serving.app")


def test_no_upload_and_webcam_photo(client, face_paths, still_serving):
    status = check_refused(classify(client, None), "", "Upload a photo or take one")
    assert status == f"{WARNING} Upload a photo or take one with the webcam first."
    # The webcam input (an Image component) takes the same photo, named "webcam photo".
    result = client.predict(
        None, handle_file(str(face_paths["happiness"])), WHOLE, api_name="/classify"
    )
    webcam = check_classified(result, "webcam photo", 1)
    upload = check_classified(classify(client, face_paths["happiness"], WHOLE), "happiness.png", 1)
    assert webcam[:2] == upload[:2]


# ---------------------------------------------------------------- 3. album
def _gallery_captions(gallery):
    for item in gallery:
        assert item["image"] and item["caption"], item
    return [item["caption"].split(" · ") for item in gallery]


def test_summarize_skips_bad_photos_and_summarizes_the_rest(
    client, app_examples, face_paths, tmp_path, still_serving
):
    good = app_examples["album"][:5]
    bad = [_make(case, tmp_path, face_paths)[0] for case in ("empty", "text", "truncated", "huge")]
    animated = _make("animated", tmp_path, face_paths)[0]
    album = [bad[0], *good[:3], bad[1], animated, bad[2], *good[3:], bad[3]]
    gallery, status = summarize(client, album, k=4, mode=WHOLE)
    assert not status.startswith(WARNING), status
    lines = status.split("\n")
    assert lines[0] == (
        f"- 4 faces chosen from 6 in {len(album)} photo(s): the medoids of EM groups, "
        "largest group first."
    )
    expected = [
        "- Skipped: empty.jpg is empty (0 bytes): upload an image file.",
        "- Skipped: notes.jpg is not an image that can be read",
        "- animated.gif is animated (3 frames); its first frame was used.",
        "- Skipped: half.jpg is damaged and cannot be decoded",
        "- Skipped: huge.png is 10000 x 10000 pixels (100.0 MP); the limit is 40.0 MP",
    ]  # in album order
    assert len(lines) == 1 + len(expected), status
    for line, start in zip(lines[1:], expected):
        assert line.startswith(start), (line, start)
    captions = _gallery_captions(gallery)
    assert len(captions) == 4
    sources = [source for source, _ in captions]
    assert len(set(sources)) == 4
    assert set(sources) <= {p.name for p in good} | {"animated.gif"}
    assert all(label in FERPLUS_CLASSES for _, label in captions)


def test_summarize_group_photo_detects_faces_and_lowers_k(
    client, app_examples, face_paths, tmp_path
):
    blank = _make("no_face", tmp_path, face_paths)[0]
    gallery, status = summarize(client, [app_examples["group"], blank], k=5, mode=DETECT)
    assert status.split("\n") == [
        "- 3 faces chosen from 3 in 2 photo(s): the medoids of EM groups, largest group first.",
        "- Skipped: no face found in blank.png.",
        "- Only 3 face(s) found: showing all of them, not 5.",
    ]
    sources = sorted(source for source, _ in _gallery_captions(gallery))
    assert sources == [f"group_photo.png #{i}" for i in (1, 2, 3)]


def test_summarize_with_only_bad_photos_says_why(client, face_paths, tmp_path):
    bad = [_make(case, tmp_path, face_paths)[0] for case in ("empty", "text")]
    status = check_refused(summarize(client, bad, k=3), "empty.jpg", "No face found in the album.")
    assert "Skipped: empty.jpg is empty" in status
    assert "Skipped: notes.jpg is not an image" in status
    assert summarize(client, [], k=3) == ([], f"{WARNING} Upload some photos first.")


# ------------------------------------------------------------- 4. retrieve
def test_retrieve_returns_k_nearest_sorted_and_finds_a_gallery_face_itself(
    client, app_repo, tmp_path
):
    _, images, labels = app_repo
    row = 37
    path = tmp_path / "gallery_37.png"  # the gallery's own 48 x 48 image, exactly
    Image.fromarray(np.round(images[row, ..., 0] * 255).astype(np.uint8), "L").save(path)
    query, gallery, table, status = retrieve(client, path, WHOLE, k=7)
    name = FERPLUS_CLASSES[labels[row]]
    assert query and status.startswith("- The 7 gallery faces nearest to face 1 ("), status
    assert table["headers"] == ["rank", "label", "distance", "gallery row"]
    rows = table["data"]
    assert [r[0] for r in rows] == list(range(1, 8))
    distances = [r[2] for r in rows]
    assert distances == sorted(distances) and all(d >= 0 for d in distances)
    assert rows[0][3] == row and distances[0] < 1e-2  # its own copy first, at distance ~0
    assert distances[1] > distances[0]
    assert len({r[3] for r in rows}) == 7
    for _, label, _, index in rows:
        assert label == FERPLUS_CLASSES[labels[index]]  # each row's label is its gallery label
    assert rows[0][1] == name
    captions = _gallery_captions(gallery)
    # Captions and table round the same distance separately (3 and more decimals).
    assert [c[0] for c in captions] == [r[1] for r in rows]
    shown = [float(c[1].removeprefix("d = ")) for c in captions]
    np.testing.assert_allclose(shown, [r[2] for r in rows], atol=1.5e-3)


def test_retrieve_face_numbers_and_no_face(client, app_examples, face_paths, tmp_path):
    group = app_examples["group"]
    query, gallery, table, status = retrieve(client, group, DETECT, k=3, which=3)
    assert query and len(gallery) == 3 and len(table["data"]) == 3
    assert status.startswith("- The 3 gallery faces nearest to face 3 ("), status
    check_refused(
        retrieve(client, group, DETECT, k=3, which=4),
        "group_photo.png",
        "holds 3 face(s); choose a face from 1 to 3.",
    )
    status = check_refused(
        retrieve(client, face_paths["happiness"], WHOLE, k=3, which=5), "happiness.png"
    )
    assert status == f"{WARNING} happiness.png holds 1 face(s); choose a face from 1 to 1."
    blank = _make("no_face", tmp_path, face_paths)[0]
    check_refused(
        retrieve(client, blank, DETECT, k=3),
        "blank.png",
        "No face found in blank.png",
        f"If the photo is already a cropped face, choose '{WHOLE}'.",
    )


# --------------------------------------------------------------- browse
def test_browse_shows_the_groups_of_a_class(client, app_repo):
    labels = app_repo[2]
    grid, embedding_map, status = client.predict("happiness", 3, api_name="/browse")
    for path in (grid, embedding_map):
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100
    match = re.match(r"\*\*happiness\*\*: 3 EM groups of the gallery \(sizes ([\d, ]+)\)", status)
    assert match, status
    sizes = [int(s) for s in match.group(1).split(", ")]
    happiness = FERPLUS_CLASSES.index("happiness")
    assert sum(sizes) == int(np.sum(labels == happiness)) and len(sizes) == 3


# ------------------------------------------------------ 5. upload size limit
def test_upload_beyond_max_file_size_is_refused_and_the_app_keeps_serving(
    client, face_paths, tmp_path
):
    assert client.config["max_file_size"] == faces.MAX_BYTES == 20 * 2**20
    big = tmp_path / "big.jpg"
    big.write_bytes(_jpeg_bytes(_gray_face(face_paths)) + bytes(21 * 2**20))
    assert big.stat().st_size > faces.MAX_BYTES
    # gradio_client reads the limit from the config and refuses before sending...
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {faces.MAX_BYTES}"):
        classify(client, big)
    # ...and the server refuses the upload itself: 413, nothing stored.
    with big.open("rb") as f:
        response = httpx.post(
            client.upload_url, files=[("files", (big.name, f, "image/jpeg"))], timeout=60
        )
    assert response.status_code == 413, response.text
    assert f"maximum allowed size of {faces.MAX_BYTES} bytes" in response.text
    # A file of exactly the limit is accepted, and the app reads it whole.
    exact = tmp_path / "exact.jpg"
    data = _jpeg_bytes(_gray_face(face_paths))
    exact.write_bytes(data + bytes(faces.MAX_BYTES - len(data)))  # JPEG, then padding
    assert exact.stat().st_size == faces.MAX_BYTES
    check_classified(classify(client, exact, WHOLE), "exact.jpg", 1)
    check_classified(classify(client, face_paths["happiness"], WHOLE), "happiness.png", 1)
