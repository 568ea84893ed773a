"""Benchmarks of the dlcli engine (and PyTorch CPU, for comparison): ``python -m benchmarks``.

Kept apart from the tests: they print figures and assert nothing about time.
"""

import time

# Seconds to wait before each timed request to a worker process. A BLAS or OpenMP runtime
# keeps its idle threads spinning for a while after its last call (OpenBLAS up to 2^28
# cycles, ~0.1 s), and they take the cores from whatever the other worker runs next.
# Measured on LeNet (python -m benchmarks --only lenet_adam --repeats 24, the pause on
# every other pair of repeats): back to back, PyTorch's epochs ran 1.41-1.58 s and the
# dlcli/PyTorch ratio was 1.11; after a 0.5 s pause PyTorch ran 1.39 s and the ratio was
# 1.19. Every PyTorch epoch followed BLAS calls in the dlcli worker (its epoch or the GEMM
# floor), so running back to back favoured dlcli.
SETTLE_S = 0.5


def settle() -> None:
    """Let the other workers' idle threads go to sleep before a timed request."""
    time.sleep(SETTLE_S)
