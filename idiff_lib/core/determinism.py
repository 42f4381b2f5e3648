"""Same numbers in every clone: one thread count per step, set in every library, and torch's deterministic mode.

With 16 test pairs and minutes of training, a last-bit difference early in a run can decide a
test pair's verdict, so the chain removes every difference it can between two runs of a commit:

- **Thread count.** A sum split between threads adds its parts in another order at another
  count. Measured on CPU (torch 2.14, 1 against 2 threads): oneDNN's convolutions (the forward
  pass of a batch of one image in some layers, and the weight and bias gradients), torch's
  LayerNorm weight and bias gradients and its sums of more than about 32k values differ in the
  last bits, and MKL's matrix products do for some shapes unless MKL runs in its strict
  reproducible mode (`LIBRARY_ENV`); softmax, norms, elementwise ops, scikit-learn's boosting and
  NumPy's products did not. A count left to the machine (torch, OpenMP, BLAS and OpenCV all
  default to its cores) would make the numbers depend on the machine, so every step runs at a
  fixed count: its ``threads`` setting, or, for a step without one, ``IDIFF_THREADS`` (default
  `DEFAULT_THREADS`). ``threads=0`` alone leaves the libraries their own choice (a GPU profile,
  whose numbers come from the GPU).
- **Where the count is set.** OpenMP (torch's and scikit-learn's), MKL, OpenBLAS (NumPy, SciPy)
  and OpenCV read their environment variables (`THREAD_VARS`) when they load, so the chain puts
  them in the step kernel's environment (`kernel_env`); `configure` also sets each library that is
  already loaded (``threadpoolctl``, ``torch.set_num_threads``, ``cv2.setNumThreads``), for a
  notebook run by hand.
- **Hash order.** Python salts the hash of strings per process, so iterating a set of names can
  change order between runs: the kernel gets ``PYTHONHASHSEED=0`` (`START_ENV`).
- **torch's nondeterministic kernels.** ``torch.use_deterministic_algorithms(True, warn_only=True)``
  (a warning, not an error, for an op without a deterministic version) and cuDNN without
  benchmarking; cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` set before CUDA starts.

What this does not remove: a different CPU (another instruction set picks other MKL and oneDNN
kernels) or another library version can still change the last bits; `benchmarks/repro.py`
measures what differs between thread counts on one machine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from threadpoolctl import threadpool_limits

THREADS_ENV = "IDIFF_THREADS"  # thread count of a step without a ``threads`` setting
DEFAULT_THREADS = 2  # the demo machine's 2 cores, as the steps' ``threads`` defaults
# Read by each library when it loads: OpenMP (torch, scikit-learn), MKL, OpenBLAS, NumExpr, OpenCV.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "OPENCV_FOR_THREADS_NUM")
# Read when the interpreter starts: only a new process (the step's kernel) can be given it.
START_ENV = {"PYTHONHASHSEED": "0"}
# Read when the library first computes: MKL's matrix products in the same bits at any thread count
# (strict conditional numerical reproducibility, on the code path MKL picks for this CPU), and the
# cuBLAS workspace that torch's deterministic mode needs.
LIBRARY_ENV = {"MKL_CBWR": "AUTO,STRICT", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def step_threads(threads: object = None, environ: Mapping[str, str] | None = None) -> int:
    """The thread count a step runs at: its ``threads`` setting, else ``IDIFF_THREADS``, else `DEFAULT_THREADS`.

    0 means the libraries' own choice (the machine's cores).

    Raises:
        ValueError: ``IDIFF_THREADS`` is not a count.
    """
    if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 0:
        return threads
    value = (os.environ if environ is None else environ).get(THREADS_ENV, "").strip()
    if not value:
        return DEFAULT_THREADS
    if not value.isdigit():
        raise ValueError(f"{THREADS_ENV}={value!r} is not a thread count. fix: set it to a whole number "
                         f"(e.g. {THREADS_ENV}=2) or unset it (default {DEFAULT_THREADS})")
    return int(value)


def kernel_env(threads: object = None) -> dict[str, str]:
    """A step kernel's environment variables: `START_ENV`, `LIBRARY_ENV` and, unless the count is 0, `THREAD_VARS`."""
    count = step_threads(threads)
    return {**START_ENV, **LIBRARY_ENV, **({var: str(count) for var in THREAD_VARS} if count else {})}


def configure(threads: object = None) -> int:
    """Apply a step's thread count to every numeric library in this process, and torch's deterministic mode.

    Sets `LIBRARY_ENV` and `THREAD_VARS` (for the libraries not loaded or not used yet), the limits
    of the OpenMP and BLAS libraries loaded already, and OpenCV's count. torch (its intra- and
    inter-op threads and its deterministic mode) is set when it is loaded already (the chain's
    notebooks load it with the library) or the step has a ``threads`` setting; a process that loads
    torch later gets its count from `THREAD_VARS`.

    Args:
        threads: the step's ``threads`` setting; None for a step without one (`step_threads`).

    Returns:
        The count applied (0: the libraries' own choice, no count set).
    """
    count = step_threads(threads)
    os.environ.update(LIBRARY_ENV)
    if count:
        os.environ.update({var: str(count) for var in THREAD_VARS})
        threadpool_limits(count)  # called, not entered: the limits stay for the process
        if "cv2" in sys.modules:
            sys.modules["cv2"].setNumThreads(count)
    if threads is not None or "torch" in sys.modules:
        _configure_torch(count)
    return count


def _configure_torch(count: int) -> None:
    import torch  # deferred on purpose: a process that loads torch later gets its count from THREAD_VARS

    if count:
        torch.set_num_threads(count)
        if torch.get_num_interop_threads() != count:
            try:
                torch.set_num_interop_threads(count)
            except RuntimeError:  # only before the first inter-op work; they compute nothing, so no number changes
                pass
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
