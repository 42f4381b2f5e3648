"""iDiff Workbench: pairwise professional image quality assessment with reasoning.

Reference: the iDiff method, winner of the NTIRE 2026 RAIM challenge Track 1 (Professional
Image Quality Assessment). The library holds every piece of logic; the notebooks in
``notebooks/`` are narrative and calls.

Rooms, lowest first. A module imports only from its own room or from a room listed before it
(``tests/test_architecture.py`` reads the list from here and checks every import, and that the
import graph has no cycle):

    core       paths, errors, storage, settings plumbing, the ontology and the rationale vocabulary
    data       pairs and their files, views, content, swaps, degradations, the RAIM-PIQA rationales
    demo_data  the embedded benchmark's builder: photo library, pair sampling, datasheet
    features   hand-made quality cues (CV), learned IQA scores, their cue text and tables
    scoring    rationale parsing, verdicts, BLEU-4 / ROUGE-L / judge, intervals, rewards, floors
    answer     the Answer Model: backbones, feature cache, heads, members, ensemble, aspects
    thinking   the Thinking Model: prompts, evidence, encoding, LoRA training, decoding, GRPO
    report     figures, tables and the sentences the notebooks print
    chain      the notebook chain: each notebook's context, steps, runs, fingerprints, export
    cli        the ``idiff`` command line, one module per command group

Outside the package: ``notebooks/`` (the chain's steps), ``benchmarks/`` (speed and accuracy
scripts that write JSON), ``tests/``.
"""

__version__ = "0.1.0"
