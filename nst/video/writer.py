"""Writing the stylised frames as a video every player opens: H.264 in an mp4, yuv420p, at the
source's frame rate, with the source's sound copied as it is (cut to the frames written)."""

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from nst.errors import NSTError
from nst.files import atomic_write


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: Fraction,
    *,
    audio_from: Path | None = None,
    crf: int = 18,
) -> int:
    """Encode ``frames`` ([H, W, 3] uint8 RGB, each read when needed) into ``path`` and return
    how many were written. The file appears whole or not at all (written beside it, then moved).
    ``audio_from``: a video file whose first audio stream is copied, up to the last frame's end."""
    import av

    written = 0
    source = av.open(str(audio_from)) if audio_from is not None else None
    try:
        with atomic_write(path) as (_, partial), av.open(str(partial), "w", format="mp4") as output:
            # Every stream is added before the first packet: the header is written with it.
            sound = _sound_stream(source, output)
            stream = output.add_stream("libx264", rate=fps)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
            for frame in frames:
                if written == 0:
                    stream.height, stream.width = frame.shape[:2]
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in stream.encode(picture):
                    output.mux(packet)
                written += 1
            if written == 0:
                raise NSTError("no frames to write")
            for packet in stream.encode():
                output.mux(packet)
            if sound is not None:
                _copy_audio(source, sound, output, written / fps)
    finally:
        if source is not None:
            source.close()
    return written


def _sound_stream(source: Any, output: Any) -> Any:  # av's containers and streams (imported when needed)
    import av

    if source is None or not source.streams.audio:
        return None
    try:
        return output.add_stream_from_template(source.streams.audio[0])
    except (ValueError, av.FFmpegError):
        return None  # a codec mp4 cannot carry: the video is written without its sound


def _copy_audio(source: Any, out: Any, output: Any, seconds: Fraction) -> None:
    for packet in source.demux(source.streams.audio[0]):
        if packet.dts is None:
            continue
        if (
            packet.pts is not None
            and packet.time_base is not None
            and packet.pts * packet.time_base >= seconds
        ):
            break
        packet.stream = out
        output.mux(packet)
