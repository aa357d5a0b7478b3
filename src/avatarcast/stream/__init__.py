"""Streaming: clocks, encoders and containers."""
