"""A fake WeCom: the corp's graph (state.py), its HTTP API (api.py) and demo data (demo_data.py)."""

from wecom.simulator.errors import SimApiError
from wecom.simulator.state import SimulatorState

__all__ = ["SimApiError", "SimulatorState"]
