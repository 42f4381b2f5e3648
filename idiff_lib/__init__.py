"""iDiff Workbench: pairwise professional image quality assessment with reasoning.

Reference: the iDiff method, winner of the NTIRE 2026 RAIM challenge Track 1 (Professional
Image Quality Assessment). The library holds every piece of logic; the notebooks in
``notebooks/`` are narrative and calls.
"""

__version__ = "0.1.0"
