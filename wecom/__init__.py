"""Everything that talks to WeCom: crypto, the API gateway, and the simulator."""
