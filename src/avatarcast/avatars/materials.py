"""Avatar material: a photo or a video, told apart by its first bytes.

MP4/MOV (`ftyp` at offset 4, except still-image brands such as HEIF/AVIF), Matroska/WebM and
AVI are videos; everything else goes to the photo builder, whose checks name unreadable files.
"""

from __future__ import annotations

from pathlib import Path

PHOTO, VIDEO = "photo", "video"
# ISO-BMFF brands of still images (HEIF/AVIF): `ftyp` but not a video
_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


def material_kind(head: bytes) -> str:
    """`VIDEO` for an MP4/MOV (`ftyp` box at offset 4), Matroska/WebM or AVI; else `PHOTO`.

    >>> material_kind(b"\\x00\\x00\\x00\\x20ftypisom"), material_kind(b"\\xff\\xd8\\xff\\xe0")
    ('video', 'photo')
    """
    if head[4:8] == b"ftyp":
        return PHOTO if head[8:12] in _IMAGE_BRANDS else VIDEO
    if head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:11] == b"AVI"):
        return VIDEO
    return PHOTO


def file_kind(path: Path) -> str:
    with open(path, "rb") as fh:
        return material_kind(fh.read(16))
