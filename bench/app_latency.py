"""The app's classify + retrieve latency (p50 / p95) with a FER+-sized gallery of 28k faces.

Run on demand (not part of the tests); prints the latencies measured in one run:

    python bench/app_latency.py [--gallery 28000] [--requests 50] [--arch fmpnet] [--http]
                                [--runtime keras|onnx|litert]
    python bench/app_latency.py --requests 10 --concurrent 60     # 60 users at once

The model is an untrained `--arch` SGMModel with 8 Gaussians (latency does not
depend on training); the gallery holds `--gallery` embeddings with 48x48
thumbnails. One request = `ExpressionEngine.classify` on the three-face example
photo (face detection, crops, embedding, Bayes posteriors, kNN with K = 11) then
`retrieve` of the 8 gallery faces nearest to face 1. With `--http` the same two
calls also go through a running app on localhost (`/classify` and `/retrieve`
with `gradio_client`, one request at a time), which adds Gradio's queue, the
upload and the result images; so does `/classify` of one face crop (the example
face, taken whole). `--runtime onnx` serves the model's ONNX export with
onnxruntime (`apps/app.py --runtime onnx`) instead of Keras, in a process that, like the
app launched so, runs Keras on NumPy and never imports TensorFlow (the repo and its
export are written by a TensorFlow child process); the script says whether it did.
"""

import argparse
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "keras_sgm/serving/space_template/app.py"
"""The app's launcher: it chooses Keras' backend for a runtime (`choose_backend`)."""


def timed(call, times):
    """The seconds of each of `times` calls of `call()`, one after another."""
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def percentiles(seconds):
    import numpy as np

    ms = 1000 * np.asarray(seconds)
    return f"p50 {np.percentile(ms, 50):7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms"


