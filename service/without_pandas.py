"""Keep pandas out of the processes that parse and convert.

The service never uses pandas, but pyarrow imports it, when it is installed, the first time it
turns Python values into an array (`pa.array([...])`, even with a type given): 0.7 s of CPU
and some 30 MiB in every worker and converter process, in an environment that happens to
hold pandas (a shared data-science virtualenv, or this project's test environment). Only the
processes that are the service's own call `keep_pandas_out()`: never a process that may
import pandas for itself, such as a test run.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType


class _PandasRefused(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            # What pyarrow meets when pandas is not installed: it goes on without it.
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def keep_pandas_out() -> None:
    """From now on `import pandas` fails in this process, as if it were not installed."""
    if "pandas" in sys.modules:
        return  # too late: already imported
    if not any(isinstance(finder, _PandasRefused) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PandasRefused())
