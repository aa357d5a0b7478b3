"""The media pipeline's driver: the timeline (`timeline.Engine`) and its offline renderer."""
