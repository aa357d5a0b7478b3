"""HTTP + WebSocket: the IVH-compatible API. The only layer that knows HTTP."""
