"""Rendering: mouth poses and idle motion composed into YUV420 frames."""
