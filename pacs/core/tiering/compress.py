"""A tier's ``compress`` option as a mover transform: :func:`pacs.core.lossless.compress_part10`
(which checks its output bit-exact before returning it) adapted to the mover's signature."""

from __future__ import annotations

from pacs.core.lossless import CODECS, DEFAULT_MIN_GAIN, compress_part10
from pacs.core.tiering.mover import Transform, TransformedBlob


def lossless_transform(codec: str, min_gain: float = DEFAULT_MIN_GAIN) -> Transform:
    """The transform compressing a moved blob with ``codec`` ('jpeg-ls' or 'jpeg2000'); a
    file it cannot or need not compress (already compressed, no pixels, too small a gain)
    is moved as it is. ValueError for an unknown codec."""
    if codec not in CODECS:
        raise ValueError(f"unknown lossless codec {codec!r}; one of {sorted(CODECS)}")

    def transform(raw: bytes) -> TransformedBlob | None:
        result = compress_part10(raw, codec=codec, min_gain=min_gain)
        return None if result is None else TransformedBlob(result.data, result.transfer_syntax)

    return transform
