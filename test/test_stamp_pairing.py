"""StampPairer: the one pairing rule of bag reading, the live evaluator and the demo."""

from __future__ import annotations

import pytest

from dfd_depth_ros.stamp_pairing import StampPairer


def test_take_returns_a_stamp_once_every_stream_is_there():
    p = StampPairer(("depth", "gt"))
    p.add("depth", 5, "d5")
    assert p.take(5) is None and p.waiting("depth") == 1
    p.add("gt", 5, "g5")
    assert p.take(5) == {"depth": "d5", "gt": "g5"}
    assert len(p) == 0 and p.take(5) is None


def test_release_keeps_stamp_order_and_waits_for_the_oldest():
    p = StampPairer(("image", "depth_gt"), window=3)
    p.add("image", 20, "i20")
    p.add("depth_gt", 20, "d20")
    p.add("image", 10, "i10")  # older and incomplete: holds back 20
    assert list(p.release()) == []
    p.add("depth_gt", 10, "d10")
    assert [s for s, _ in p.release()] == [10, 20]


def test_release_lets_an_incomplete_stamp_go_beyond_the_window_and_at_the_end():
    p = StampPairer(("image", "depth_gt"), window=2)
    for stamp in (1, 2, 3):
        p.add("image", stamp, f"i{stamp}")
    out = list(p.release())
    assert out == [(1, {"image": "i1"})]  # 3 pending > window 2: the oldest goes without its depth
    assert [s for s, _ in p.release(final=True)] == [2, 3]


def test_complete_with_names_the_streams_that_matter():
    p = StampPairer(("depth", "gt", "image"), complete_with=("depth", "gt"))
    p.add("image", 7, "rgb")
    p.add("depth", 7, "d")
    p.add("gt", 7, "g")
    assert p.take(7) == {"image": "rgb", "depth": "d", "gt": "g"}
    p.add("depth", 8, "d")
    p.add("gt", 8, "g")
    assert p.take(8) == {"depth": "d", "gt": "g"}


def test_evict_drops_the_oldest_beyond_the_window():
    p = StampPairer(("depth", "gt"), window=2)
    for stamp in (3, 1, 2):
        p.add("gt", stamp, stamp)
    assert p.evict() == [(1, {"gt": 1})]
    assert p.waiting("gt") == 2


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown streams"):
        StampPairer(("a",), complete_with=("b",))
    with pytest.raises(ValueError, match="window"):
        StampPairer(("a",), window=0)
    with pytest.raises(ValueError, match="unknown stream"):
        StampPairer(("a",)).add("b", 1, None)


def test_demo_recorder_scores_depth_and_ground_truth_in_either_order_with_their_image():
    import numpy as np

    from dfd_depth_ros.nodes.demo_consumer import DemoRecorder

    rec = DemoRecorder()
    gt = np.full((4, 5), 2.0, np.float32)
    rgb = np.zeros((4, 5, 3), np.uint8)
    rec.on_image(1, rgb)
    rec.on_depth_gt(1, gt)
    rec.on_depth(1, gt * 1.1, receive_ns=2)
    rec.on_depth(2, gt * 0.5, receive_ns=3)  # depth first this time
    rec.on_depth_gt(2, gt)
    s = rec.summary()
    assert s["frames_matched"] == 2
    assert s["abs_rel"] == pytest.approx((0.1 + 0.5) / 2, abs=1e-4)
    assert rec.matched[0]["rgb"] is rgb and rec.matched[1]["rgb"] is None