def make_repo(directory, gallery_size, arch, exports=()):
    import numpy as np

    from keras_sgm import backbones, hub
    from keras_sgm.data.expressions import FERPLUS_CLASSES
    from keras_sgm.model import SGMModel

    rng = np.random.default_rng(0)
    encoder = backbones.get(arch, input_shape=(48, 48, 1), embedding_dim=64)
    model = SGMModel(encoder, class_names=list(FERPLUS_CLASSES))
    model.set_gaussians(rng.normal(size=(8, 64)).astype("float32"), np.arange(8))
    gallery = hub.Gallery(
        rng.normal(size=(gallery_size, 64)).astype("float32"),
        rng.integers(0, 8, gallery_size),
        rng.integers(0, 255, (gallery_size, 48, 48, 1), dtype=np.uint8),
    )
    config = {"dataset": "synthetic_faces"}
    return hub.save_pretrained(model, directory, config=config, gallery=gallery, exports=exports)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=int, default=28_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--arch", default="fmpnet")
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--runtime", default="keras", choices=["keras", "onnx", "litert"])
    parser.add_argument(
        "--concurrent",
        type=int,
        default=0,
        metavar="N",
        help="also send N /classify requests at once from N clients, each downloading its "
        "image (failures counted)",
    )
    parser.add_argument("--write-repo", metavar="DIR", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    # the backend the app's launcher chooses (NumPy when an export serves the model), before
    # anything imports Keras
    runpy.run_path(str(LAUNCHER))["choose_backend"](["--runtime", args.runtime])
    exports = [] if args.runtime == "keras" else [args.runtime]
    if args.write_repo:
        make_repo(Path(args.write_repo), args.gallery, args.arch, exports)
        return

    import keras
    import numpy as np

    from keras_sgm.serving import ExpressionEngine, faces
    from keras_sgm.serving.examples import write_examples

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        if keras.backend.backend() == "tensorflow":
            make_repo(repo, args.gallery, args.arch, exports)
        else:  # exporting needs TensorFlow: a child process writes the repo
            child = [sys.executable, __file__, "--write-repo", str(repo), "--runtime", args.runtime]
            child += ["--gallery", str(args.gallery), "--arch", args.arch]
            env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
            subprocess.run(child, env=env, check=True, stderr=subprocess.DEVNULL)
        engine = ExpressionEngine.from_pretrained(repo, runtime=args.runtime)
        examples = write_examples(Path(tmp) / "examples", engine.detector)
        photo_path = examples["group"]
        face_path = examples["faces"][0]

        def request():
            results = engine.classify(faces.read_photo(photo_path))
            engine.retrieve(results[0].embedding, k=8)
            return len(results)

        assert request() == 3  # warm-up: traces the model and the index
        seconds = timed(request, args.requests)
        print(
            f"gallery {args.gallery} faces, backbone {args.arch}, runtime {args.runtime}, "
            f"{args.requests} requests, a 600x220 photo with 3 faces; Keras on "
            f"{keras.backend.backend()}, TensorFlow imported: {'tensorflow' in sys.modules}"
        )
        print(f"engine classify + retrieve   {percentiles(seconds)}   (target p95 <= 50 ms)")
        photo = faces.read_photo(photo_path)
        found = engine.faces_of(photo)
        crops = np.stack([f.crop for f in found])
        for stage, call in [
            ("face detection (OpenCV)", lambda: engine.faces_of(photo)),
            (f"model ({args.runtime}), 3 crops", lambda: engine._infer(crops)),
        ]:
            print(f"  of which {stage:24s} {percentiles(timed(call, args.requests))}")
        if args.http:
            http_latency(repo, photo_path, face_path, args.requests, args.runtime)
        if args.concurrent:
            concurrent_latency(repo, photo_path, args.concurrent)


def http_latency(repo, photo_path, face_path, requests, runtime="keras"):
    from gradio_client import Client, handle_file

    sys.path.insert(0, str(ROOT))
    from tests.app_support import running_app

    detect, whole = "Detect faces (OpenCV)", "The photo is one face crop"
    with running_app(repo, runtime=runtime) as url:
        client = Client(url, verbose=False)

        def one_face():
            client.predict(handle_file(face_path), None, whole, api_name="/classify")

        def three_faces():
            client.predict(handle_file(photo_path), None, detect, api_name="/classify")

        one_face()
        seconds = timed(one_face, requests)
        print(f"HTTP /classify, one face     {percentiles(seconds)}   (target p95 <= 300 ms)")
        print(f"HTTP /classify, 3-face photo {percentiles(timed(three_faces, requests))}")

        def request():
            client.predict(handle_file(photo_path), None, detect, api_name="/classify")
            client.predict(handle_file(photo_path), None, detect, 8, 1, api_name="/retrieve")

        request()
        seconds = timed(request, requests)
    print(f"HTTP /classify + /retrieve   {percentiles(seconds)}")


def concurrent_latency(repo, photo_path, n):
    """N users at once on the app (concurrency 4), each classifying the same photo."""
    import concurrent.futures

    import httpx
    from gradio_client import Client, handle_file

    sys.path.insert(0, str(ROOT))
    from tests.app_support import running_app

    detect = "Detect faces (OpenCV)"
    with running_app(repo) as url:
        Client(url, verbose=False).predict(
            handle_file(photo_path), None, detect, api_name="/classify"
        )

        def user(_):
            client = Client(url, verbose=False, download_files=False)
            start = time.perf_counter()
            boxed = client.predict(handle_file(photo_path), None, detect, api_name="/classify")[0]
            httpx.get(boxed["url"], timeout=120).raise_for_status()  # the one image shown
            return time.perf_counter() - start

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(user, i) for i in range(n)]
            seconds, failures = [], []
            for future in futures:
                try:
                    seconds.append(future.result())
                except Exception as error:  # noqa: BLE001 - every failure is counted
                    failures.append(f"{type(error).__name__}: {error}")
    print(
        f"{n} concurrent /classify (+ image download)   {percentiles(seconds)}   "
        f"failures {len(failures)} of {n}"
    )
    for failure in failures[:5]:
        print("  ", failure)


if __name__ == "__main__":
    main()
