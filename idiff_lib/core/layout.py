"""The chain's run-folder layout: step names and the files each step leaves, defined once.

A run folder ``runs/<name>/`` holds one sub-folder per notebook step. Every module that reads
another step's outputs (export, notebook 04's analysis, the report) takes the names from here,
so renaming a notebook or a file is a change in one place.
"""

from __future__ import annotations

from pathlib import Path

# Step names are the notebooks' file stems.
EXPLORE_STEP = "01_explore_pairs"
ANSWER_STEP = "02_train_answer_model"
THINKING_STEP = "03_tune_thinking_model"
ANALYSIS_STEP = "04_analyse_ensemble"
SCORING_STEP = "05_score_rationales"
REPORT_STEP = "06_report_figures"
STEPS = (EXPLORE_STEP, ANSWER_STEP, THINKING_STEP, ANALYSIS_STEP, SCORING_STEP, REPORT_STEP)

# Files every step leaves (written by the chain runner and the notebook).
PARAMS_FILE = "params.yaml"  # the resolved parameters the step ran with
METRICS_FILE = "metrics.json"  # what the notebook measured
STEP_MARKER = "step.json"  # the fingerprint of a finished step
STARTED_MARKER = "started.json"  # the fingerprint a step was last started with
EXECUTED_NOTEBOOK = "executed.ipynb"  # the executed copy of the notebook (kept on failure)
KERNEL_LOG = "kernel.log"  # the notebook kernel's own messages (its stderr), kept off the terminal
RUN_LOCK = ".lock"  # in the run folder: held by the `idiff run` writing it, holds that run's PID
TIMINGS_FILE = "timings.jsonl"  # in the run folder: every step attempt's wall, CPU and peak memory (chain.timing)

# Step 02 (the Answer Model).
ENSEMBLE_FILE = "ensemble.json"  # the saved ensemble's spec (members, ensembler)
TEST_PREDICTIONS_FILE = "preds_test.jsonl"  # the ensemble's test-split answers
ANSWER_LADDER_FILE = "ladder.csv"  # one row per ladder row: accuracy with its interval per category

# Step 03 (the Thinking Model): model/<stage>/final holds each stage's adapter or weights.
THINKING_MODEL_DIR = "model"
FINAL_CHECKPOINT = "final"
RATIONALES_FILE = "predictions.jsonl"  # the last stage's test rationales ({"id", "completion"} rows)

# Step 05 (the scores).
SCORING_LADDER_FILE = "ladder_scores.csv"  # one row per (system, stage): BLEU-4, ROUGE-L, aspect F1, accuracy


def step_dir(run_dir: str | Path, step: str) -> Path:
    """The output folder of one step of a run."""
    return Path(run_dir) / step


def stage_model_dir(run_dir: str | Path, stage: str) -> Path:
    """Where notebook 03 leaves the final model of one prompt stage (S0 ... S4)."""
    return step_dir(run_dir, THINKING_STEP) / THINKING_MODEL_DIR / stage / FINAL_CHECKPOINT
