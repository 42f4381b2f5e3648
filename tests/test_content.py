import numpy as np
from skimage import data

from idiff_lib.data.content import agreement, detect_content, detect_faces
from idiff_lib.data.pairs import make_pair


def test_haar_finds_the_astronauts_face():
    faces = detect_faces(data.astronaut())
    assert faces, "no face found"
    x, y, w, h = faces[0]
    # Eileen Collins' face is near (180-260, 60-160) in the 512 px image
    assert 150 < x + w / 2 < 290 and 40 < y + h / 2 < 180


def test_no_face_in_a_coffee_cup():
    assert detect_faces(data.coffee()) == []


def test_prefix_wins_and_faces_decide_without_it():
    pair = make_pair(["s_001_merged_c0.jpg", "s_001_merged_c1.jpg"])
    assert detect_content(pair, data.astronaut()).category == "scene"
    assert detect_content(pair, data.astronaut(), use_prefix=False).category == "person"
    unnamed = make_pair(["shot_merged_c0.jpg", "shot_merged_c1.jpg"])
    content = detect_content(unnamed, data.coffee())
    assert (content.category, content.source) == ("scene", "faces")


def test_agreement_counts():
    out = agreement(["person", "scene", "person", None], ["person", "person", "scene", "scene"])
    assert out["n"] == 3 and np.isclose(out["accuracy"], 1 / 3)
    assert out["confusion"]["scene->person"] == 1
