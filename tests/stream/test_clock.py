import asyncio

from avatarcast.stream.clock import (
    FramePacer,
    ManualClock,
    frame_of_sample,
    frame_time_s,
    frames_for_samples,
)


def test_frame_maths() -> None:
    assert frame_time_s(0) == 0.0
    assert frame_time_s(25) == 1.0
    assert frame_of_sample(0) == 0
    assert frame_of_sample(639) == 0
    assert frame_of_sample(640) == 1
    assert frames_for_samples(0) == 0
    assert frames_for_samples(1) == 1
    assert frames_for_samples(640) == 1
    assert frames_for_samples(641) == 2
    assert frames_for_samples(16000) == 25


def test_pacer_uses_absolute_deadlines() -> None:
    clock = ManualClock(100.0)
    pacer = FramePacer(clock)

    async def run() -> None:
        await pacer.wait_for(0)
        assert clock.now() == 100.0
        clock.advance(0.5)  # a long stall: frames 1..12 are already late
        await pacer.wait_for(1)
        assert clock.now() == 100.5  # no waiting when late; no drift added
        await pacer.wait_for(25)
        assert abs(clock.now() - 101.0) < 1e-9  # frame 25 still due at start + 1 s

    asyncio.run(run())
    assert pacer.late_frames == 1


def test_a_stepped_manual_clock_waits_for_advance() -> None:
    clock = ManualClock(10.0, auto_advance=False)
    pacer = FramePacer(clock)
    woke: list[float] = []

    async def run() -> None:
        async def frame(n: int) -> None:
            await pacer.wait_for(n)
            woke.append(clock.now())

        task = asyncio.create_task(frame(2))  # due at 10.08
        for _ in range(5):
            await asyncio.sleep(0)
        assert not woke  # nothing moves the clock but advance()
        clock.advance(0.04)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not woke  # 10.04: still early
        clock.advance(0.05)
        await asyncio.wait_for(task, 1)
        assert woke == [clock.now()] and abs(woke[0] - 10.09) < 1e-9

    asyncio.run(run())
