"""Avatars: asset types, the built-in avatar and the registry that loads avatars by name."""
