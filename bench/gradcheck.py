"""Every hand-written backward in gnaq against central finite differences, in float64.

One line per check with its max relative error ‖analytic − numeric‖∞ / ‖numeric‖∞; exits 1 if
any exceeds 1e-6. Covers every autograd op, the LightGCN loss end to end (embedding gather →
L × spmm → layer mean → BPR + L2), and every quantizer's estimator (closed form and, where it
is one, the smooth relaxation).

    python bench/gradcheck.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnaq.autograd import set_default_dtype  # noqa: E402
from gnaq.autograd.gradcheck import max_relative_error, op_cases  # noqa: E402

TOLERANCE = 1e-6


def all_checks():
    """(name, relative error) for every check gnaq knows."""
    for name, fn, inputs in op_cases(seed=0):
        yield f"op {name}", max_relative_error(fn, inputs)
    from gnaq.models.checks import model_checks
    yield from model_checks()
    try:
        from gnaq.quant.checks import quantizer_checks
    except ImportError:
        return
    yield from quantizer_checks()


def main() -> int:
    set_default_dtype("float64")
    failed = 0
    for name, err in all_checks():
        ok = err <= TOLERANCE
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {err:9.2e}  {name}")
    print(f"{'all checks passed' if not failed else f'{failed} check(s) above {TOLERANCE:g}'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
