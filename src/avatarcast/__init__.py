"""avatarcast: a self-hosted talking avatar, rendered and streamed on the CPU."""

__version__ = "0.1.0"

FRAME_RATE_HZ = 25
"""Video frame rate of every stream and render; frame n is shown at n / FRAME_RATE_HZ seconds."""

SAMPLE_RATE_HZ = 16_000
"""Sample rate of the speech timeline (mono, signed 16-bit): the master clock."""

SAMPLES_PER_FRAME = SAMPLE_RATE_HZ // FRAME_RATE_HZ
"""640 audio samples belong to each video frame."""
