"""The one vocabulary: the generator, the prompts, the parser and the scorer all speak it.

References written by the benchmark's writer are parsed back by the scoring parser and every
region, attribute and verdict must come back; every vocabulary constant the rationale modules
use must be the ontology's object or derived from it.
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from idiff_lib.data import degrade
from idiff_lib.core import vocabulary
from idiff_lib.core import ontology
from idiff_lib.data.pairs import parse_completion
from idiff_lib.scoring import parser, scorers
from idiff_lib.scoring.scoring_settings import ScoringSettings
from idiff_lib.core.step_settings import PROFILES
from idiff_lib.thinking.prompting import prompts, template_baseline

CAUSES = (*vocabulary.CAUSE_PHRASES, None)


def _comparisons(rng: np.random.Generator, category: str, answer: str) -> list[vocabulary.Comparison]:
    regions = ontology.REFERENCE_PERSON_REGIONS if category == "person" else ontology.REFERENCE_SCENE_REGIONS
    comps = [vocabulary.Comparison(str(rng.choice(regions)), str(rng.choice(ontology.REFERENCE_ATTRIBUTES)),
                                   str(rng.choice(ontology.REFERENCE_VERDICTS)), float(rng.uniform(0, 1)),
                                   CAUSES[int(rng.integers(len(CAUSES)))])
             for _ in range(int(rng.integers(2, 9)))]
    comps.append(vocabulary.Comparison("Global", "Sharpness", answer, 0.3))
    return comps


@pytest.mark.parametrize("category", ontology.CATEGORIES)
def test_references_round_trip_through_the_parser(category):
    seen = {"regions": set(), "attributes": set(), "verdicts": set()}
    for seed in range(150):
        rng = np.random.default_rng(seed)
        answer = "A" if seed % 2 else "B"
        comps = _comparisons(rng, category, answer)
        lines = parse_completion(vocabulary.write_rationale(category, comps, answer, rng)).lines
        written: dict[tuple[str, str], set[str]] = {}
        for c in comps:
            written.setdefault((c.region, c.attribute), set()).add(c.verdict)
        for line in lines[:-1]:
            region, attribute = line.split(":", 1)[0].split(" ", 1)
            aspect = parser.parse_line(line)
            assert aspect.region == region.lower() and aspect.region in ontology.REGIONS, line
            assert aspect.attribute == attribute.lower() and aspect.attribute in ontology.ATTRIBUTES, line
            assert aspect.attribute_source == "heading" and aspect.known, line
            # A line the writer pads with (a heading nobody compared) is a neutral "similar" line.
            assert aspect.verdict in written.get((region, attribute), {"similar"}), line
            seen["regions"].add(region)
            seen["attributes"].add(attribute)
            seen["verdicts"].add(aspect.verdict)
        summary = parser.parse_line(lines[-1])
        assert lines[-1].startswith(ontology.SUMMARY_HEADING + ":")
        assert (summary.region, summary.attribute, summary.verdict) == ("global", "overall", answer)
    regions = ontology.REFERENCE_PERSON_REGIONS if category == "person" else ontology.REFERENCE_SCENE_REGIONS
    assert seen == {"regions": set(regions), "attributes": set(ontology.REFERENCE_ATTRIBUTES),
                    "verdicts": set(ontology.REFERENCE_VERDICTS)}


def test_modules_use_the_ontology_objects():
    assert prompts.STAGES is ontology.STAGES and prompts.SUMMARY_HEADING is ontology.SUMMARY_HEADING
    for name in ("REFERENCE_ATTRIBUTES", "REFERENCE_PERSON_REGIONS", "REFERENCE_SCENE_REGIONS", "REFERENCE_VERDICTS",
                 "SUMMARY_HEADING", "CATEGORIES", "TEMPLATE_REGION_WORDS", "headings_of", "template_heading"):
        assert getattr(vocabulary, name) is getattr(ontology, name), name
    for name in ("REFERENCE_ATTRIBUTES", "REFERENCE_PERSON_REGIONS", "REFERENCE_SCENE_REGIONS", "SUMMARY_HEADING",
                 "TEMPLATE_ATTRIBUTE_WORDS", "TEMPLATE_CUE_KEYWORDS"):
        assert getattr(template_baseline, name) is getattr(ontology, name), name
    assert parser.normalise_heading is ontology.normalise_heading
    assert scorers.PERSON_ONLY_REGIONS is ontology.PERSON_ONLY_REGIONS


@pytest.mark.parametrize("module", [vocabulary, degrade, prompts, template_baseline, parser, scorers])
def test_no_rationale_module_writes_its_own_vocabulary(module):
    own = {"REGIONS", "ATTRIBUTES", "VERDICTS", "PERSON_REGIONS", "SCENE_REGIONS", "SUMMARY_HEADING", "STAGES",
           "CATEGORIES", "REQUIRED_REGIONS", "REGION_SYNONYMS", "ATTRIBUTE_SYNONYMS"}
    tree = ast.parse(inspect.getsource(module))
    assigned = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    assert not assigned & own, f"{module.__name__} defines {sorted(assigned & own)}"
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert ontology.SUMMARY_HEADING not in literals


def test_every_subset_is_derived_from_the_ontology():
    for region in (*ontology.REFERENCE_PERSON_REGIONS, *ontology.REFERENCE_SCENE_REGIONS):
        assert region == ontology.heading_word(region.lower()) and region.lower() in ontology.REGIONS
    for attribute in ontology.REFERENCE_ATTRIBUTES:
        assert attribute.lower() in ontology.ATTRIBUTES
    assert set(ontology.REFERENCE_VERDICTS) < set(ontology.VERDICTS)
    assert ontology.PERSON_ONLY_REGIONS <= set(ontology.REGIONS)
    for category in ontology.CATEGORIES:
        for region in ontology.TEMPLATE_REGION_WORDS[category]:
            assert region.lower() in ontology.REGIONS
    # Every template attribute word is read by the parser as one ontology attribute.
    for word in ontology.TEMPLATE_ATTRIBUTE_WORDS:
        regions, attributes = ontology.normalise_heading(f"Global {word}")
        assert len(attributes) == 1 and attributes[0] in ontology.ATTRIBUTES, word
    assert set(ontology.TEMPLATE_CUE_KEYWORDS) <= set(ontology.TEMPLATE_ATTRIBUTE_WORDS)
    assert tuple(template_baseline.BASELINE_PHRASES) == ontology.TEMPLATE_ATTRIBUTE_WORDS
    # The degradation model's masks and the attributes its defects touch.
    for category, masks in (("person", ontology.PERSON_MASK_REGIONS), ("scene", ontology.SCENE_MASK_REGIONS)):
        assert set(degrade.REGION_WEIGHTS[category]) == set(masks)
    assert set(ontology.SCENE_MASK_REGIONS) - set(ontology.REGIONS) == {ontology.DETAIL_MASK}
    # The writer's phrase banks cover exactly the regions and attributes it writes.
    for bank in (vocabulary.PHRASES, vocabulary.NOUNS, vocabulary.ADVANTAGES):
        assert set(bank) == set(ontology.REFERENCE_ATTRIBUTES)
    assert set(vocabulary.LOCATIONS) == {*ontology.REFERENCE_PERSON_REGIONS, *ontology.REFERENCE_SCENE_REGIONS}
    for kind in degrade.DEFECTS.values():
        assert set(kind.attributes) <= set(ontology.REFERENCE_ATTRIBUTES), kind.name


def test_one_spelling_of_color():
    assert "color" in ontology.ATTRIBUTES and "colour" not in ontology.ATTRIBUTES
    assert ontology.normalise_heading("Global Colour") == ontology.normalise_heading("Global Color") == (
        ("global",), ("color",))
    assert parser.parse_line("Face: Image A shows a colour cast, Image B does not.").attribute == "color"


def test_a_subset_of_unknown_words_is_refused():
    with pytest.raises(ValueError, match="not ontology regions"):
        ontology._regions("face", "elbow")
    with pytest.raises(ValueError, match="not ontology attribute words"):
        ontology._attribute_words("sharpness", "vibe")


def test_template_heading_and_heading_regex():
    assert ontology.headings_of("Face Texture: A is finer.\nno heading here\nGlobal Overall: A.") == [
        "Face Texture", "Global Overall"]
    assert ontology.template_heading("Skin Texture") == "Face Texture"
    assert ontology.template_heading("Text Sharpness") == "Edges Sharpness"
    assert ontology.template_heading(ontology.SUMMARY_HEADING) is None


@pytest.mark.parametrize("profile", PROFILES)
def test_scoring_settings_build_for_every_profile(profile):
    settings = ScoringSettings.for_profile(profile)
    assert settings.STEP == "05_score_rationales"
    assert settings.bootstrap >= 0 and settings.limit >= 0
    if profile == "cpu":
        assert settings == ScoringSettings()
    if profile == "tiny":
        assert not settings.semantic and settings.limit == 8
