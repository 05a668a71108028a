"""keras_sgm.serving.faces: decoding untrusted photos, Haar face detection and face crops."""

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from keras_sgm.serving import faces
from keras_sgm.serving.faces import PhotoError, read_photo


def _save(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


def _jpeg_bytes(size=(64, 48)):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


# ------------------------------------------------------------------ decoding
def test_gray_and_float_arrays_become_rgb_uint8():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    photo = read_photo(gray, name="gray")
    assert photo.pixels.shape == (3, 4, 3) and photo.pixels.dtype == np.uint8
    np.testing.assert_array_equal(photo.pixels[..., 1], gray)
    floats = read_photo(np.full((2, 2, 1), 0.5, np.float32))
    assert floats.pixels[0, 0].tolist() == [128, 128, 128]
    assert floats.name == "photo" and floats.notes == ()


def test_rgba_array_is_put_on_white_with_a_note():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = [10, 20, 30, 255]  # opaque pixel kept, the others transparent
    photo = read_photo(rgba, name="cam")
    assert photo.pixels[0, 0].tolist() == [10, 20, 30]
    assert photo.pixels[1, 1].tolist() == [255, 255, 255]
    assert photo.notes == ("cam has transparent pixels; they were put on white.",)


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((2, 2, 2), np.uint8), "got shape (2, 2, 2)"),
        (np.zeros((0, 3), np.uint8), "got shape (0, 3, 1)"),
        (np.array([[np.nan, 0.0]]), "non-finite"),
    ],
)
def test_unusable_arrays_are_refused_by_name(array, words):
    with pytest.raises(PhotoError, match="webcam") as error:
        read_photo(array, name="webcam")
    assert words in str(error.value)


def test_empty_missing_and_text_files_name_the_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("hello, this is text")
    with pytest.raises(PhotoError, match=r"empty.jpg is empty \(0 bytes\)"):
        read_photo(tmp_path / "empty.jpg")
    with pytest.raises(PhotoError, match="notes.jpg is not an image .*b'hello, this '"):
        read_photo(tmp_path / "notes.jpg")
    with pytest.raises(PhotoError, match="gone.png: the file was not found"):
        read_photo(tmp_path / "gone.png")


def test_truncated_jpeg_is_reported_damaged(tmp_path):
    data = _jpeg_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(PhotoError, match="cut.jpg is damaged and cannot be decoded"):
        read_photo(tmp_path / "cut.jpg")
    assert read_photo(data, name="whole.jpg").pixels.shape == (48, 64, 3)


def test_too_many_pixels_is_refused_from_the_header(tmp_path):
    path = _save(tmp_path / "huge.png", Image.new("L", (10000, 10000), 7))
    assert path.stat().st_size < 1_000_000  # one colour compresses: the limit is on pixels
    with pytest.raises(PhotoError) as error:
        read_photo(path)
    assert str(error.value).startswith("huge.png is 10000 x 10000 pixels (100.0 MP)")
    assert "the limit is 40.0 MP" in str(error.value)
    small = read_photo(path, max_pixels=10**8)  # at the limit it decodes
    assert small.pixels.shape == (10000, 10000, 3)


def test_too_many_bytes_is_refused_unread(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(_jpeg_bytes())
    with pytest.raises(PhotoError, match=r"big.jpg is 0.0 MB; the limit is 0 MB"):
        read_photo(path, max_bytes=100)


def test_animated_gif_gives_its_first_frame_with_a_note(tmp_path):
    frames = [Image.new("L", (8, 8), v) for v in (40, 200, 120)]
    path = tmp_path / "wave.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    photo = read_photo(path)
    assert np.all(photo.pixels == 40)
    assert photo.notes == ("wave.gif is animated (3 frames); its first frame was used.",)


def test_transparent_png_and_palette_go_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2] = [0, 0, 255, 255]
    photo = read_photo(_save(tmp_path / "logo.png", Image.fromarray(rgba, "RGBA")))
    assert photo.pixels[0, 0].tolist() == [0, 0, 255]
    assert photo.pixels[3, 3].tolist() == [255, 255, 255]
    assert "logo.png has transparent pixels" in photo.notes[0]
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert read_photo(_save(tmp_path / "o.png", Image.fromarray(opaque, "RGBA"))).notes == ()
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    palette.info["transparency"] = 0
    photo = read_photo(_save(tmp_path / "p.png", palette, transparency=0))
    assert photo.pixels[0, 0].tolist() == [255, 255, 255]
    assert photo.pixels[1, 1].tolist() == [255, 0, 0]


