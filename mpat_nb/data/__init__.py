"""Data: annotation types, file formats, the synthetic video generator."""

from mpat_nb.data.annotations import Frame, Person, Video

__all__ = ["Frame", "Person", "Video"]
