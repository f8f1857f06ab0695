from sspnet_cli.imagery.tiling import axis_starts, window_grid


def test_1920x1080_example_from_the_spec():
    assert axis_starts(1920, 640, 30) == [0, 610, 1220, 1280]
    assert axis_starts(1080, 512, 30) == [0, 482, 568]
    grid = window_grid(1920, 1080)
    assert len(grid) == 12
    assert all(w.width == 640 and w.height == 512 for w in grid)


def test_small_frames_get_one_full_size_window():
    assert window_grid(100, 50) == [(0, 0, 640, 512)]
    assert axis_starts(640, 640, 30) == [0]
    assert axis_starts(641, 640, 30) == [0, 1]
