"""specsim: NHS England specialised services funding simulator.

Public API (imported lazily so `import sim` stays light):
`load_scenario(path)`, `run(scenario, replications=..., seed=...)`, `compare(a, b)`,
`explain(a, b)` (the change from A to B split into named factors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.attribution import explain
    from sim.comparison import compare
    from sim.experiment import run
    from sim.scenario import load_scenario

__all__ = ["__version__", "compare", "explain", "load_scenario", "plots", "run"]

_LAZY = {
    "load_scenario": ("sim.scenario", "load_scenario"),
    "run": ("sim.experiment", "run"),
    "compare": ("sim.comparison", "compare"),
    "explain": ("sim.attribution", "explain"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        import importlib

        return getattr(importlib.import_module(module_name), attr)
    if name == "__version__":
        from sim.version import specsim_version

        return specsim_version()
    if name == "plots":
        import importlib

        return importlib.import_module("sim.plots")
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