def test_16_bit_gray_is_scaled_to_its_maximum(tmp_path):
    values = np.array([[0, 1000], [2000, 4000]], np.uint16)
    path = _save(tmp_path / "depth.png", Image.fromarray(values))
    photo = read_photo(path)
    assert photo.pixels[..., 0].tolist() == [[0, 64], [128, 255]]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    path = _save(tmp_path / "phone.jpg", image, exif=exif.tobytes())
    assert read_photo(path).pixels.shape == (30, 10, 3)


# --------------------------------------------------------------- detection
@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data")
    return data.astronaut()  # NASA portrait of Eileen Collins (public domain), 512x512 RGB


@pytest.fixture(scope="module")
def detector():
    return faces.FaceDetector()


def test_detector_finds_the_one_real_face(astronaut, detector):
    boxes = detector.detect(astronaut)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 70 <= w <= 130 and w == h
    assert x < 225 < x + w and y < 115 < y + h  # her face is centred near (225, 115)


def test_large_photos_are_searched_scaled_down_and_boxes_scaled_back(astronaut, detector):
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.Resampling.BICUBIC))
    (x, y, w, h), (x1, y1, w1, h1) = detector.detect(astronaut)[0], detector.detect(big)[0]
    assert abs(x1 - 4 * x) <= 12 and abs(y1 - 4 * y) <= 12
    assert abs(w1 - 4 * w) <= 24 and abs(h1 - 4 * h) <= 24


def test_no_face_in_a_blank_or_noise_photo(detector):
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    assert detector.detect(np.full((240, 320, 3), 90, np.uint8)) == []
    assert detector.detect(noise) == []


def test_group_photo_faces_come_left_to_right(app_examples, detector):
    boxes = detector.detect(read_photo(app_examples["group"]).pixels)
    assert len(boxes) == 3
    assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)


def test_missing_cascade_says_what_to_install():
    with pytest.raises(ImportError, match="opencv-python-headless>=4.8,<5"):
        faces.FaceDetector(cascade="no_such_cascade.xml")


# ------------------------------------------------------------------- crops
@given(
    x=st.integers(0, 90),
    y=st.integers(0, 90),
    w=st.integers(1, 60),
    h=st.integers(1, 60),
    height=st.integers(1, 150),
    width=st.integers(1, 150),
    margin=st.floats(0, 0.5),
)
def test_square_box_is_a_square_inside_the_photo(x, y, w, h, height, width, margin):
    left, top, side, side2 = faces.square_box((x, y, w, h), (height, width), margin)
    assert side == side2 >= 1
    assert 0 <= left and left + side <= width and 0 <= top and top + side <= height
    wanted = round(max(w, h) * (1 + 2 * margin))
    assert side == max(1, min(wanted, height, width))


def test_crop_face_gives_model_input_and_thumbnail():
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[20:80, 70:130] = 255  # a white square "face"
    face = faces.crop_face(pixels, (70, 20, 60, 60), size=48, channels=1, margin=0.0)
    assert face.box == (70, 20, 60, 60)
    assert face.crop.shape == (48, 48, 1) and face.crop.dtype == np.float32
    assert face.crop.min() == 1.0  # exactly the square, no border
    assert face.thumbnail.shape == (96, 96, 3) and face.thumbnail.dtype == np.uint8
    wide = faces.crop_face(pixels, (70, 20, 60, 60), size=48, channels=3, margin=0.25)
    assert wide.crop.shape == (48, 48, 3)
    assert wide.crop[0, 0, 0] == 0.0 and wide.crop[24, 24, 0] == 1.0  # margin shows the border


def test_model_input_gray_matches_pillow_luma():
    rgb = np.random.default_rng(1).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"), np.float32) / 255.0
    np.testing.assert_array_equal(faces.to_model_input(rgb, 48, 1)[..., 0], expected)


def test_whole_photo_is_its_centre_square():
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, 10:50] = 200
    photo = faces.Photo(pixels, "crop.png")
    (face,) = faces.find_faces(photo, detector=None, size=20, channels=1, whole=True)
    assert face.crop.shape == (20, 20, 1)
    np.testing.assert_allclose(face.crop, 200 / 255.0, atol=1e-6)
