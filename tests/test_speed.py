"""What the speed work promises users: rates reported with significant figures."""
from __future__ import annotations

import pytest

from enhancer.batch.runner import rate_text


@pytest.mark.parametrize("fps, text", [(0.032, "0.032"), (0.00012, "0.00012"), (0.33, "0.33"), (1.26, "1.3"),
                                       (9.87, "9.9"), (12.34, "12.3"), (0.0, "0")])
def test_the_done_line_rate_has_significant_figures(fps, text):
    assert rate_text(fps) == text
